/**
 * The key repair table: one row per mangled shape that users report for keys pasted into
 * environment variables, secret stores and form fields. Each row either loads the very same key
 * (compared by its public JWK) with the named repairs reported, or is rejected with the coded
 * error that names what is wrong. Every row runs through inline text and through an environment
 * variable, and no error may carry key text.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createPemSigner, loadPrivateKey } from '../../adapters/pem/index.js';
import type { SignerEvent } from '../../src/signer.js';
import {
  createP256Fixture,
  expectNoKeyText,
  jwkOf,
  rejectionOf,
  toPem,
  type P256Fixture,
} from './support.js';

const key = createP256Fixture();
const other = createP256Fixture();
const { pkcs8Pem, bodyLines } = key;
const body = bodyLines.join('');
const begin = '-----BEGIN PRIVATE KEY-----';
const end = '-----END PRIVATE KEY-----';

interface RepairRow {
  shape: string;
  input: string | Buffer;
  repairs: string[];
}

interface RejectRow {
  shape: string;
  input: string | Buffer;
  code: string;
  /** Words the message must contain, naming what was found. */
  names: RegExp;
}

function wrap(text: string, width: number): string {
  return (text.match(new RegExp(`.{1,${width}}`, 'g')) ?? []).join('\n');
}

function sec1WithoutPadding(fixture: P256Fixture): string {
  return fixture.sec1Pem.replace(/=+\n-----END/, '\n-----END');
}

function flipByte(der: Buffer, index: number): Buffer {
  const copy = Buffer.from(der);
  copy[index] = copy[index]! ^ 0x01;
  return copy;
}

const repairRows: RepairRow[] = [
  { shape: 'canonical .p8 file', input: pkcs8Pem, repairs: [] },
  { shape: 'no final newline', input: pkcs8Pem.trimEnd(), repairs: [] },
  {
    shape: 'literal \\n for each line break',
    input: pkcs8Pem.trimEnd().replace(/\n/g, '\\n'),
    repairs: ['escaped-newlines'],
  },
  {
    shape: 'double-escaped \\\\n',
    input: pkcs8Pem.trimEnd().replace(/\n/g, '\\\\n'),
    repairs: ['escaped-newlines'],
  },
  {
    shape: 'literal \\r\\n escapes',
    input: pkcs8Pem.trimEnd().replace(/\n/g, '\\r\\n'),
    repairs: ['escaped-newlines'],
  },
  { shape: 'CRLF line endings', input: pkcs8Pem.replace(/\n/g, '\r\n'), repairs: ['crlf'] },
  { shape: 'CR line endings', input: pkcs8Pem.replace(/\n/g, '\r'), repairs: ['cr'] },
  {
    shape: 'line breaks turned into spaces',
    input: pkcs8Pem.trimEnd().replace(/\n/g, ' '),
    repairs: ['line-breaks'],
  },
  {
    shape: 'line breaks lost entirely',
    input: pkcs8Pem.replace(/\n/g, ''),
    repairs: ['line-breaks'],
  },
  {
    shape: 'body on one line inside armour lines',
    input: `${begin}\n${body}\n${end}\n`,
    repairs: ['line-breaks'],
  },
  { shape: 'surrounding double quotes', input: `"${pkcs8Pem}"`, repairs: ['quotes'] },
  { shape: 'surrounding single quotes', input: `'${pkcs8Pem}'`, repairs: ['quotes'] },
  { shape: 'surrounding backticks', input: `\`${pkcs8Pem}\``, repairs: ['quotes'] },
  {
    shape: 'dotenv single quotes with \\n escapes',
    input: `'${pkcs8Pem.trimEnd().replace(/\n/g, '\\n')}'`,
    repairs: ['quotes', 'escaped-newlines'],
  },
  {
    shape: 'surrounding blank lines and spaces',
    input: `\n\n   ${pkcs8Pem}   \n\n`,
    repairs: ['surrounding-whitespace'],
  },
  {
    shape: 'trailing spaces on each line',
    input: pkcs8Pem.replace(/\n/g, '  \n'),
    repairs: ['surrounding-whitespace', 'line-breaks'],
  },
  {
    shape: 'indented as a YAML block',
    input: pkcs8Pem.replace(/^/gm, '    '),
    repairs: ['surrounding-whitespace', 'indentation'],
  },
  { shape: 'base64 body only', input: bodyLines.join('\n'), repairs: ['missing-armour'] },
  {
    shape: 'base64 body only, one line',
    input: body,
    repairs: ['missing-armour'],
  },
  {
    shape: 'base64 body only, with spaces',
    input: bodyLines.join(' '),
    repairs: ['missing-armour', 'line-breaks'],
  },
  {
    shape: 'JSON string escaping',
    input: JSON.stringify(pkcs8Pem),
    repairs: ['json-string'],
  },
  {
    shape: 'JSON string with escaped slashes',
    input: JSON.stringify(pkcs8Pem).replace(/\//g, '\\/'),
    repairs: ['json-string'],
  },
  {
    shape: 'escaped slashes without JSON quotes',
    input: pkcs8Pem.replace(/\//g, '\\/'),
    repairs: ['escaped-slashes'],
  },
  {
    shape: 'JSON string inside dotenv quotes',
    input: `'${JSON.stringify(pkcs8Pem)}'`,
    repairs: ['quotes', 'json-string'],
  },
  {
    shape: 'lines re-wrapped at 76',
    input: `${begin}\n${wrap(body, 76)}\n${end}\n`,
    repairs: ['line-breaks'],
  },
  {
    shape: 'lines re-wrapped at 40',
    input: `${begin}\n${wrap(body, 40)}\n${end}\n`,
    repairs: ['line-breaks'],
  },
  {
    shape: 'UTF-8 byte order mark in a file',
    input: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(pkcs8Pem)]),
    repairs: ['byte-order-mark'],
  },
  {
    shape: 'byte order mark in a string',
    input: `\ufeff${pkcs8Pem}`,
    repairs: ['byte-order-mark'],
  },
  {
    shape: 'UTF-16LE text from a Windows editor',
    input: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(pkcs8Pem, 'utf16le')]),
    repairs: ['utf-16'],
  },
  {
    shape: 'base64url alphabet',
    input: pkcs8Pem.replace(/\+/g, '-').replace(/\//g, '_'),
    repairs: ['base64url-alphabet'],
  },
  {
    shape: 'SEC1 body without its padding',
    input: sec1WithoutPadding(key),
    repairs: ['missing-padding'],
  },
  {
    shape: 'PKCS#8 body under the EC PRIVATE KEY label',
    input: toPem(key.pkcs8Der, 'EC PRIVATE KEY'),
    repairs: ['label-mismatch'],
  },
  {
    shape: 'SEC1 body under the PRIVATE KEY label',
    input: toPem(key.sec1Der, 'PRIVATE KEY'),
    repairs: ['label-mismatch'],
  },
  {
    shape: 'comment and Bag Attributes around the block',
    input: `Bag Attributes\n    friendlyName: apple\nKey Attributes: <No Attributes>\n${pkcs8Pem}`,
    repairs: ['text-outside-armour'],
  },
  {
    shape: 'EC PARAMETERS block before the key',
    input: `-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n${key.sec1Pem}`,
    repairs: [],
  },
  { shape: 'binary DER (.der file)', input: key.pkcs8Der, repairs: ['binary-der'] },
];

