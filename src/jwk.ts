/**
 * Public keys as JSON Web Keys (RFC 7517, RFC 7518 §6.2) and their RFC 7638 thumbprints, for
 * P-256 only. The thumbprint names a key independently of where it is stored, so the CLI prints
 * it after an import and for `public-key`, and users compare it across backends.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { KeyError } from './errors.js';

/** The public members of a P-256 JWK (RFC 7518 §6.2.1). */
export interface P256PublicJwk {
  kty: 'EC';
  crv: 'P-256';
  /** The x coordinate, 32 bytes in base64url. */
  x: string;
  /** The y coordinate, 32 bytes in base64url. */
  y: string;
}

/**
 * Converts a P-256 public key to a JWK holding only `kty`, `crv`, `x` and `y`. A private
 * `KeyObject` is reduced to its public half first, so the private scalar `d` is never exported.
 *
 * @example
 * const jwk = publicKeyToJwk(await signer.getPublicKey());
 * // { kty: 'EC', crv: 'P-256', x: '...', y: '...' }
 */
export function publicKeyToJwk(key: KeyObject): P256PublicJwk {
  const publicKey = toPublicKey(key);
  assertP256(publicKey);

  const exported = publicKey.export({ format: 'jwk' });
  if (typeof exported.x !== 'string' || typeof exported.y !== 'string') {
    throw notP256('an EC key without x and y coordinates');
  }
  return { kty: 'EC', crv: 'P-256', x: exported.x, y: exported.y };
}

/**
 * Computes the RFC 7638 SHA-256 thumbprint of a P-256 key, in base64url without padding.
 *
 * RFC 7638 §3.2 hashes the required members only (`crv`, `kty`, `x`, `y` for EC), in
 * lexicographic order, with no whitespace, so the same key gives the same thumbprint everywhere.
 *
 * @example
 * const thumbprint = jwkThumbprint(publicKey); // 43 base64url characters
 */
export function jwkThumbprint(key: KeyObject): string {
  const { crv, kty, x, y } = publicKeyToJwk(key);
  const canonical = JSON.stringify({ crv, kty, x, y });
  return createHash('sha256').update(canonical, 'utf8').digest('base64url');
}

function toPublicKey(key: KeyObject): KeyObject {
  if (typeof key !== 'object' || key === null || typeof key.export !== 'function') {
    throw new TypeError('Expected a KeyObject from node:crypto.');
  }
  if (key.type === 'secret') throw notP256('a secret (symmetric) key');
  return key.type === 'private' ? createPublicKey(key) : key;
}

function assertP256(key: KeyObject): void {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType === 'ec' && curve === 'prime256v1') return;
  throw notP256(key.asymmetricKeyType === 'ec' ? `EC ${curve}` : String(key.asymmetricKeyType));
}

function notP256(found: string): KeyError {
  return new KeyError(
    'ERR_KEY_NOT_P256',
    `The key is ${found}, but a JWK thumbprint here needs a P-256 (prime256v1) public key.`,
    { details: { found } },
  );
}
