/**
 * One table row per strict-DER rule that derToJose enforces (X.690 §8.1, §8.3 and §10.1), and
 * per input check of joseToDer. Each row checks the code and that the message names the problem.
 */
import { describe, expect, it } from 'vitest';
import { derToJose, joseToDer } from '../../src/der.js';
import { canonicalDer, curveOrder, integerContent, joseOf, thrownBy } from './der-helpers.js';

// r has its top bit set, so its DER INTEGER needs a 0x00 pad; s does not.
const r = 0xb292a619339f6e567a305c951c0dcbcc42d16e47f219f9e98e76e09d8770b34an;
const s = 0x0177e60492c5a8242f76f07bfe3661bde59ec2a17ce5bd2dab2abebdf89a62e2n;
const rBytes = integerContent(r); // 33 bytes: 00 b2 92 ...
const sBytes = integerContent(s); // 32 bytes: 01 77 e6 ...

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

function integer(content: Buffer | string, tag = 0x02): Buffer {
  const bytes = typeof content === 'string' ? hex(content) : content;
  return Buffer.concat([Buffer.from([tag, bytes.length]), bytes]);
}

function sequence(...items: Buffer[]): Buffer {
  const content = Buffer.concat(items);
  return Buffer.concat([Buffer.from([0x30, content.length]), content]);
}

const valid = canonicalDer(r, s);
const rInteger = integer(rBytes);
const sInteger = integer(sBytes);
const orderBytes = integerContent(curveOrder);

const derRows: Array<[string, Buffer, RegExp]> = [
  ['empty input', Buffer.alloc(0), /it is 0 bytes, shorter than any valid one/],
  ['too short', hex('3006 020101 0201'), /it is 7 bytes, shorter than any valid one/],
  ['wrong outer tag', Buffer.concat([hex('31'), valid.subarray(1)]), /tag 0x31, not SEQUENCE/],
  [
    'indefinite SEQUENCE length',
    Buffer.concat([hex('3080'), rInteger, sInteger, hex('0000')]),
    /SEQUENCE uses the indefinite length, which DER forbids/,
  ],
  [
    'long-form SEQUENCE length',
    Buffer.concat([hex('3081'), Buffer.from([valid[1]!]), rInteger, sInteger]),
    /SEQUENCE uses a long-form length where DER requires the short form/,
  ],
  ['trailing bytes', Buffer.concat([valid, hex('00')]), /SEQUENCE length is 69 but trailing/],
  ['truncated', valid.subarray(0, valid.length - 1), /SEQUENCE length is 69 but it is truncated/],
  [
    'bytes after s inside SEQUENCE',
    sequence(rInteger, sInteger, hex('0500')),
    /bytes follow the second INTEGER inside the SEQUENCE/,
  ],
  [
    'wrong tag for r',
    sequence(integer(rBytes, 0x03), sInteger),
    /expected INTEGER r but found tag 0x03/,
  ],
  [
    'wrong tag for s',
    sequence(rInteger, integer(sBytes, 0x04)),
    /expected INTEGER s but found tag 0x04/,
  ],
  ['missing s', sequence(rInteger, hex('0500')), /expected INTEGER s but found tag 0x05/],
  ['s absent entirely', sequence(rInteger), /expected INTEGER s but found nothing/],
  ['empty INTEGER r', sequence(hex('0200'), sInteger), /INTEGER r is empty/],
  ['empty INTEGER s', sequence(rInteger, hex('0200')), /INTEGER s is empty/],
  [
    'indefinite INTEGER length',
    sequence(hex('0280'), rBytes, sInteger),
    /INTEGER r uses the indefinite length/,
  ],
  [
    'long-form INTEGER length',
    sequence(Buffer.from([0x02, 0x81, rBytes.length]), rBytes, sInteger),
    /INTEGER r uses a long-form length/,
  ],
  [
    'INTEGER past the end',
    sequence(Buffer.from([0x02, 0x30]), rBytes, hex('0201')),
    /INTEGER r runs past the end of the signature/,
  ],
  [
    'superfluous leading zero',
    sequence(integer(Buffer.concat([hex('00'), sBytes])), sInteger),
    /INTEGER r has a superfluous leading zero byte/,
  ],
  [
    'two leading zeros',
    sequence(rInteger, integer(`0000${sBytes.toString('hex')}`)),
    /INTEGER s has a superfluous leading zero/,
  ],
  [
    'missing zero (negative)',
    sequence(integer(rBytes.subarray(1)), sInteger),
    /INTEGER r is negative/,
  ],
  ['negative s', sequence(rInteger, integer('ff')), /INTEGER s is negative/],
  ['zero r', sequence(integer('00'), sInteger), /r is zero/],
  ['zero s', sequence(rInteger, integer('00')), /s is zero/],
  [
    'r equal to n',
    sequence(integer(orderBytes), sInteger),
    /r is not less than the P-256 group order n/,
  ],
  [
    's equal to n + 1',
    sequence(rInteger, integer(integerContent(curveOrder + 1n))),
    /s is not less than the P-256 group order n/,
  ],
  [
    'r of 2^256 - 1',
    sequence(integer(integerContent((1n << 256n) - 1n)), sInteger),
    /r is not less than the P-256 group order n/,
  ],
  [
    'r longer than 32 bytes',
    sequence(integer(integerContent((1n << 256n) + r)), sInteger),
    /INTEGER r is longer than 32 bytes/,
  ],
  [
    'high tag number form',
    sequence(integer(rBytes, 0x1f), sInteger),
    /expected INTEGER r but found tag 0x1f/,
  ],
];