const rejectRows: RejectRow[] = [
  { shape: 'empty text', input: '', code: 'ERR_KEY_EMPTY', names: /empty/ },
  { shape: 'only quotes', input: '""', code: 'ERR_KEY_EMPTY', names: /empty/ },
  { shape: 'only whitespace', input: ' \n\t\n', code: 'ERR_KEY_EMPTY', names: /empty/ },
  {
    shape: 'a character outside base64',
    input: pkcs8Pem.replace(
      bodyLines[1]!,
      `${bodyLines[1]!.slice(0, 30)}!${bodyLines[1]!.slice(31)}`,
    ),
    code: 'ERR_KEY_BASE64_INVALID',
    names: /character "!"/,
  },
  {
    // Three, so that the length is one more than a multiple of four whatever the key's bytes.
    shape: 'three base64 characters lost',
    input: pkcs8Pem.replace(bodyLines[1]!, bodyLines[1]!.slice(3)),
    code: 'ERR_KEY_BASE64_INVALID',
    names: /characters were lost or added/,
  },
  {
    shape: 'last line cut off',
    input: `${begin}\n${bodyLines.slice(0, 2).join('\n')}\n${end}\n`,
    code: 'ERR_KEY_TRUNCATED',
    names: /truncated.*Apple \.p8/,
  },
  {
    shape: 'END line cut off',
    input: `${begin}\n${bodyLines.join('\n')}\n`,
    code: 'ERR_KEY_ARMOUR_INVALID',
    names: /no matching END/,
  },
  {
    shape: 'BEGIN line cut off',
    input: `${bodyLines.join('\n')}\n${end}\n`,
    code: 'ERR_KEY_ARMOUR_INVALID',
    names: /no BEGIN line/,
  },
  {
    shape: 'END label differs from BEGIN',
    input: pkcs8Pem.replace(end, '-----END EC PRIVATE KEY-----'),
    code: 'ERR_KEY_ARMOUR_INVALID',
    names: /BEGIN PRIVATE KEY but ends with END EC PRIVATE KEY/,
  },
  {
    shape: 'armour with four dashes',
    input: pkcs8Pem.replace(/-----/g, '----'),
    code: 'ERR_KEY_ARMOUR_INVALID',
    names: /armour line is malformed/,
  },
  {
    shape: 'base64 line outside the armour',
    input: `${bodyLines[0]}\n${pkcs8Pem}`,
    code: 'ERR_KEY_ARMOUR_INVALID',
    names: /outside the BEGIN\/END armour/,
  },
  {
    shape: 'padding in the middle of the body',
    input: pkcs8Pem.replace(
      bodyLines[1]!,
      `${bodyLines[1]!.slice(0, 32)}==${bodyLines[1]!.slice(34)}`,
    ),
    code: 'ERR_KEY_BASE64_INVALID',
    names: /padding in the middle/,
  },
  {
    shape: 'two keys pasted together',
    input: `${pkcs8Pem}${other.pkcs8Pem}`,
    code: 'ERR_KEY_MULTIPLE',
    names: /2 private keys/,
  },
  {
    shape: 'private scalar altered',
    input: toPem(flipByte(key.pkcs8Der, 40), 'PRIVATE KEY'),
    code: 'ERR_KEY_PUBLIC_POINT_MISMATCH',
    names: /does not match its private scalar/,
  },
  {
    shape: 'curve OID altered',
    input: toPem(flipByte(key.pkcs8Der, 26), 'PRIVATE KEY'),
    code: 'ERR_KEY_NOT_P256',
    names: /unknown curve/,
  },
  {
    shape: 'DER length byte altered',
    input: toPem(flipByte(key.pkcs8Der, 2), 'PRIVATE KEY'),
    code: 'ERR_KEY_ASN1_INVALID',
    names: /bytes after the end of its DER structure/,
  },
  {
    shape: 'a file path instead of key text',
    input: './AuthKey_ABC123DEFG.p8',
    code: 'ERR_KEY_NOT_PEM',
    names: /looks like a file path/,
  },
  {
    shape: 'an SSH public key',
    input: 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY= me@host',
    code: 'ERR_KEY_NOT_PEM',
    names: /SSH public key/,
  },
  {
    shape: 'bytes that are neither UTF-8 nor DER',
    input: Buffer.from([0x2d, 0x2d, 0xc3, 0x28, 0xff, 0xfe, 0x00]),
    code: 'ERR_KEY_NOT_PEM',
    names: /neither UTF-8 text nor DER/,
  },
  {
    shape: 'JSON object that is not a JWK',
    input: JSON.stringify({ privateKey: 'see vault' }),
    code: 'ERR_KEY_JWK_INVALID',
    names: /no "kty" member/,
  },
];

