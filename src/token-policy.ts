/**
 * Refresh policies: when a cached token is due for a new one. Each Apple token profile names
 * one, and the token provider and the CLI's file cache both apply it.
 */

/** Refresh a token by the time left before `exp`, for long-lived tokens such as a client secret. */
export interface BeforeExpiryPolicy {
  type: 'before-expiry';
  /** Refresh once this fraction of the lifetime (`exp - iat`) has passed, for example 0.5. */
  refreshAtFraction: number;
  /** Never serve a token with fewer seconds than this left before `exp`. */
  minRemainingSeconds: number;
}

/**
 * Refresh a token by its own age since `iat`, for APNs-style tokens that Apple wants replaced
 * between 20 and 60 minutes and never more often than every 20 minutes.
 */
export interface ByAgePolicy {
  type: 'by-age';
  /** The youngest age at which a refresh may happen, in seconds (1200 for APNs). */
  minAgeSeconds: number;
  /** The age at which the token must be replaced, in seconds (3600 for APNs). */
  maxAgeSeconds: number;
  /** Refresh at this age when nothing forces it earlier, in seconds. */
  targetAgeSeconds: number;
}

/** When a token kind wants its tokens refreshed. */
export type RefreshPolicy = BeforeExpiryPolicy | ByAgePolicy;

/** The times a refresh decision needs: `iat` and `exp` in whole seconds since the epoch. */
export interface TokenTimes {
  iat: number;
  /** Absent for kinds without `exp`, such as APNs; a by-age policy then bounds the lifetime. */
  exp: number | undefined;
}

/** When one token is due, and how long it may be served, in seconds since the epoch. */
export interface RefreshWindow {
  /** The earliest moment a routine refresh may happen (the 20-minute floor for APNs). */
  earliestRefreshAt: number;
  /** The moment a refresh becomes due. */
  refreshAt: number;
  /** The last moment the token may be served. Past it, a caller must wait for a new token. */
  usableUntil: number;
}

/**
 * Computes a token's refresh window under `policy`. `marginSeconds` is the validity a caller
 * needs left when it receives the token. It tightens `usableUntil`, never loosens it.
 *
 * @example
 * computeRefreshWindow(
 *   { type: 'by-age', minAgeSeconds: 1200, maxAgeSeconds: 3600, targetAgeSeconds: 2700 },
 *   { iat: 1_700_000_000, exp: undefined },
 *   60,
 * ); // { earliestRefreshAt: 1700001200, refreshAt: 1700002700, usableUntil: 1700003540 }
 */
export function computeRefreshWindow(
  policy: RefreshPolicy,
  times: TokenTimes,
  marginSeconds = 0,
): RefreshWindow {
  if (policy.type === 'before-expiry') return beforeExpiryWindow(policy, times, marginSeconds);
  return byAgeWindow(policy, times, marginSeconds);
}

function beforeExpiryWindow(
  policy: BeforeExpiryPolicy,
  times: TokenTimes,
  marginSeconds: number,
): RefreshWindow {
  // A before-expiry policy without `exp` cannot bound the token, so it is never served.
  if (times.exp === undefined) {
    return { earliestRefreshAt: times.iat, refreshAt: times.iat, usableUntil: times.iat - 1 };
  }

  const usableUntil = times.exp - Math.max(policy.minRemainingSeconds, marginSeconds);
  const fractionPoint = times.iat + Math.floor((times.exp - times.iat) * policy.refreshAtFraction);
  return {
    earliestRefreshAt: times.iat,
    refreshAt: Math.min(fractionPoint, usableUntil),
    usableUntil,
  };
}

function byAgeWindow(policy: ByAgePolicy, times: TokenTimes, marginSeconds: number): RefreshWindow {
  const ageLimit = times.iat + policy.maxAgeSeconds;
  const hardEnd = times.exp === undefined ? ageLimit : Math.min(ageLimit, times.exp);
  const usableUntil = hardEnd - marginSeconds;
  const earliestRefreshAt = times.iat + policy.minAgeSeconds;
  const target = times.iat + policy.targetAgeSeconds;
  return {
    earliestRefreshAt,
    refreshAt: Math.min(Math.max(target, earliestRefreshAt), usableUntil),
    usableUntil,
  };
}

/**
 * Throws `TypeError` when `policy` is not a well-formed refresh policy, naming the field.
 *
 * @example
 * assertRefreshPolicy({ type: 'before-expiry', refreshAtFraction: 0.5, minRemainingSeconds: 60 });
 */
export function assertRefreshPolicy(policy: unknown): asserts policy is RefreshPolicy {
  const candidate = policy as { type?: unknown } | null;
  if (typeof candidate !== 'object' || candidate === null) {
    throw new TypeError('A refresh policy must be an object with a type field.');
  }
  if (candidate.type === 'before-expiry')
    return assertBeforeExpiry(candidate as BeforeExpiryPolicy);
  if (candidate.type === 'by-age') return assertByAge(candidate as ByAgePolicy);
  throw new TypeError(
    `Refresh policy type ${JSON.stringify(candidate.type)} is unknown; use 'before-expiry' or 'by-age'.`,
  );
}

function assertBeforeExpiry(policy: Partial<BeforeExpiryPolicy>): void {
  const fraction = policy.refreshAtFraction;
  if (typeof fraction !== 'number' || !(fraction > 0 && fraction < 1)) {
    throw new TypeError(
      `refreshAtFraction must be a number between 0 and 1 (exclusive), got ${String(fraction)}.`,
    );
  }
  assertSeconds('minRemainingSeconds', policy.minRemainingSeconds);
}

function assertByAge(policy: Partial<ByAgePolicy>): void {
  const { minAgeSeconds, targetAgeSeconds, maxAgeSeconds } = policy;
  assertSeconds('minAgeSeconds', minAgeSeconds);
  assertSeconds('targetAgeSeconds', targetAgeSeconds);
  assertSeconds('maxAgeSeconds', maxAgeSeconds);
  if (!(minAgeSeconds! <= targetAgeSeconds! && targetAgeSeconds! < maxAgeSeconds!)) {
    throw new TypeError(
      'A by-age policy needs minAgeSeconds <= targetAgeSeconds < maxAgeSeconds, got ' +
        `${minAgeSeconds}, ${targetAgeSeconds} and ${maxAgeSeconds}.`,
    );
  }
}

function assertSeconds(field: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`${field} must be a whole number of seconds >= 0, got ${String(value)}.`);
  }
}
