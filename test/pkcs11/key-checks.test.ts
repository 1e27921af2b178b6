// Key checks against a real SoftHSM2 token. An RSA and a P-384 key share one label, and each
// raises its own coded error. Also covered: a P-256 key that may not sign, a public key from a
// caller's certificate, and the 64-byte length check on the module's signature.
import { execFileSync } from 'node:child_process';
import { verify } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPkcs11Signer } from '../../adapters/pkcs11/index.js';
import {
  CKA_CLASS,
  CKA_EC_PARAMS,
  CKA_EC_POINT,
  CKA_ID,
  CKA_KEY_TYPE,
  CKA_LABEL,
  CKA_PRIVATE,
  CKA_SENSITIVE,
  CKA_SIGN,
  CKA_TOKEN,
  CKA_VALUE,
  CKK_EC,
  CKO_PRIVATE_KEY,
  CKO_PUBLIC_KEY,
} from '../../adapters/pkcs11/binding.js';
import { moduleRegistry } from '../../adapters/pkcs11/module.js';
import { signJwt } from '../../src/jws.js';
import {
  createSoftHsm,
  createTestKey,
  describeWithSoftHsm,
  softHsmModulePath,
  userPin,
  type SoftHsm,
} from './softhsm.js';

const keys = {
  rsa: createTestKey('rsa'),
  p384: createTestKey('p384'),
  good: createTestKey(),
  bare: createTestKey(),
  noSign: createTestKey(),
  stale: createTestKey(),
  unrelated: createTestKey(),
};
const options = { pin: userPin };
let hsm: SoftHsm;

function uriFor(object: string, id?: string): string {
  const idPart = id === undefined ? '' : `;id=%${id}`;
  return `pkcs11:token=key-checks;object=${object}${idPart}?module-path=${softHsmModulePath}`;
}

/** Writes a self-signed X.509 certificate for `privatePem` with the openssl command. */
function createCertificate(privatePem: string): string {
  const keyPath = join(hsm.folder, 'certificate-key.pem');
  const certificatePath = join(hsm.folder, 'certificate.pem');
  writeFileSync(keyPath, privatePem, { mode: 0o600 });
  execFileSync('openssl', [
    'req',
    '-new',
    '-x509',
    '-key',
    keyPath,
    '-subj',
    '/CN=kms-jwt-signer test',
    '-days',
    '1',
    '-out',
    certificatePath,
  ]);
  return readFileSync(certificatePath, 'utf8');
}

/** Writes a P-256 private key object with CKA_SIGN=false through a signer's own module. */
async function createKeyThatCannotSign(): Promise<void> {
  const holder = await createPkcs11Signer(uriFor('good', '30'), options);
  const entry = [...moduleRegistry().modules.values()][0]!;
  const token = [...entry.tokens.values()][0]!;
  const binding = entry.binding;
  const session = binding.C_OpenSession(token.slot, 0x06);
  const d = Buffer.from(keys.noSign.privateKey.export({ format: 'jwk' }).d!, 'base64url');
  binding.C_CreateObject(session, [
    { type: CKA_CLASS, value: CKO_PRIVATE_KEY },
    { type: CKA_KEY_TYPE, value: CKK_EC },
    { type: CKA_TOKEN, value: true },
    { type: CKA_PRIVATE, value: true },
    { type: CKA_SENSITIVE, value: true },
    { type: CKA_SIGN, value: false },
    { type: CKA_LABEL, value: 'no-sign' },
    { type: CKA_ID, value: Buffer.from([0x40]) },
    { type: CKA_EC_PARAMS, value: Buffer.from('06082a8648ce3d030107', 'hex') },
    { type: CKA_VALUE, value: d },
  ]);
  binding.C_CloseSession(session);
  await holder.close();
}

/**
 * Writes a public-key object with the ID of the private key "stale" but the point of an
 * unrelated key, as a stale object left by an earlier key with the same ID would be.
 */
async function createStalePublicKey(): Promise<void> {
  const holder = await createPkcs11Signer(uriFor('good', '30'), options);
  const entry = [...moduleRegistry().modules.values()][0]!;
  const token = [...entry.tokens.values()][0]!;
  const binding = entry.binding;
  const session = binding.C_OpenSession(token.slot, 0x06);
  const jwk = keys.unrelated.publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([
    Buffer.from([0x04, 0x41, 0x04]),
    Buffer.from(jwk.x!, 'base64url'),
    Buffer.from(jwk.y!, 'base64url'),
  ]);
  binding.C_CreateObject(session, [
    { type: CKA_CLASS, value: CKO_PUBLIC_KEY },
    { type: CKA_KEY_TYPE, value: CKK_EC },
    { type: CKA_TOKEN, value: true },
    { type: CKA_LABEL, value: 'stale' },
    { type: CKA_ID, value: Buffer.from([0x50]) },
    { type: CKA_EC_PARAMS, value: Buffer.from('06082a8648ce3d030107', 'hex') },
    { type: CKA_EC_POINT, value: point },
  ]);
  binding.C_CloseSession(session);
  await holder.close();
}

