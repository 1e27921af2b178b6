/**
 * Key text shapes and key types beyond the repair table and the format table: how keys arrive
 * from shell scripts, YAML, Windows editors and word processors, and the rarer key types. Each
 * row either loads the very same key or is rejected with the coded error that names the cause,
 * and no error carries key text.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createPemSigner, loadPrivateKey } from '../../adapters/pem/index.js';
import {
  createCertificatePem,
  createP256Fixture,
  expectNoKeyText,
  jwkOf,
  rejectionOf,
} from './support.js';

const key = createP256Fixture();
const pem = key.pkcs8Pem;
const lines = pem.trimEnd().split('\n');
const body = key.bodyLines.join('');
const certificate = createCertificatePem(key);

function utf16(text: string, order: 'le' | 'be', byteOrderMark: boolean): Buffer {
  const littleEndian = Buffer.from(text, 'utf16le');
  const bytes = order === 'be' ? Buffer.from(littleEndian).swap16() : littleEndian;
  const mark = order === 'le' ? [0xff, 0xfe] : [0xfe, 0xff];
  return byteOrderMark ? Buffer.concat([Buffer.from(mark), bytes]) : bytes;
}

const loadingRows: Array<[string, string | Buffer]> = [
  ['mixed LF, CRLF and CR endings', lines.map((l, i) => l + ['\n', '\r\n', '\r'][i % 3]).join('')],
  ['key followed by its certificate', pem + certificate],
  ['certificate followed by the key', certificate + pem],
  ['UTF-16BE with a byte order mark', utf16(pem, 'be', true)],
  ['typographic quotes around it', `\u201c${pem.trimEnd()}\u201d`],
  ['a shell export line', `export APPLE_KEY="${pem}"`],
  ['a shell export with \\n escapes', `export APPLE_KEY="${pem.trimEnd().replace(/\n/g, '\\n')}"`],
  ['a YAML literal block', `private_key: |\n  ${pem.trimEnd().replace(/\n/g, '\n  ')}\n`],
  ['body in groups of 8', `${lines[0]}\n${body.match(/.{1,8}/g)!.join(' ')}\n${lines.at(-1)}`],
  ['body lines indented by tabs', pem.replace(/\n(?=[A-Za-z0-9+/])/g, '\n\t')],
  ['two spaces inside the label', pem.replace(/PRIVATE KEY/g, 'PRIVATE  KEY')],
  ['a triple-escaped \\n', pem.trimEnd().replace(/\n/g, '\\\\\\n')],
];

const rejectedRows: Array<[string, string | Buffer, string, RegExp]> = [
  ['UTF-16LE without a byte order mark', utf16(pem, 'le', false), 'ERR_KEY_NOT_PEM', /base64/],
  ['Windows-1252 quotes', Buffer.from(`\x93${pem}\x94`, 'latin1'), 'ERR_KEY_NOT_PEM', /UTF-8/],
  ['a zero-width space', pem.replace('\n', '\n\u200b'), 'ERR_KEY_BASE64_INVALID', /U\+200B/],
  ['HTML line breaks', pem.trimEnd().replace(/\n/g, '<br>'), 'ERR_KEY_BASE64_INVALID', /"<"/],
  ['lower-case armour', pem.toLowerCase(), 'ERR_KEY_ARMOUR_INVALID', /malformed/],
  ['a Comment header', pem.replace('\n', '\nComment: x\n'), 'ERR_KEY_ARMOUR_INVALID', /header/],
  ['two different keys', pem + createP256Fixture().pkcs8Pem, 'ERR_KEY_MULTIPLE', /2 private/],
  ['key with a SEC1 copy', pem + key.sec1Pem, 'ERR_KEY_MULTIPLE', /2 private/],
  [
    'a JSON object with a PEM field',
    JSON.stringify({ private_key: pem }),
    'ERR_KEY_JWK_INVALID',
    /kty/,
  ],
  [
    'armour line cut to one dash',
    pem.replace('-----END', '-END'),
    'ERR_KEY_ARMOUR_INVALID',
    /BEGIN/,
  ],
];

describe('more mangled shapes', () => {
  it.each(loadingRows)('loads %s', async (_shape, input) => {
    const privateKey = await loadPrivateKey({ pem: input });

    expect(jwkOf(privateKey)).toEqual(jwkOf(key.privateKey));
  });

  it.each(rejectedRows)('rejects %s', async (_shape, input, code, names) => {
    const error = await rejectionOf(createPemSigner({ pem: input }));

    expect(error.code).toBe(code);
    expect(error.message).toMatch(names);
    expectNoKeyText(error, pem);
  });
});

describe('more wrong key types', () => {
  const pkcs8Of = (pair: { privateKey: KeyObject }) =>
    String(pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));

  it.each([
    ['P-521', () => generateKeyPairSync('ec', { namedCurve: 'P-521' }), /P-521.*ES512/],
    ['P-224', () => generateKeyPairSync('ec', { namedCurve: 'secp224r1' }), /P-224/],
    [
      'brainpoolP256r1',
      () => generateKeyPairSync('ec', { namedCurve: 'brainpoolP256r1' }),
      /brainpoolP256r1/,
    ],
    ['Ed448', () => generateKeyPairSync('ed448'), /Ed448/],
    ['X448', () => generateKeyPairSync('x448'), /X448/],
    ['DSA', () => generateKeyPairSync('dsa', { modulusLength: 2048, divisorLength: 256 }), /DSA/],
    ['RSA-PSS', () => generateKeyPairSync('rsa-pss', { modulusLength: 2048 }), /RSA-PSS/],
  ])('names %s', async (_name, generate, names) => {
    const text = pkcs8Of(generate());
    const error = await rejectionOf(createPemSigner({ pem: text }));

    expect(error.code).toBe('ERR_KEY_NOT_P256');
    expect(error.message).toMatch(names);
    expectNoKeyText(error, text);
  });
});

describe('encrypted keys and passphrases', () => {
  const encrypted = key.privateKey.export({
    type: 'pkcs8',
    format: 'pem',
    cipher: 'aes-256-cbc',
    passphrase: 'correct horse battery staple',
  });

  it.each([[''], ['correct horse battery stapl'], ['CORRECT HORSE BATTERY STAPLE']])(
    'names the wrong passphrase %j',
    async (passphrase) => {
      const error = await rejectionOf(createPemSigner({ pem: encrypted }, { passphrase }));

      expect(error.code).toBe('ERR_KEY_PASSPHRASE_WRONG');
      if (passphrase !== '') expect(JSON.stringify(error)).not.toContain(passphrase);
      if (passphrase !== '') expect(error.message).not.toContain(passphrase);
    },
  );

  it('opens with the right passphrase', async () => {
    const privateKey = await loadPrivateKey(
      { pem: encrypted },
      { passphrase: 'correct horse battery staple' },
    );

    expect(jwkOf(privateKey)).toEqual(jwkOf(key.privateKey));
  });
});
