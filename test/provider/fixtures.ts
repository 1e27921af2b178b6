// Shared helpers for the provider and store tests: real ES256 tokens from a throwaway key, with
// times chosen by the test.
import { generateKeyPairSync, sign } from 'node:crypto';
import type { MintedToken } from '../../src/token-record.js';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });

export { publicKey };

/** Signs a real ES256 JWT with the given times, so tokens differ by their claims. */
export function makeToken(iat: number, exp: number | undefined, extra = {}): MintedToken {
  const header = Buffer.from(JSON.stringify({ alg: 'ES256', kid: 'ABC123DEFG' })).toString(
    'base64url',
  );
  const claims = { iss: 'DEF123GHIJ', iat, ...(exp === undefined ? {} : { exp }), ...extra };
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const signature = sign('sha256', Buffer.from(`${header}.${payload}`), {
    key: privateKey,
    dsaEncoding: 'ieee-p1363',
  }).toString('base64url');
  return { token: `${header}.${payload}.${signature}`, iat, exp };
}

export const clientSecretPolicy = {
  type: 'before-expiry',
  refreshAtFraction: 0.5,
  minRemainingSeconds: 86_400,
} as const;

export const apnsPolicy = {
  type: 'by-age',
  minAgeSeconds: 1200,
  maxAgeSeconds: 3600,
  targetAgeSeconds: 2700,
} as const;