describe('derToJose rules', () => {
  it('accepts the baseline signature', () => {
    expect(derToJose(valid).equals(joseOf(r, s))).toBe(true);
  });

  it.each(derRows)('rejects %s', (_name, der, message) => {
    const error = thrownBy(() => derToJose(der));
    expect(error?.code).toBe('ERR_SIGNATURE_DER_INVALID');
    expect(error?.message).toMatch(message);
  });

  it('accepts one-byte and 31-byte integers', () => {
    const der = sequence(integer('01'), integer(integerContent(s >> 8n)));
    expect(derToJose(der).equals(joseOf(1n, s >> 8n))).toBe(true);
  });

  it('accepts a view into a larger buffer', () => {
    const backing = Buffer.concat([hex('deadbeef'), valid, hex('cafe')]);
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 4, valid.length);
    expect(derToJose(view).equals(joseOf(r, s))).toBe(true);
  });

  it.each([
    ['a string', 'MEUCIQ'],
    ['an array', [0x30, 0x06]],
    ['undefined', undefined],
  ])('throws TypeError for %s', (_name, input) => {
    expect(() => derToJose(input as unknown as Uint8Array)).toThrow(TypeError);
  });
});

const joseRows: Array<[string, Uint8Array, RegExp]> = [
  ['empty', new Uint8Array(0), /it is 0 bytes, but ES256 needs exactly 64/],
  ['63 bytes', joseOf(r, s).subarray(1), /it is 63 bytes, but ES256 needs exactly 64/],
  ['65 bytes', Buffer.concat([joseOf(r, s), hex('00')]), /it is 65 bytes/],
  ['a DER signature', valid, /it is 71 bytes/],
  ['zero r', joseOf(0n, s), /r is zero/],
  ['zero s', joseOf(r, 0n), /s is zero/],
  ['r equal to n', joseOf(curveOrder, s), /r is not less than the P-256 group order n/],
  ['s of 2^256 - 1', joseOf(r, (1n << 256n) - 1n), /s is not less than the P-256 group order n/],
];

describe('joseToDer rules', () => {
  it.each(joseRows)('rejects %s', (_name, jose, message) => {
    const error = thrownBy(() => joseToDer(jose));
    expect(error?.code).toBe('ERR_SIGNATURE_JOSE_INVALID');
    expect(error?.message).toMatch(message);
  });

  it('pads a high bit and strips zeros', () => {
    expect(joseToDer(joseOf(r, s)).equals(valid)).toBe(true);
    expect(joseToDer(joseOf(0x80n, 1n)).toString('hex')).toBe('3007020200800201' + '01');
  });

  it('accepts n - 1', () => {
    const der = joseToDer(joseOf(curveOrder - 1n, curveOrder - 1n));
    expect(der.equals(canonicalDer(curveOrder - 1n, curveOrder - 1n))).toBe(true);
  });

  it('throws TypeError for a string', () => {
    expect(() => joseToDer('abc' as unknown as Uint8Array)).toThrow(TypeError);
  });
});