async function loadWithEvents(input: string | Buffer) {
  const events: SignerEvent[] = [];
  const signer = await createPemSigner({ pem: input }, { onEvent: (event) => events.push(event) });
  return { publicKey: await signer.getPublicKey(), events };
}

function repairsIn(events: SignerEvent[]): unknown {
  const normalised = events.find((event) => event.type === 'key-normalised');
  return normalised?.repairs ?? [];
}

describe('key repair table', () => {
  it.each(repairRows)('$shape loads the same key', async ({ input, repairs }) => {
    const { publicKey, events } = await loadWithEvents(input);

    expect(jwkOf(publicKey)).toEqual(jwkOf(key.publicKey));
    expect(repairsIn(events)).toEqual(repairs);
  });

  it.each(repairRows)('$shape reports no key text', async ({ input }) => {
    const { events } = await loadWithEvents(input);
    const text = JSON.stringify(events);

    for (const line of bodyLines) expect(text).not.toContain(line.slice(0, 16));
  });
});

describe('key rejection table', () => {
  it.each(rejectRows)('$shape is rejected', async ({ input, code, names }) => {
    const error = await rejectionOf(loadPrivateKey({ pem: input }));

    expect(error.code).toBe(code);
    expect(error.message).toMatch(names);
    expect(error.message).toMatch(/^Inline PEM: /);
    expectNoKeyText(error, pkcs8Pem);
  });
});

describe('key repair through env', () => {
  const variable = 'KMS_JWT_TEST_PEM_KEY';

  afterEach(() => {
    delete process.env[variable];
  });

  const textRows = repairRows.filter((row) => typeof row.input === 'string');

  it.each(textRows)('$shape loads from a variable', async ({ input, repairs }) => {
    process.env[variable] = input as string;
    const events: SignerEvent[] = [];
    const signer = await createPemSigner({ env: variable }, { onEvent: (e) => events.push(e) });

    expect(jwkOf(await signer.getPublicKey())).toEqual(jwkOf(key.publicKey));
    expect(repairsIn(events)).toEqual(repairs);
    expect(signer.keyId).toBe(`env:${variable}`);
  });

  it('names the variable in an error', async () => {
    process.env[variable] = pkcs8Pem.replace(end, '');
    const error = await rejectionOf(createPemSigner({ env: variable }));

    expect(error.code).toBe('ERR_KEY_ARMOUR_INVALID');
    expect(error.message).toMatch(/^Environment variable KMS_JWT_TEST_PEM_KEY: /);
    expectNoKeyText(error, pkcs8Pem);
  });
});
