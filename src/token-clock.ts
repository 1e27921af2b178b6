/**
 * Time for the token provider. Tokens carry wall-clock `iat` and `exp`, but a wall clock can
 * jump (NTP steps, a resumed VM, an operator). So each cached token also records the monotonic
 * time at which this process minted or fetched it. The provider judges a token by the later of
 * the wall clock and "wall clock at fetch + monotonic time since", which refreshes early rather
 * than serving late, and reports the gap between the two as a clock jump. A token whose iat is
 * ahead of the wall clock moves every later reading ahead by that lead, for the same reason.
 */
import { computeRefreshWindow, type RefreshPolicy, type RefreshWindow } from './token-policy.js';
import type { MintedToken } from './token-record.js';

/** The clocks a provider reads, in milliseconds. Tests inject both. */
export interface ProviderClocks {
  /** Wall clock, milliseconds since the epoch. */
  now: () => number;
  /** Monotonic clock, milliseconds from an arbitrary origin, such as `performance.now`. */
  monotonicNow: () => number;
  /**
   * How far the wall clock has been seen behind a signer's clock, in milliseconds: the largest
   * amount by which a token's iat was ahead of the wall clock when the token arrived. Readings add
   * it, so that a token ends by the signer's clock whenever that clock is the later one.
   */
  behindMs: number;
}

/** A cached token with its refresh window and the clock readings taken when it arrived. */
export interface CachedToken {
  record: MintedToken;
  window: RefreshWindow;
  /** The jittered moment, in seconds since the epoch, at which a refresh becomes due. */
  dueAt: number;
  /** Where this process got the token. */
  source: 'mint' | 'store';
  wallAtFetchMs: number;
  monotonicAtFetchMs: number;
  /** The last wall-clock drift reported for this token, so that one jump is reported once. */
  reportedDriftMs: number;
}

/** Settings that shape a cached token's window. */
export interface WindowSettings {
  policy: RefreshPolicy;
  marginSeconds: number;
  /** The largest jitter added after the refresh point, or undefined for the default. */
  jitterSeconds: number | undefined;
  random: () => number;
}

// A tenth of the room between the refresh point and the usable end, capped at five minutes,
// spreads a fleet's refreshes without pushing any of them close to the end.
const defaultJitterCapSeconds = 300;
const defaultJitterShare = 0.1;

/** Builds the cache entry for a token that this process just minted or fetched. */
export function createCachedToken(
  record: MintedToken,
  source: CachedToken['source'],
  settings: WindowSettings,
  clocks: ProviderClocks,
): CachedToken {
  const wallAtFetchMs = clocks.now();
  // The signer's clock read at least iat when it signed, so an iat ahead shows this host behind.
  clocks.behindMs = Math.max(clocks.behindMs, record.iat * 1000 - wallAtFetchMs);
  const window = computeRefreshWindow(settings.policy, record, settings.marginSeconds);
  const room = Math.max(0, window.usableUntil - window.refreshAt);
  const span =
    settings.jitterSeconds ?? Math.min(defaultJitterCapSeconds, room * defaultJitterShare);
  const dueAt = Math.min(
    window.refreshAt + Math.floor(settings.random() * span),
    window.usableUntil,
  );

  return {
    record,
    window,
    dueAt,
    source,
    wallAtFetchMs,
    monotonicAtFetchMs: clocks.monotonicNow(),
    reportedDriftMs: 0,
  };
}

/** Readings for one decision about a cached token. */
export interface ClockReading {
  /**
   * The later of the wall clock and the monotonic estimate, plus how far the wall clock was seen
   * behind a signer's, in whole seconds.
   */
  nowSeconds: number;
  /** Wall clock minus the monotonic estimate, in milliseconds. */
  driftMs: number;
  /** The token's age in seconds, counted by the monotonic clock since it arrived. */
  monotonicAgeSeconds: number;
}

/** Reads both clocks against `entry`, so that a jumped wall clock can only make a token older. */
export function readClock(entry: CachedToken, clocks: ProviderClocks): ClockReading {
  const wall = clocks.now();
  const elapsed = clocks.monotonicNow() - entry.monotonicAtFetchMs;
  const estimate = entry.wallAtFetchMs + elapsed;
  const ageAtFetchSeconds = entry.wallAtFetchMs / 1000 - entry.record.iat;

  return {
    nowSeconds: Math.floor((Math.max(wall, estimate) + clocks.behindMs) / 1000),
    driftMs: Math.round(wall - estimate),
    monotonicAgeSeconds: ageAtFetchSeconds + elapsed / 1000,
  };
}

/** Returns true while `entry` may be served. */
export function isUsable(entry: CachedToken, reading: ClockReading): boolean {
  return reading.nowSeconds < entry.window.usableUntil;
}

/**
 * Returns true when a routine refresh of `entry` is due. The policy's floor (20 minutes for
 * APNs) is counted on the monotonic clock, so a wall clock that jumps ahead cannot bring a
 * routine refresh forward. It can still make the token unusable, which forces one.
 */
export function isDue(entry: CachedToken, reading: ClockReading): boolean {
  const floorAge = entry.window.earliestRefreshAt - entry.record.iat;
  return reading.nowSeconds >= entry.dueAt && reading.monotonicAgeSeconds >= floorAge;
}

/** Milliseconds until `entry` becomes due, by both the jittered point and the floor. */
export function millisecondsUntilDue(entry: CachedToken, reading: ClockReading): number {
  const untilPoint = (entry.dueAt - reading.nowSeconds) * 1000;
  const floorAge = entry.window.earliestRefreshAt - entry.record.iat;
  const untilFloor = (floorAge - reading.monotonicAgeSeconds) * 1000;
  return Math.max(untilPoint, untilFloor, 0);
}
