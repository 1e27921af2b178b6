/**
 * One coordinated refresh for the token provider. It adopts a token that another process put
 * in the shared store, or takes the store's lease and mints, or waits while another process
 * holds the lease. When the store fails, this process falls back to minting by itself.
 */
import { KmsJwtError } from './errors.js';
import type { SignerEvent } from './signer.js';
import type { TokenLease, TokenStore } from './stores/store.js';
import {
  createCachedToken,
  isDue,
  isUsable,
  readClock,
  type CachedToken,
  type ProviderClocks,
  type WindowSettings,
} from './token-clock.js';
import { computeRefreshWindow, type RefreshPolicy } from './token-policy.js';
import { copyMintedToken, type MintFunction } from './token-record.js';
import type { MintedToken } from './token-record.js';

/** What a refresh needs from its provider. */
export interface RefreshContext {
  cacheKey: string;
  store: TokenStore;
  mint: MintFunction;
  settings: WindowSettings;
  clocks: ProviderClocks;
  mintTimeoutMs: number;
  /** Deadline for one store operation, in milliseconds. */
  storeTimeoutMs: number;
  lockTtlMs: number;
  pollIntervalMs: number;
  /** True while the store is failing, so that one outage is reported once. */
  storeUnavailable: boolean;
  current: () => CachedToken | undefined;
  isClosed: () => boolean;
  /** True while a caller of `get()` waits for this refresh. */
  hasWaiters: () => boolean;
  emit: (event: SignerEvent) => void;
}

const unavailable = Symbol('store unavailable');
// A store failing with one of these codes is set up wrongly and will never work, so falling back
// to local mints would hide it from every caller without onEvent. `get()` rejects instead.
const storeConfigurationCodes = new Set(['ERR_PEER_MISSING']);
const storeConfigurationErrors = new WeakSet<object>();
// An iat this far ahead of this host's clock means one of the clocks is wrong. APNs rejects
// such tokens, so they are neither minted nor adopted.
const maxFutureIatSeconds = 300;

/**
 * Produces a fresh token for the provider: from the store when another process minted one,
 * and otherwise by minting under the store's lease.
 */
export async function coordinateRefresh(
  context: RefreshContext,
  reason: string,
): Promise<CachedToken> {
  // Two lease times: the current holder's lease can run out, and the process that takes it over
  // then needs up to one more lease time to store its token. Past that, mint locally.
  const deadline = context.clocks.monotonicNow() + 2 * context.lockTtlMs + context.pollIntervalMs;

  for (;;) {
    const stored = await readAdoptable(context);
    if (stored === unavailable) return mintLocally(context, reason);
    if (stored !== undefined) return stored;

    const lease = await acquireLease(context);
    if (lease === unavailable) return mintLocally(context, reason);
    if (lease !== undefined) return mintUnderLease(context, lease, reason);

    if (context.clocks.monotonicNow() >= deadline) {
      reportStoreFailure(context, 'acquire', new Error('the lease holder never stored a token'));
      return mintLocally(context, reason);
    }
    await sleep(context.pollIntervalMs, context.hasWaiters());
    assertStillOpen(context);
  }
}

async function mintUnderLease(
  context: RefreshContext,
  lease: TokenLease,
  reason: string,
): Promise<CachedToken> {
  try {
    // Another process may have stored a token between the first read and the lease.
    const stored = await readAdoptable(context);
    if (stored !== undefined && stored !== unavailable) return stored;

    const record = await mintOnce(context, reason, lease.fence);
    const written = await writeLease(context, lease, record);
    if (written === false) {
      context.emit({ type: 'store-fenced', store: context.store.name, fence: lease.fence });
      const newer = await readAdoptable(context);
      if (newer !== undefined && newer !== unavailable) return newer;
    }
    return createCachedToken(record, 'mint', context.settings, context.clocks);
  } finally {
    await withStoreDeadline(context, 'release', lease.release()).catch(() => undefined);
  }
}

async function mintLocally(context: RefreshContext, reason: string): Promise<CachedToken> {
  const record = await mintOnce(context, reason, undefined);
  return createCachedToken(record, 'mint', context.settings, context.clocks);
}

/** Runs the mint function once, under the mint deadline, and checks its result. */
async function mintOnce(
  context: RefreshContext,
  reason: string,
  fence: number | undefined,
): Promise<MintedToken> {
  const started = context.clocks.monotonicNow();
  const minted = await withDeadline(context, Promise.resolve().then(context.mint));
  const result = copyMintedToken(minted, 'the mint function');
  assertIatNotAhead(context, result.iat);
  assertUsableNow(context, result);

  const durationMs = Math.round(context.clocks.monotonicNow() - started);
  context.emit({ type: 'mint', reason, iat: result.iat, exp: result.exp, durationMs, fence });
  return result;
}