describeWithSoftHsm('pkcs11 key checks', () => {
  beforeAll(async () => {
    hsm = createSoftHsm();
    hsm.createToken('key-checks');
    // Both keys share the label "apple" and differ only in CKA_ID.
    hsm.importPem('key-checks', keys.rsa.pem, { label: 'apple', id: '10' });
    hsm.importPem('key-checks', keys.p384.pem, { label: 'apple', id: '11' });
    hsm.importPem('key-checks', keys.good.pem, { label: 'good', id: '30' });
    hsm.importPem('key-checks', keys.bare.pem, { label: 'bare', id: '31', noPublicKey: true });
    await createKeyThatCannotSign();
    hsm.importPem('key-checks', keys.stale.pem, { label: 'stale', id: '50', noPublicKey: true });
    await createStalePublicKey();
    hsm.importPem('key-checks', keys.good.pem, { label: 'twin', id: '60' });
    hsm.importPem('key-checks', keys.good.pem, { label: 'twin', id: '60', force: true });
  });

  afterAll(() => {
    // The folder goes even when a test left a signer open, which the check then reports.
    const openModules = moduleRegistry().modules.size;
    hsm?.remove();
    expect(openModules).toBe(0);
  });

  it('RSA key has its coded error', async () => {
    await expect(createPkcs11Signer(uriFor('apple', '10'), options)).rejects.toMatchObject({
      code: 'ERR_PKCS11_KEY_NOT_EC',
      message: expect.stringContaining('is RSA, but ES256 needs an EC P-256 key'),
      details: expect.objectContaining({ found: 'RSA', id: '10', label: 'apple' }),
    });
  });

  it('P-384 key has its coded error', async () => {
    await expect(createPkcs11Signer(uriFor('apple', '11'), options)).rejects.toMatchObject({
      code: 'ERR_PKCS11_KEY_NOT_P256',
      message: expect.stringContaining('is EC P-384, but ES256 needs P-256'),
      details: expect.objectContaining({ found: 'EC P-384', id: '11', label: 'apple' }),
    });
  });

  it('label alone matches both and lists them', async () => {
    const attempt = createPkcs11Signer(uriFor('apple'), options);
    const error = (await attempt.catch((caught: unknown) => caught)) as Error & { code: string };
    expect(error.code).toBe('ERR_PKCS11_KEY_AMBIGUOUS');
    expect(error.message).toContain('id=%10 (RSA)');
    expect(error.message).toContain('id=%11 (EC P-384)');
  });

  it('key with CKA_SIGN=false', async () => {
    await expect(createPkcs11Signer(uriFor('no-sign', '40'), options)).rejects.toMatchObject({
      code: 'ERR_PKCS11_KEY_CANNOT_SIGN',
      message: expect.stringContaining('CKA_SIGN=false'),
    });
  });

  it('public key from a supplied certificate', async () => {
    const certificate = createCertificate(keys.bare.pem);
    const signer = await createPkcs11Signer(uriFor('bare', '31'), {
      ...options,
      publicKey: certificate,
    });
    const publicKey = await signer.getPublicKey();
    expect(publicKey.export({ format: 'jwk' })).toEqual(
      keys.bare.publicKey.export({ format: 'jwk' }),
    );

    const token = await signJwt(signer, { header: { alg: 'ES256' }, payload: { iss: 'T' } });
    const [header, body, signature] = token.split('.') as [string, string, string];
    const key = { key: keys.bare.publicKey, dsaEncoding: 'ieee-p1363' as const };
    const input = Buffer.from(`${header}.${body}`);
    expect(verify('sha256', input, key, Buffer.from(signature, 'base64url'))).toBe(true);
    await signer.close();
  });

  it('supplied text that is no key', async () => {
    const attempt = createPkcs11Signer(uriFor('bare', '31'), {
      ...options,
      publicKey: 'not a PEM block',
    });
    await expect(attempt).rejects.toMatchObject({ code: 'ERR_PKCS11_PUBLIC_KEY_INVALID' });
  });

  it('signature of the wrong length is rejected', async () => {
    const signer = await createPkcs11Signer(uriFor('good', '30'), options);
    const entry = [...moduleRegistry().modules.values()][0]!;
    const binding = entry.binding as unknown as Record<string, (...args: unknown[]) => unknown>;
    const realSign = binding.C_SignAsync!;
    // A module that breaks the raw r||s rule, simulated by padding SoftHSM2's real signature.
    binding.C_SignAsync = async (...args: unknown[]) => {
      const signature = (await realSign.apply(binding, args)) as Buffer;
      return Buffer.concat([signature, Buffer.alloc(8)]);
    };
    try {
      await expect(signer.sign(Buffer.from('a.b'))).rejects.toMatchObject({
        code: 'ERR_PKCS11_SIGNATURE_LENGTH',
        details: expect.objectContaining({ length: 72 }),
      });
    } finally {
      binding.C_SignAsync = realSign;
      await signer.close();
    }
  });

  it('public-key object of another key', async () => {
    // getPublicKey, and so `kms-jwt public-key`, must never hand out a key that did not sign.
    const attempt = createPkcs11Signer(uriFor('stale', '50'), options);
    await expect(attempt).rejects.toMatchObject({
      code: 'ERR_PKCS11_PUBLIC_KEY_MISMATCH',
      message: expect.stringContaining('id=%50'),
    });
    expect(moduleRegistry().modules.size).toBe(0);
  });

  it('duplicate objects with one label and ID', async () => {
    // Adding id=... cannot tell these apart, so the message must not advise it.
    const attempt = createPkcs11Signer(uriFor('twin', '60'), options);
    await expect(attempt).rejects.toMatchObject({
      code: 'ERR_PKCS11_KEY_AMBIGUOUS',
      message: expect.stringContaining('same label and ID'),
    });
    await expect(attempt).rejects.toMatchObject({
      message: expect.not.stringContaining('Add id='),
    });
  });
});
