/**
 * The token record that the provider, the stores and the file cache pass around: the compact
 * JWS with its `iat` and `exp` in whole seconds (RFC 7519 §4.1.4 and §4.1.6 NumericDate).
 */
import { KmsJwtError } from './errors.js';

/** A minted token with the times every refresh decision is made from. */
export interface MintedToken {
  /** The compact JWS. Never logged, never put in an event or an error message. */
  token: string;
  /** Issued-at, seconds since the epoch. */
  iat: number;
  /** Expiry, seconds since the epoch, or undefined for kinds without `exp` (APNs). */
  exp: number | undefined;
}

/** A function that mints a new token, such as a wrapped `createAppleClientSecret` call. */
export type MintFunction = () => Promise<MintedToken>;

// 10^11 seconds is the year 5138, but 10^11 milliseconds is 1973, so a larger time is milliseconds.
const millisecondsThreshold = 1e11;
const compactJwsPattern = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Throws `ERR_TOKEN_INVALID` unless `value` is a `{ token, iat, exp }` record with a compact JWS
 * and integer times, `exp` after `iat`, that agree with the token's own `iat` and `exp` claims.
 * `source` names where the value came from.
 *
 * @example
 * // The payload is {"iat":1700000000,"exp":1700003600}. The signature is not checked here.
 * const token =
 *   'eyJhbGciOiJFUzI1NiJ9.eyJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMzYwMH0.c2lnbmF0dXJl';
 * assertMintedToken({ token, iat: 1700000000, exp: 1700003600 }, 'mint');
 */
export function assertMintedToken(value: unknown, source: string): asserts value is MintedToken {
  const record = value as Partial<MintedToken> | null;
  const problem = findProblem(record);
  if (problem === undefined) return;
  throw new KmsJwtError(
    'ERR_TOKEN_INVALID',
    `The token from ${source} is unusable: ${problem}. A mint function must resolve to ` +
      '{ token, iat, exp } with a compact JWS, and iat and exp in whole seconds since the epoch ' +
      "copied from the token's own claims.",
    { details: { source } },
  );
}

function findProblem(record: Partial<MintedToken> | null): string | undefined {
  if (typeof record !== 'object' || record === null) return 'it is not an object';
  if (typeof record.token !== 'string' || !compactJwsPattern.test(record.token)) {
    return 'token is not a compact JWS string';
  }
  if (!isNumericDate(record.iat)) return `iat is ${describe(record.iat)}, not whole seconds`;
  if (record.iat > millisecondsThreshold) return `iat (${record.iat}) looks like milliseconds`;
  if (record.exp !== undefined) {
    if (!isNumericDate(record.exp)) return `exp is ${describe(record.exp)}, not whole seconds`;
    if (record.exp > millisecondsThreshold) return `exp (${record.exp}) looks like milliseconds`;
    if (record.exp <= record.iat) return `exp (${record.exp}) is not after iat (${record.iat})`;
  }
  return findClaimsMismatch(record as MintedToken);
}

/**
 * Compares the record's times with the token's claims. Decisions are made from the record, so a
 * record that claims a later exp than the token would have an expired token served.
 */
function findClaimsMismatch(record: MintedToken): string | undefined {
  const claims = decodeClaims(record.token);
  if (claims === undefined) return 'the token payload is not a JSON object';
  if (claims.iat !== undefined && claims.iat !== record.iat) {
    return `iat (${record.iat}) differs from the token's iat claim (${describe(claims.iat)})`;
  }
  if (claims.exp !== record.exp) {
    const expected = describe(claims.exp);
    return `exp (${describe(record.exp)}) differs from the token's exp claim (${expected})`;
  }
  return undefined;
}

function decodeClaims(token: string): { iat?: unknown; exp?: unknown } | undefined {
  try {
    const payload = Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8');
    const claims: unknown = JSON.parse(payload);
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) return undefined;
    return claims;
  } catch {
    return undefined;
  }
}

function isNumericDate(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

function describe(value: unknown): string {
  if (value === undefined) return 'none';
  return typeof value === 'number' ? String(value) : typeof value;
}

/**
 * Copies the three fields of `value` once and checks the copy, so that a getter on a live
 * object cannot change a value after it passed the check. Throws like {@link assertMintedToken}.
 *
 * @example
 * const token =
 *   'eyJhbGciOiJFUzI1NiJ9.eyJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMzYwMH0.c2lnbmF0dXJl';
 * const record = copyMintedToken({ token, iat: 1700000000, exp: 1700003600 }, 'mint');
 */
export function copyMintedToken(value: unknown, source: string): MintedToken {
  const isObject = typeof value === 'object' && value !== null;
  const copy: unknown = isObject ? pickMintedToken(value as MintedToken) : value;
  assertMintedToken(copy, source);
  return copy;
}

/** Copies only the three known fields, so that no stray field is stored or logged. */
export function pickMintedToken(record: MintedToken): MintedToken {
  return { token: record.token, iat: record.iat, exp: record.exp };
}