function withDeadline<T>(context: RefreshContext, work: Promise<T>): Promise<T> {
  const keepAlive = context.hasWaiters();
  return raceTimer(work, context.mintTimeoutMs, keepAlive, () => mintTimeoutError(context));
}

/** Bounds one store call, so that a hung store makes the provider mint locally, not wait. */
function withStoreDeadline<T>(
  context: RefreshContext,
  operation: string,
  work: Promise<T>,
): Promise<T> {
  const timeoutMs = context.storeTimeoutMs;
  return raceTimer(work, timeoutMs, context.hasWaiters(), () => {
    return new KmsJwtError(
      'ERR_STORE_TIMEOUT',
      `The ${context.store.name} store did not finish ${operation} for ${context.cacheKey} ` +
        `within ${timeoutMs} ms. Check the store's health, or raise storeTimeoutMs.`,
      { details: { cacheKey: context.cacheKey, store: context.store.name, operation, timeoutMs } },
    );
  });
}

/**
 * Rejects with `onTimeout()` unless `work` settles within `timeoutMs`. With `keepAlive`, the
 * timer keeps the process alive until then, so that a caller awaiting a mint or store call that
 * holds no handle of its own gets the timeout error instead of a process that exits mid-await.
 */
function raceTimer<T>(
  work: Promise<T>,
  timeoutMs: number,
  keepAlive: boolean,
  onTimeout: () => Error,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), timeoutMs);
    if (!keepAlive) timer.unref();
  });
  work.catch(() => undefined);
  return Promise.race([work, deadline]).finally(() => {
    clearTimeout(timer);
    timer?.unref();
  });
}

function mintTimeoutError(context: RefreshContext): KmsJwtError {
  return new KmsJwtError(
    'ERR_TOKEN_MINT_TIMEOUT',
    `Minting a token for ${context.cacheKey} did not finish within ${context.mintTimeoutMs} ms. ` +
      'Check the signing backend, or raise mintTimeoutMs.',
    { details: { cacheKey: context.cacheKey, timeoutMs: context.mintTimeoutMs } },
  );
}

function assertIatNotAhead(context: RefreshContext, iat: number): void {
  const aheadSeconds = iat - Math.floor(context.clocks.now() / 1000);
  if (aheadSeconds <= maxFutureIatSeconds) return;
  throw new KmsJwtError(
    'ERR_TOKEN_INVALID',
    `The token from the mint function has an iat ${aheadSeconds} s ahead of this host's clock. ` +
      'Apple rejects tokens issued in the future; check the clock the mint function uses.',
    { details: { cacheKey: context.cacheKey, aheadSeconds } },
  );
}

function assertUsableNow(context: RefreshContext, record: MintedToken): void {
  const { policy, marginSeconds } = context.settings;
  const window = computeRefreshWindow(policy, record, marginSeconds);
  // As in readClock: the signer's clock read at least iat, even when this host's clock is behind.
  const { now, behindMs } = context.clocks;
  const nowSeconds = Math.floor(Math.max(now() + behindMs, record.iat * 1000) / 1000);
  if (nowSeconds < window.usableUntil) return;
  throw new KmsJwtError(
    'ERR_TOKEN_INVALID',
    `The token just minted for ${context.cacheKey} is already past its usable end ` +
      `(iat ${record.iat}, exp ${record.exp ?? 'none'}, usable until ${window.usableUntil}). ` +
      'Mint longer-lived tokens, or lower the policy minimum and marginSeconds.',
    { details: { cacheKey: context.cacheKey, usableUntil: window.usableUntil } },
  );
}

/** Reads the store, returning a cache entry only when it can replace the current token. */
async function readAdoptable(
  context: RefreshContext,
): Promise<CachedToken | undefined | typeof unavailable> {
  let record: unknown;
  try {
    record = await withStoreDeadline(context, 'read', context.store.read(context.cacheKey));
  } catch (error) {
    rethrowConfigurationError(error);
    reportStoreFailure(context, 'read', error);
    return unavailable;
  }
  reportStoreRecovery(context);
  if (record === undefined) return undefined;
  const checked = acceptRecord(context, record);
  if (checked === undefined) return undefined;

  const entry = createCachedToken(checked, 'store', context.settings, context.clocks);
  return canReplaceCurrent(context, entry) ? entry : undefined;
}

