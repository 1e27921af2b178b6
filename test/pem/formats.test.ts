/**
 * Which keys the local loader accepts and which it rejects. Accepted: P-256 as Apple's 138-byte
 * PKCS#8, the 150-byte PKCS#8 form whose inner key names the curve, SEC1, PKCS#8 without the
 * public point, encrypted PKCS#8 and legacy encrypted SEC1 with a passphrase, and a private JWK.
 * Rejected, each with a coded error naming what it found: other key types and curves, public keys,
 * certificates, corrupt bodies, wrong armour labels, truncated keys and encrypted keys without a
 * passphrase.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadPrivateKey, loadPublicKey } from '../../adapters/pem/index.js';
import type { SignerEvent } from '../../src/signer.js';
import {
  createCertificatePem,
  createOtherKeys,
  createP256Fixture,
  expectNoKeyText,
  jwkOf,
  rejectionOf,
  toPem,
} from './support.js';

const key = createP256Fixture();
const others = createOtherKeys();
const passphrase = 'correct horse battery staple';
const passphraseVariable = 'KMS_JWT_TEST_PEM_PASSPHRASE';
let certificatePem: string;

beforeAll(() => {
  certificatePem = createCertificatePem(key);
});

afterEach(() => {
  delete process.env[passphraseVariable];
});

function encryptedPkcs8(): string {
  return key.privateKey
    .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase })
    .toString();
}

function encryptedLegacySec1(): string {
  return key.privateKey
    .export({ type: 'sec1', format: 'pem', cipher: 'aes-128-cbc', passphrase })
    .toString();
}

function pkcs8WithoutPublicPoint(): Buffer {
  // The inner SEC1 key of a PKCS#8 .p8 contains version, privateKey and the [1] public key. Keeping
  // only the first two gives the 67-byte form some tools write.
  const scalar = key.pkcs8Der.subarray(36, 68);
  const sec1 = Buffer.concat([Buffer.from('30250201010420', 'hex'), scalar]);
  const algorithm = Buffer.from('301306072a8648ce3d020106082a8648ce3d030107', 'hex');
  const content = Buffer.concat([
    Buffer.from('020100', 'hex'),
    algorithm,
    Buffer.from([0x04, sec1.length]),
    sec1,
  ]);
  return Buffer.concat([Buffer.from([0x30, content.length]), content]);
}

function expectSameKey(privateKey: KeyObject): void {
  expect(jwkOf(createPublicKey(privateKey))).toEqual(jwkOf(key.publicKey));
  expect(privateKey.export({ format: 'jwk' })).toEqual(key.privateKey.export({ format: 'jwk' }));
}

describe('accepted P-256 encodings', () => {
  it('Apple PKCS#8 is 138 bytes', async () => {
    expect(key.pkcs8Der.length).toBe(138);
    expect(key.bodyLines.map((line) => line.length)).toEqual([64, 64, 56]);
    expect(key.bodyLines[0]!.startsWith('MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg')).toBe(
      true,
    );
    expectSameKey(await loadPrivateKey({ pem: key.pkcs8Pem }));
  });

  it('PKCS#8 with curve parameters is 150 bytes', async () => {
    expect(key.pkcs8LongDer.length).toBe(150);
    expectSameKey(await loadPrivateKey({ pem: toPem(key.pkcs8LongDer, 'PRIVATE KEY') }));
  });

  it('SEC1 EC PRIVATE KEY', async () => {
    expect(key.sec1Pem).toMatch(/^-----BEGIN EC PRIVATE KEY-----\n/);
    expectSameKey(await loadPrivateKey({ pem: key.sec1Pem }));
  });

  it('PKCS#8 without the public point', async () => {
    const der = pkcs8WithoutPublicPoint();
    expect(der.length).toBe(67);
    expectSameKey(await loadPrivateKey({ pem: toPem(der, 'PRIVATE KEY') }));
  });

  it('a private JWK', async () => {
    const jwk = JSON.stringify(key.privateKey.export({ format: 'jwk' }));
    expectSameKey(await loadPrivateKey({ pem: jwk }));
  });
});

describe('encrypted keys', () => {
  it('PKCS#8 opens with the passphrase option', async () => {
    expectSameKey(await loadPrivateKey({ pem: encryptedPkcs8() }, { passphrase }));
  });

  it('PKCS#8 opens with passphraseEnv', async () => {
    process.env[passphraseVariable] = passphrase;
    const privateKey = await loadPrivateKey(
      { pem: encryptedPkcs8() },
      { passphraseEnv: passphraseVariable },
    );
    expectSameKey(privateKey);
  });

  it('legacy SEC1 opens with the passphrase', async () => {
    expect(encryptedLegacySec1()).toContain('Proc-Type: 4,ENCRYPTED');
    expectSameKey(await loadPrivateKey({ pem: encryptedLegacySec1() }, { passphrase }));
  });

  it('legacy SEC1 survives lost line breaks', async () => {
    const mangled = encryptedLegacySec1().replace(/\n/g, '\\n');
    expectSameKey(await loadPrivateKey({ pem: mangled }, { passphrase }));
  });

  it('without a passphrase says it is encrypted', async () => {
    const error = await rejectionOf(loadPrivateKey({ pem: encryptedPkcs8() }));
    expect(error.code).toBe('ERR_KEY_ENCRYPTED');
    expect(error.message).toMatch(/ENCRYPTED PRIVATE KEY block is encrypted/);
    expect(error.message).toMatch(/passphraseEnv/);
    expect(error.message).toContain('--passphrase-env NAME');
  });

  it('legacy SEC1 without a passphrase says it is encrypted', async () => {
    const error = await rejectionOf(loadPrivateKey({ pem: encryptedLegacySec1() }));
    expect(error.code).toBe('ERR_KEY_ENCRYPTED');
  });

  it('a wrong passphrase is named', async () => {
    const error = await rejectionOf(
      loadPrivateKey({ pem: encryptedPkcs8() }, { passphrase: 'wrong' }),
    );
    expect(error.code).toBe('ERR_KEY_PASSPHRASE_WRONG');
    expect(errorTextOf(error)).not.toContain('wrong passphrase value');
  });

  it('the passphrase never reaches an error', async () => {
    const secret = 'Sup3r-Secret-Passphrase-Value';
    const error = await rejectionOf(
      loadPrivateKey({ pem: encryptedPkcs8() }, { passphrase: secret }),
    );
    expect(error.code).toBe('ERR_KEY_PASSPHRASE_WRONG');
    expect(errorTextOf(error)).not.toContain(secret);
  });

  it('an unset passphrase variable is named', async () => {
    const error = await rejectionOf(
      loadPrivateKey({ pem: encryptedPkcs8() }, { passphraseEnv: passphraseVariable }),
    );
    expect(error.code).toBe('ERR_KEY_PASSPHRASE_ENV_UNSET');
    expect(error.message).toContain(passphraseVariable);
  });

  it('a passphrase given as passphraseEnv is not shown', async () => {
    const secret = 'Sup3r-Secret-Passphrase-Value';
    const error = await rejectionOf(
      loadPrivateKey({ pem: encryptedPkcs8() }, { passphraseEnv: secret }),
    );
    expect(error.code).toBe('ERR_KEY_PASSPHRASE_ENV_UNSET');
    expect(errorTextOf(error)).not.toContain(secret);
    expect(error.message).toContain('not the passphrase itself');
  });

  it('an unset variable is ignored for a plain key', async () => {
    const privateKey = await loadPrivateKey(
      { pem: key.pkcs8Pem },
      { passphraseEnv: passphraseVariable },
    );
    expectSameKey(privateKey);
  });

  it('warns when a passphrase is not needed', async () => {
    const events: SignerEvent[] = [];
    await loadPrivateKey({ pem: key.pkcs8Pem }, { passphrase, onEvent: (e) => events.push(e) });
    expect(events).toEqual([expect.objectContaining({ reason: 'passphrase-unused' })]);
    expect(events[0]!.message).toBe('A passphrase was given, but inline PEM is not encrypted.');
    expect(JSON.stringify(events)).not.toContain(passphrase);
  });

  it('warns of an unset passphrase variable', async () => {
    const events: SignerEvent[] = [];
    const options = {
      passphraseEnv: passphraseVariable,
      onEvent: (e: SignerEvent) => events.push(e),
    };
    await loadPrivateKey({ pem: key.pkcs8Pem }, options);
    expect(events).toEqual([expect.objectContaining({ reason: 'passphrase-unused' })]);
    expect(events[0]!.message).toBe(
      `passphraseEnv names ${passphraseVariable}, which is not set, and inline PEM is not ` +
        'encrypted, so no passphrase is needed.',
    );
  });

  it('warns of a passphrase variable that is not needed', async () => {
    const events: SignerEvent[] = [];
    process.env[passphraseVariable] = passphrase;
    const options = {
      passphraseEnv: passphraseVariable,
      onEvent: (e: SignerEvent) => events.push(e),
    };
    await loadPrivateKey({ pem: key.pkcs8Pem }, options);
    expect(events[0]!.message).toBe(
      `A passphrase was given in ${passphraseVariable}, but inline PEM is not encrypted.`,
    );
    expect(JSON.stringify(events)).not.toContain(passphrase);
  });

  it('loadPublicKey warns of an unneeded passphrase', async () => {
    for (const pem of [key.pkcs8Pem, key.spkiPem]) {
      const events: SignerEvent[] = [];
      await loadPublicKey({ pem }, { passphrase, onEvent: (e) => events.push(e) });
      expect(events).toEqual([expect.objectContaining({ reason: 'passphrase-unused' })]);
      expect(JSON.stringify(events)).not.toContain(passphrase);
    }
  });

  it('loadPublicKey uses a needed passphrase silently', async () => {
    const events: SignerEvent[] = [];
    const publicKey = await loadPublicKey(
      { pem: encryptedPkcs8() },
      { passphrase, onEvent: (e) => events.push(e) },
    );
    expect(publicKey.equals(createPublicKey(key.spkiPem))).toBe(true);
    expect(events).toEqual([]);
  });
});

function errorTextOf(error: Error): string {
  return `${error.message}\n${JSON.stringify((error as { details?: unknown }).details)}`;
}

interface RefusedRow {
  what: string;
  pem: () => string;
  code: string;
  names: RegExp;
}

const refusedRows: RefusedRow[] = [
  {
    what: 'RSA PKCS#8',
    pem: () => others.rsaPkcs8,
    code: 'ERR_KEY_NOT_P256',
    names: /holds an RSA key.*RS256/,
  },
  {
    what: 'RSA PKCS#1',
    pem: () => others.rsaPkcs1,
    code: 'ERR_KEY_NOT_P256',
    names: /RSA PRIVATE KEY block holds an RSA private key \(PKCS#1\)/,
  },
  {
    what: 'Ed25519',
    pem: () => others.ed25519,
    code: 'ERR_KEY_NOT_P256',
    names: /holds an Ed25519 key/,
  },
  {
    what: 'X25519',
    pem: () => others.x25519,
    code: 'ERR_KEY_NOT_P256',
    names: /holds an X25519 key/,
  },
  {
    what: 'P-384 PKCS#8',
    pem: () => others.p384Pkcs8,
    code: 'ERR_KEY_NOT_P256',
    names: /holds an EC P-384 key.*ES384/,
  },
  {
    what: 'P-384 SEC1',
    pem: () => others.p384Sec1,
    code: 'ERR_KEY_NOT_P256',
    names: /EC PRIVATE KEY block holds an EC P-384 key/,
  },
  {
    what: 'secp256k1 PKCS#8',
    pem: () => others.secp256k1Pkcs8,
    code: 'ERR_KEY_NOT_P256',
    names: /holds an EC secp256k1 key.*ES256K/,
  },
  {
    what: 'secp256k1 SEC1',
    pem: () => others.secp256k1Sec1,
    code: 'ERR_KEY_NOT_P256',
    names: /holds an EC secp256k1 key/,
  },
  {
    what: 'P-256 public key',
    pem: () => key.spkiPem,
    code: 'ERR_KEY_NOT_PRIVATE',
    names: /is an EC P-256 public key \(SPKI\), but signing needs the private key/,
  },
  {
    what: 'RSA public key',
    pem: () => others.rsaPublic,
    code: 'ERR_KEY_NOT_PRIVATE',
    names: /is an RSA public key \(SPKI\)/,
  },
  {
    what: 'certificate',
    pem: () => certificatePem,
    code: 'ERR_KEY_NOT_PRIVATE',
    names: /is an X\.509 certificate holding an EC P-256 public key/,
  },
  {
    what: 'corrupt body',
    pem: () => toPem(Buffer.from(key.pkcs8Der).fill(0x41, 20, 60), 'PRIVATE KEY'),
    code: 'ERR_KEY_ASN1_INVALID',
    names: /is not a valid key: the DER does not parse as ASN\.1/,
  },
  {
    what: 'private key under a PUBLIC KEY label',
    pem: () => toPem(key.pkcs8Der, 'PUBLIC KEY'),
    code: 'ERR_KEY_LABEL_MISMATCH',
    names: /labelled "PUBLIC KEY" but holds a private key/,
  },
  {
    what: 'private key under an invented label',
    pem: () => toPem(key.pkcs8Der, 'APPLE AUTH KEY'),
    code: 'ERR_KEY_FORMAT_UNSUPPORTED',
    names: /label "APPLE AUTH KEY" is not a key format/,
  },
  {
    what: 'OpenSSH private key',
    pem: () => toPem(Buffer.from('openssh-key-v1\0 throwaway test bytes'), 'OPENSSH PRIVATE KEY'),
    code: 'ERR_KEY_FORMAT_UNSUPPORTED',
    names: /ssh-keygen -p -m PKCS8/,
  },
  {
    what: 'truncated key',
    pem: () => toPem(key.pkcs8Der.subarray(0, 100), 'PRIVATE KEY'),
    code: 'ERR_KEY_TRUNCATED',
    names: /announces 138 bytes but only 100 bytes are present/,
  },
  {
    what: 'encrypted key without passphrase',
    pem: () => encryptedPkcs8(),
    code: 'ERR_KEY_ENCRYPTED',
    names: /is encrypted and no passphrase was given/,
  },
  {
    what: 'public JWK',
    pem: () => JSON.stringify(key.publicKey.export({ format: 'jwk' })),
    code: 'ERR_KEY_NOT_PRIVATE',
    names: /public JWK/,
  },
  {
    what: 'JWK of another curve',
    pem: () => JSON.stringify({ kty: 'EC', crv: 'P-384', x: 'AA', y: 'AA', d: 'AA' }),
    code: 'ERR_KEY_NOT_P256',
    names: /kty EC and crv P-384/,
  },
];

describe('refused keys', () => {
  it.each(refusedRows)('$what is named', async ({ pem, code, names }) => {
    const text = pem();
    const error = await rejectionOf(loadPrivateKey({ pem: text }));

    expect(error.code).toBe(code);
    expect(error.message).toMatch(names);
    expect(error.message).not.toMatch(/invalid key\b/i);
    expectNoKeyText(error, text);
    expectNoKeyText(error, key.pkcs8Pem);
  });
});

describe('public key loading', () => {
  it('reads SPKI, certificate, JWK and private key', async () => {
    const inputs = [
      key.spkiPem,
      certificatePem,
      JSON.stringify(key.publicKey.export({ format: 'jwk' })),
      key.pkcs8Pem,
      key.sec1Pem,
    ];
    for (const pem of inputs) {
      expect(jwkOf(await loadPublicKey({ pem }))).toEqual(jwkOf(key.publicKey));
    }
  });

  it('repairs a mangled public key', async () => {
    const mangled = JSON.stringify(key.spkiPem);
    expect(jwkOf(await loadPublicKey({ pem: mangled }))).toEqual(jwkOf(key.publicKey));
  });

  it('names a P-384 public key', async () => {
    const error = await rejectionOf(loadPublicKey({ pem: others.p384Public }));
    expect(error.code).toBe('ERR_KEY_NOT_P256');
    expect(error.message).toMatch(/EC P-384/);
  });
});
