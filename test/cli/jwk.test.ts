import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { jwkThumbprint, publicKeyToJwk } from '../../src/jwk.js';

// RFC 7638 gives no EC example, so the thumbprints are checked against jose's implementation
// and against a hand-built canonical form.
describe('publicKeyToJwk', () => {
  it('exports only the public members', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const fromPrivate = publicKeyToJwk(privateKey);
    const fromPublic = publicKeyToJwk(publicKey);

    expect(Object.keys(fromPrivate).sort()).toEqual(['crv', 'kty', 'x', 'y']);
    expect(fromPrivate).toEqual(fromPublic);
    const joseJwk = await exportJWK(publicKey);
    expect(fromPublic).toEqual({ kty: 'EC', crv: 'P-256', x: joseJwk.x, y: joseJwk.y });
  });

  it('round-trips through createPublicKey', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const back = createPublicKey({ key: { ...publicKeyToJwk(publicKey) }, format: 'jwk' });
    expect(back.equals(publicKey)).toBe(true);
  });

  it.each([
    ['P-384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey, /EC secp384r1/],
    ['RSA', () => generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey, /rsa/],
    ['Ed25519', () => generateKeyPairSync('ed25519').publicKey, /ed25519/],
  ])('rejects a %s key', (_name, makeKey, found) => {
    let caught: unknown;
    try {
      publicKeyToJwk(makeKey());
    } catch (error) {
      caught = error;
    }
    expect((caught as { code?: string }).code).toBe('ERR_KEY_NOT_P256');
    expect((caught as Error).message).toMatch(found);
  });

  it('rejects a value that is not a KeyObject', () => {
    expect(() => publicKeyToJwk({} as never)).toThrow(TypeError);
  });
});

describe('jwkThumbprint', () => {
  it('matches jose for many keys', async () => {
    for (let i = 0; i < 20; i++) {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const expected = await calculateJwkThumbprint(await exportJWK(publicKey), 'sha256');
      expect(jwkThumbprint(publicKey)).toBe(expected);
      expect(jwkThumbprint(privateKey)).toBe(expected);
    }
  });

  it('hashes the canonical member order of RFC 7638', async () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { x, y } = publicKeyToJwk(publicKey);
    const canonical = `{"crv":"P-256","kty":"EC","x":"${x}","y":"${y}"}`;
    const { createHash } = await import('node:crypto');
    const expected = createHash('sha256').update(canonical).digest('base64url');
    expect(jwkThumbprint(publicKey)).toBe(expected);
    expect(expected).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});
