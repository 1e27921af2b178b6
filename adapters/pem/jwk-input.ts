/**
 * JSON Web Key input (RFC 7517, RFC 7518 §6.2): an EC P-256 JWK, or a JWK Set holding exactly
 * one key. A private JWK carries `d`; a public one only `x` and `y`. Field values are never
 * echoed, apart from short `kty` and `crv` names.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { assertKeyPairConsistent, notPrivate, type KeyPurpose } from './checks.js';
import { keyError, type KeyOrigin } from './errors.js';

/** The key pair read from a JWK. `privateKey` is undefined for a public JWK. */
export interface JwkKeys {
  privateKey: KeyObject | undefined;
  publicKey: KeyObject;
}

/**
 * Reads a P-256 JWK, or the single key of a JWK Set, for signing or for verifying.
 *
 * @example
 * readJwk({ kty: 'EC', crv: 'P-256', x: '...', y: '...' }, origin, 'public');
 */
export function readJwk(
  value: Record<string, unknown>,
  origin: KeyOrigin,
  purpose: KeyPurpose,
): JwkKeys {
  const jwk = singleKey(value, origin);
  assertP256Jwk(jwk, origin);

  const fields = { kty: 'EC', crv: 'P-256', x: String(jwk.x), y: String(jwk.y) };
  if (jwk.d === undefined) {
    if (purpose === 'private') throw notPrivate(origin, 'the JWK', 'a public JWK (it has no "d")');
    return {
      privateKey: undefined,
      publicKey: importJwk(() => createPublicKey({ key: fields, format: 'jwk' }), origin),
    };
  }

  const privateKey = importJwk(
    () => createPrivateKey({ key: { ...fields, d: String(jwk.d) }, format: 'jwk' }),
    origin,
  );
  return { privateKey, publicKey: assertKeyPairConsistent(privateKey, origin) };
}

function singleKey(value: Record<string, unknown>, origin: KeyOrigin): Record<string, unknown> {
  if (!Array.isArray(value.keys)) return value;
  if (value.keys.length !== 1) {
    throw keyError(
      'ERR_KEY_MULTIPLE',
      origin,
      `the JWK Set holds ${value.keys.length} keys, but exactly one is needed. Save the wanted key alone.`,
      { details: { count: value.keys.length } },
    );
  }
  const [key] = value.keys as unknown[];
  if (typeof key === 'object' && key !== null && !Array.isArray(key))
    return key as Record<string, unknown>;
  throw jwkError(origin, 'the JWK Set entry is not a JSON object.');
}

function assertP256Jwk(jwk: Record<string, unknown>, origin: KeyOrigin): void {
  if (typeof jwk.kty !== 'string') {
    throw jwkError(
      origin,
      'the JSON object has no "kty" member, so it is not a JWK. Give a PEM key or an EC P-256 JWK.',
    );
  }
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') {
    const found = `a JWK of kty ${shortName(jwk.kty)}${jwk.crv === undefined ? '' : ` and crv ${shortName(jwk.crv)}`}`;
    throw keyError(
      'ERR_KEY_NOT_P256',
      origin,
      `the key is ${found}, but ES256 needs kty EC and crv P-256.`,
      { details: { found } },
    );
  }
  for (const member of ['x', 'y', 'd'] as const) {
    if (member === 'd' && jwk.d === undefined) continue;
    if (typeof jwk[member] !== 'string')
      throw jwkError(origin, `the JWK member "${member}" is not a string.`);
  }
}

function importJwk(load: () => KeyObject, origin: KeyOrigin): KeyObject {
  try {
    return load();
  } catch (error) {
    throw jwkError(
      origin,
      'node:crypto rejected the JWK: x, y and d must be base64url P-256 values and the point must lie on the curve.',
      error,
    );
  }
}

function shortName(value: unknown): string {
  // kty and crv are short registered names; anything else is not echoed.
  return typeof value === 'string' && /^[A-Za-z0-9-]{1,16}$/.test(value) ? value : '(unrecognised)';
}

function jwkError(origin: KeyOrigin, problem: string, cause?: unknown) {
  return keyError('ERR_KEY_JWK_INVALID', origin, problem, cause === undefined ? {} : { cause });
}