/** Returns a checked copy of a stored record, or undefined after reporting why it is unusable. */
function acceptRecord(context: RefreshContext, record: unknown): MintedToken | undefined {
  let checked: MintedToken;
  try {
    checked = copyMintedToken(record, `the ${context.store.name} store`);
  } catch {
    context.emit({ type: 'store-invalid', store: context.store.name });
    return undefined;
  }

  const aheadSeconds = checked.iat - Math.floor(context.clocks.now() / 1000);
  if (aheadSeconds <= maxFutureIatSeconds) return checked;
  context.emit({ type: 'clock-skew', store: context.store.name, aheadSeconds });
  return undefined;
}

/** A stored token replaces the current one when it is usable and, if ours is usable, not due. */
function canReplaceCurrent(context: RefreshContext, entry: CachedToken): boolean {
  const reading = readClock(entry, context.clocks);
  if (!isUsable(entry, reading)) return false;

  const current = context.current();
  if (current === undefined || !isUsable(current, readClock(current, context.clocks))) return true;
  return current.record.token !== entry.record.token && !isDue(entry, reading);
}

async function acquireLease(
  context: RefreshContext,
): Promise<TokenLease | undefined | typeof unavailable> {
  let acquiring: Promise<TokenLease | undefined> | undefined;
  try {
    acquiring = context.store.acquire(context.cacheKey, context.lockTtlMs);
    const lease = await withStoreDeadline(context, 'acquire', acquiring);
    reportStoreRecovery(context);
    return lease;
  } catch (error) {
    // A lease granted after the deadline has no holder, and would block the fleet until it expired.
    acquiring?.then((late) => late?.release()).catch(() => undefined);
    rethrowConfigurationError(error);
    reportStoreFailure(context, 'acquire', error);
    return unavailable;
  }
}

async function writeLease(
  context: RefreshContext,
  lease: TokenLease,
  record: MintedToken,
): Promise<boolean | typeof unavailable> {
  try {
    const expiresAtMs = storageExpiry(context.settings.policy, record) * 1000;
    return await withStoreDeadline(context, 'write', lease.write(record, expiresAtMs));
  } catch (error) {
    reportStoreFailure(context, 'write', error);
    return unavailable;
  }
}

/** The moment a token stops being valid at all, in seconds: how long a store may keep it. */
export function storageExpiry(policy: RefreshPolicy, record: MintedToken): number {
  const exp = record.exp ?? Number.POSITIVE_INFINITY;
  if (policy.type === 'by-age') return Math.min(record.iat + policy.maxAgeSeconds, exp);
  return Number.isFinite(exp) ? exp : record.iat;
}

/**
 * Rethrows a store error that is a configuration error, such as `ERR_PEER_MISSING` from a Redis
 * store whose `redis` package is not installed, and marks it for {@link isStoreConfigurationError}.
 */
function rethrowConfigurationError(error: unknown): void {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  if (typeof code !== 'string' || !storeConfigurationCodes.has(code)) return;
  storeConfigurationErrors.add(error as object);
  throw error;
}

/** Returns true for a store error that the provider passes to callers as it is. */
export function isStoreConfigurationError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && storeConfigurationErrors.has(error);
}

function reportStoreFailure(context: RefreshContext, operation: string, error: unknown): void {
  if (context.storeUnavailable) return;
  context.storeUnavailable = true;
  const code = (error as { code?: unknown } | null)?.code;
  context.emit({
    type: 'store-fallback',
    store: context.store.name,
    operation,
    code: typeof code === 'string' ? code : undefined,
    message: describeThrown(error),
  });
}

/**
 * Returns the message of a thrown value. String() throws for some values, such as an object
 * without a prototype, and a throw while reporting would leave a failure uncoded.
 */
export function describeThrown(error: unknown): string {
  try {
    return error instanceof Error ? String(error.message) : String(error);
  } catch {
    return 'a value that cannot be converted to text was thrown';
  }
}

function reportStoreRecovery(context: RefreshContext): void {
  if (!context.storeUnavailable) return;
  context.storeUnavailable = false;
  context.emit({ type: 'store-recovered', store: context.store.name });
}

/**
 * Waits `ms`. The timer keeps the process alive only while a caller waits for the token, so that
 * a script awaiting `get()` does not exit while another process holds the lease.
 */
function sleep(ms: number, keepAlive: boolean): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (!keepAlive) timer.unref();
  });
}

function assertStillOpen(context: RefreshContext): void {
  if (!context.isClosed()) return;
  throw new KmsJwtError(
    'ERR_TOKEN_PROVIDER_CLOSED',
    `The token provider for ${context.cacheKey} was closed while waiting for a token.`,
    { details: { cacheKey: context.cacheKey } },
  );
}
