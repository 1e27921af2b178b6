/**
 * Key text given where a path belongs: `createSigner(process.env.APPLE_KEY)` instead of
 * `createSigner('env:APPLE_KEY')`, or `{ path: pemText }`. The loader then looks for a file named
 * after the key, and no error, cause or detail may repeat that name.
 */
import { describe, expect, it } from 'vitest';
import { createPemSigner, loadPublicKey } from '../../adapters/pem/index.js';
import { createSigner } from '../../src/key-uri.js';
import { createP256Fixture, errorText, expectNoKeyText, rejectionOf } from './support.js';

const key = createP256Fixture();
const body = key.bodyLines.join('');
const privateJwk = JSON.stringify(key.privateKey.export({ format: 'jwk' }));
const privateScalar = String(key.privateKey.export({ format: 'jwk' }).d);

const keyTexts: Array<[string, string]> = [
  ['PEM text', key.pkcs8Pem],
  ['PEM with literal \\n', key.pkcs8Pem.trimEnd().replace(/\n/g, '\\n')],
  ['the base64 body alone', body],
  ['a private JWK', privateJwk],
];

describe('key text as a path', () => {
  it.each(keyTexts)('hides %s given to createSigner', async (_shape, text) => {
    const error = await rejectionOf(createSigner(text));

    expect(error.code).toBe('ERR_KEY_FILE_NOT_FOUND');
    expect(error.message).toMatch(/looks like key text/);
    expectNoKeyText(error, key.pkcs8Pem);
    expect(errorText(error)).not.toContain(privateScalar);
  });

  it.each(keyTexts)('hides %s given as file:', async (_shape, text) => {
    const error = await rejectionOf(createSigner(`file:${text}`));

    expectNoKeyText(error, key.pkcs8Pem);
    expect(errorText(error)).not.toContain(privateScalar);
  });

  it.each(keyTexts)('hides %s given as { path }', async (_shape, text) => {
    const error = await rejectionOf(createPemSigner({ path: text }));

    expect(error.code).toBe('ERR_KEY_FILE_NOT_FOUND');
    expectNoKeyText(error, key.pkcs8Pem);
    expect(errorText(error)).not.toContain(privateScalar);
  });

  it.each(keyTexts)('hides %s given to loadPublicKey', async (_shape, text) => {
    const error = await rejectionOf(loadPublicKey({ path: text }));

    expectNoKeyText(error, key.pkcs8Pem);
    expect(errorText(error)).not.toContain(privateScalar);
  });

  it.each([
    ['./keys/AuthKey_ABC123DEFG.p8'],
    ['/srv/secrets/apple-sign-in-with-apple-production-key-2024_ABC123DEFG.p8'],
    ['/run/secrets/3f2a9c0b7d4e1f6a8b5c2d9e0f1a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a'],
    ['C:\\Users\\Developer\\Documents\\AppleKeys\\ProductionSigningKey2024.p8'],
  ])('still names the missing path %s', async (path) => {
    const error = await rejectionOf(createSigner(path));

    expect(error.code).toBe('ERR_KEY_FILE_NOT_FOUND');
    expect(error.message).toContain(path.replace(/^\.\//, ''));
  });
});

describe('pkcs11 reference as a path', () => {
  it.each([
    ['a leading space', ' pkcs11:token=apple;object=siwa?pin-value=739164'],
    ['quotes', '"pkcs11:token=apple?pin-value=739164"'],
    ['an encoded name', 'pkcs11 :token=apple?%70in%2Dvalue=739164'],
  ])('hides the PIN after %s', async (_shape, reference) => {
    const error = await rejectionOf(createSigner(reference));

    expect(error.code).toBe('ERR_KEY_FILE_NOT_FOUND');
    expect(error.message).toContain('contains a pin-value attribute');
    expect(errorText(error)).not.toContain('739164');
  });
});
