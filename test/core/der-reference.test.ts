/**
 * derToJose against a second, independent X.690 reader written here. The reader parses any
 * definite length form (so that a long-form or padded length is read and rejected as not minimal,
 * not misread), and checks the DER rules one by one. Real OpenSSL signatures are mutated several
 * times each (byte changes, insertions, deletions, truncation, and a SEQUENCE length patched to
 * fit), and both readers must agree on accept or reject and on the result.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { derToJose, joseToDer } from '../../src/der.js';
import { curveOrder } from './der-helpers.js';

/** Reads strict DER for a P-256 Ecdsa-Sig-Value, or returns undefined when any rule fails. */
function referenceDecode(bytes: Uint8Array): Buffer | undefined {
  let offset = 0;

  const readLength = (): number | undefined => {
    const first = bytes[offset++];
    if (first === undefined || first === 0x80) return undefined;
    if (first < 0x80) return first;
    const count = first & 0x7f;
    if (count > 4 || offset + count > bytes.length) return undefined;
    let value = 0;
    for (let i = 0; i < count; i++) value = value * 256 + bytes[offset++]!;
    // X.690 §10.1: the long form only for lengths of 128 and more, without leading zero octets.
    if (value < 0x80 || bytes[offset - count] === 0) return undefined;
    return value;
  };

  const readInteger = (end: number): bigint | undefined => {
    if (bytes[offset++] !== 0x02) return undefined;
    const length = readLength();
    if (length === undefined || length === 0 || offset + length > end) return undefined;
    const content = bytes.subarray(offset, offset + length);
    offset += length;
    if (content[0]! & 0x80) return undefined;
    if (content.length > 1 && content[0] === 0 && !(content[1]! & 0x80)) return undefined;
    const value = content.reduce((sum, byte) => (sum << 8n) | BigInt(byte), 0n);
    return value >= 1n && value < curveOrder ? value : undefined;
  };

  if (bytes[offset++] !== 0x30) return undefined;
  const length = readLength();
  if (length === undefined || offset + length !== bytes.length) return undefined;
  const r = readInteger(bytes.length);
  const s = r === undefined ? undefined : readInteger(bytes.length);
  if (r === undefined || s === undefined || offset !== bytes.length) return undefined;

  const scalar = (value: bigint) => Buffer.from(value.toString(16).padStart(64, '0'), 'hex');
  return Buffer.concat([scalar(r), scalar(s)]);
}

/** A small deterministic generator (mulberry32), so that a failure repeats with its seed. */
function createRandom(seed: number): (limit: number) => number {
  let state = seed >>> 0;
  return (limit) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * limit;
  };
}

const interestingBytes = [0x00, 0x01, 0x02, 0x1f, 0x20, 0x21, 0x30, 0x44, 0x7f, 0x80, 0x81, 0xff];

function mutate(der: Buffer, random: (limit: number) => number): Buffer {
  let bytes = Buffer.from(der);
  const steps = 1 + Math.floor(random(3));
  for (let step = 0; step < steps; step++) {
    const at = Math.floor(random(bytes.length + 1));
    const kind = Math.floor(random(7));
    const byte = Math.floor(random(256));
    if (kind === 0 && at < bytes.length) bytes[at] = byte;
    if (kind === 1 && at < bytes.length) bytes[at] = interestingBytes[byte % 12]!;
    if (kind === 2 && at < bytes.length) bytes[at] = bytes[at]! ^ (1 << (byte % 8));
    if (kind === 3) bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([byte])]);
    if (kind === 3) bytes = Buffer.concat([bytes, der.subarray(at)]);
    if (kind === 4) bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
    if (kind === 5) bytes = bytes.subarray(0, at);
    if (kind === 6 && bytes.length > 1) bytes[1] = (bytes.length - 2) & 0xff;
  }
  return bytes;
}

function ourDecode(bytes: Uint8Array): Buffer | undefined {
  try {
    return derToJose(bytes);
  } catch (error) {
    expect((error as { code?: unknown }).code).toBe('ERR_SIGNATURE_DER_INVALID');
    return undefined;
  }
}

describe('derToJose against a reference reader', () => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signatures = Array.from({ length: 400 }, (_, index) =>
    sign('sha256', Buffer.from(`message ${index}`), privateKey),
  );

  it('agrees on 40,000 mutated signatures', () => {
    const random = createRandom(0x5eed);
    let accepted = 0;
    for (let run = 0; run < 40_000; run++) {
      const bytes = mutate(signatures[run % signatures.length]!, random);
      const expected = referenceDecode(bytes);
      const actual = ourDecode(bytes);

      expect(actual?.toString('hex'), bytes.toString('hex')).toBe(expected?.toString('hex'));
      if (expected) {
        accepted++;
        expect(joseToDer(expected).equals(bytes), bytes.toString('hex')).toBe(true);
      }
    }
    // Both outcomes must be well represented, or the loop proves little.
    expect(accepted).toBeGreaterThan(2_000);
    expect(accepted).toBeLessThan(38_000);
  });

  const content = () => signatures[0]!.subarray(2);
  it.each([
    ['long-form length', () => [0x30, 0x81, content().length], [], /long-form/],
    ['padded long-form length', () => [0x30, 0x82, 0x00, content().length], [], /long-form/],
    ['indefinite length', () => [0x30, 0x80], [0x00, 0x00], /indefinite/],
    ['length that overflows', () => [0x30, 0x84, 0xff, 0xff, 0xff, 0xff], [], /long-form/],
  ])('rejects a %s', (_name, header, trailer, words) => {
    const bytes = Buffer.concat([Buffer.from(header()), content(), Buffer.from(trailer)]);
    expect(referenceDecode(bytes)).toBeUndefined();

    expect(() => derToJose(bytes)).toThrow(
      expect.objectContaining({ code: 'ERR_SIGNATURE_DER_INVALID' }),
    );
    expect(() => derToJose(bytes)).toThrow(words);
  });
});
