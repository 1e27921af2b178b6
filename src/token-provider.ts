/**
 * The token provider: a cheap `get()` that returns a token valid for at least a margin, minting
 * through the caller's function only when the refresh policy requires it.
 *
 * - Concurrent callers share one mint in flight (single-flight), in one process and, through a
 *   shared store's leases, across a fleet.
 * - A due token is refreshed in the background while it stays usable, with jitter. Callers wait
 *   only when no usable token is left.
 * - A failed refresh keeps the current token. Without a usable token, callers get the coded
 *   error, and the next attempt waits for an exponential backoff.
 * - Idle timers are unref()'d and stop on close(). Only while a caller awaits a token do the
 *   mint and store deadlines, and the poll for a token another process is minting, keep the
 *   process alive. Events never carry token text.
 */
import { KmsJwtError, isKmsJwtError } from './errors.js';
import type { SignerEvent } from './signer.js';
import { createMemoryStore, type TokenStore } from './stores/store.js';
import {
  isDue,
  isUsable,
  millisecondsUntilDue,
  readClock,
  type CachedToken,
  type ProviderClocks,
  type WindowSettings,
} from './token-clock.js';
import {
  coordinateRefresh,
  describeThrown,
  isStoreConfigurationError,
  type RefreshContext,
} from './token-refresh.js';
import { assertRefreshPolicy, type RefreshPolicy } from './token-policy.js';
import type { MintFunction, MintedToken } from './token-record.js';

/** Options for {@link createTokenProvider}. */
export interface TokenProviderOptions {
  /** Mints a new token, resolving to `{ token, iat, exp }` in seconds. */
  mint: MintFunction;
  /** When tokens are due, such as an Apple profile's `refreshPolicy`. */
  policy: RefreshPolicy;
  /**
   * Names the token in the store and in events, such as `apns:TEAM:KEY` from
   * {@link tokenCacheKey}. Required with `store`, so that two kinds never share a token. Without
   * `store` the default is `default`.
   */
  cacheKey?: string;
  /** Where tokens are shared. Defaults to a store private to this provider. */
  store?: TokenStore;
  /** Seconds of validity every returned token still has. Default 60. */
  marginSeconds?: number;
  /** The largest random delay added to each refresh point, in seconds. */
  jitterSeconds?: number;
  /** Deadline for one mint, in milliseconds. Default 20 000. */
  mintTimeoutMs?: number;
  /** Deadline for one store operation, in milliseconds. Default 5 000. */
  storeTimeoutMs?: number;
  /** Lease expiry in a shared store, in milliseconds. Default `mintTimeoutMs` + 5 000. */
  lockTtlMs?: number;
  /** How often a process waiting on another's lease checks the store, in ms. Default 100. */
  pollIntervalMs?: number;
  /** Backoff after a failed refresh, in milliseconds. Default 1 000 doubling up to 60 000. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Refresh on a timer, not only inside `get()`. Default true. */
  backgroundRefresh?: boolean;
  /** Wall-clock drift reported as a `clock-jump`, in milliseconds. Default 2 000. */
  clockJumpToleranceMs?: number;
  /** Wall clock in milliseconds since the epoch. Defaults to `Date.now`. */
  now?: () => number;
  /** Monotonic clock in milliseconds. Defaults to `performance.now`. */
  monotonicNow?: () => number;
  /** Random numbers in [0, 1) for jitter. Defaults to `Math.random`. */
  random?: () => number;
  /** Receives mint, refresh, failure, clock-jump, clock-skew and store events. */
  onEvent?: (event: SignerEvent) => void;
}

/** Options for one `get()` call. */
export interface TokenGetOptions {
  /** Stops this caller's wait. The shared mint keeps running for the other callers. */
  signal?: AbortSignal;
}

/** A cached token source. */
export interface TokenProvider {
  /** Resolves to a token valid for at least the margin. */
  get(options?: TokenGetOptions): Promise<string>;
  /** Like `get()`, with the token's `iat` and `exp`. */
  getRecord(options?: TokenGetOptions): Promise<MintedToken>;
  /** Stops the timers. Later calls reject with `ERR_TOKEN_PROVIDER_CLOSED`. */
  close(): Promise<void>;
}

interface FailureState {
  error: KmsJwtError;
  attempts: number;
  retryAtMonotonicMs: number;
}

const defaults = {
  marginSeconds: 60,
  mintTimeoutMs: 20_000,
  storeTimeoutMs: 5_000,
  pollIntervalMs: 100,
  backoffInitialMs: 1_000,
  backoffMaxMs: 60_000,
  clockJumpToleranceMs: 2_000,
};
// Timers wake at least this often, so that a wall-clock jump is noticed while the process idles.
const maxTimerDelayMs = 15 * 60 * 1000;

/**
 * Creates a token provider around `mint`.
 *
 * @example
 * const provider = createTokenProvider({
 *   policy: { type: 'by-age', minAgeSeconds: 1200, maxAgeSeconds: 3600, targetAgeSeconds: 2700 },
 *   cacheKey: 'apns:DEF123GHIJ:ABC123DEFG',
 *   mint: async () => {
 *     const apns = await createApnsToken({ signer, teamId: 'DEF123GHIJ', keyId: 'ABC123DEFG' });
 *     return { token: apns.token, iat: apns.claims.iat, exp: undefined };
 *   },
 * });
 * const authorization = `bearer ${await provider.get()}`;
 */
export function createTokenProvider(options: TokenProviderOptions): TokenProvider {
  assertProviderOptions(options);
  return new CachingTokenProvider(options);
}

class CachingTokenProvider implements TokenProvider {
  readonly #options: TokenProviderOptions;
  readonly #clocks: ProviderClocks;
  readonly #settings: WindowSettings;
  readonly #context: RefreshContext;
  #current: CachedToken | undefined;
  #inflight: Promise<CachedToken> | undefined;
  #failure: FailureState | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #waiters = 0;

  constructor(options: TokenProviderOptions) {
    this.#options = options;
    this.#clocks = {
      now: options.now ?? Date.now,
      monotonicNow: options.monotonicNow ?? (() => performance.now()),
      behindMs: 0,
    };
    this.#settings = {
      policy: options.policy,
      marginSeconds: options.marginSeconds ?? defaults.marginSeconds,
      jitterSeconds: options.jitterSeconds,
      random: options.random ?? Math.random,
    };
    this.#context = this.#createContext(options);
  }

  async get(options?: TokenGetOptions): Promise<string> {
    return (await this.#getCached(options)).token;
  }

  async getRecord(options?: TokenGetOptions): Promise<MintedToken> {
    // A copy, so that a caller who changes the record cannot change the cached token.
    return { ...(await this.#getCached(options)) };
  }

  async #getCached(options: TokenGetOptions = {}): Promise<MintedToken> {
    this.#assertOpen();
    const served = this.#serveCurrent();
    if (served !== undefined) return served;

    const failure = this.#failure;
    const waiting = this.#inflight !== undefined;
    if (failure && !waiting && this.#clocks.monotonicNow() < failure.retryAtMonotonicMs) {
      throw failure.error;
    }

    this.#waiters += 1;
    try {
      const entry = await waitForFlight(this.#refresh('foreground'), options.signal);
      return entry.record;
    } finally {
      this.#waiters -= 1;
    }
  }

  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    return Promise.resolve();
  }

  #createContext(options: TokenProviderOptions): RefreshContext {
    const mintTimeoutMs = options.mintTimeoutMs ?? defaults.mintTimeoutMs;
    return {
      cacheKey: options.cacheKey ?? 'default',
      store: options.store ?? createMemoryStore(),
      mint: options.mint,
      settings: this.#settings,
      clocks: this.#clocks,
      mintTimeoutMs,
      storeTimeoutMs: options.storeTimeoutMs ?? defaults.storeTimeoutMs,
      lockTtlMs: options.lockTtlMs ?? mintTimeoutMs + 5_000,
      pollIntervalMs: options.pollIntervalMs ?? defaults.pollIntervalMs,
      storeUnavailable: false,
      current: () => this.#current,
      isClosed: () => this.#closed,
      hasWaiters: () => this.#waiters > 0,
      emit: (event) => this.#emit(event),
    };
  }

  /** Returns the current token when usable, starting a background refresh when it is due. */
  #serveCurrent(): MintedToken | undefined {
    const entry = this.#current;
    if (entry === undefined) return undefined;

    const reading = readClock(entry, this.#clocks);
    this.#reportDrift(entry, reading.driftMs);
    if (!isUsable(entry, reading)) return undefined;

    if (isDue(entry, reading)) this.#startBackgroundRefresh('refresh-ahead');
    return entry.record;
  }

  #startBackgroundRefresh(reason: string): void {
    if (this.#inflight !== undefined || this.#closed) return;
    const failure = this.#failure;
    if (failure && this.#clocks.monotonicNow() < failure.retryAtMonotonicMs) return;
    this.#refresh(reason).catch(() => {
      // Reported as a failure event; the current token keeps being served.
    });
  }

  /** Starts the one refresh in flight, or joins it. */
  #refresh(reason: string): Promise<CachedToken> {
    if (this.#inflight !== undefined) return this.#inflight;

    const flight = coordinateRefresh(this.#context, reason).then(
      (entry) => this.#install(entry),
      (error: unknown) => {
        throw this.#recordFailure(error);
      },
    );
    this.#inflight = flight;
    flight
      .finally(() => {
        this.#inflight = undefined;
        this.#schedule();
      })
      .catch(() => undefined);
    return flight;
  }

  #install(entry: CachedToken): CachedToken {
    const previous = this.#current;
    this.#current = entry;
    this.#failure = undefined;
    if (previous !== undefined && previous.record.token !== entry.record.token) {
      this.#emit({ type: 'refresh', source: entry.source, iat: entry.record.iat });
    }
    return entry;
  }

  #recordFailure(error: unknown): KmsJwtError {
    const coded = toProviderError(error, this.#context.cacheKey);
    const attempts = (this.#failure?.attempts ?? 0) + 1;
    const delayMs = this.#backoffDelay(attempts);
    this.#failure = {
      error: coded,
      attempts,
      retryAtMonotonicMs: this.#clocks.monotonicNow() + delayMs,
    };

    const current = this.#current;
    const servingCurrent =
      current !== undefined && isUsable(current, readClock(current, this.#clocks));
    this.#emit({
      type: 'failure',
      operation: 'refresh',
      code: coded.code,
      causeCode: codeOf(coded.cause),
      message: coded.message,
      attempt: attempts,
      retryInMs: delayMs,
      servingCurrent,
    });
    return coded;
  }

  #backoffDelay(attempts: number): number {
    const initial = this.#options.backoff?.initialMs ?? defaults.backoffInitialMs;
    const max = this.#options.backoff?.maxMs ?? defaults.backoffMaxMs;
    const ceiling = Math.min(max, initial * 2 ** Math.min(attempts - 1, 30));
    // Half fixed, half random, so that a fleet that failed together does not retry together.
    return Math.round(ceiling / 2 + (this.#settings.random() * ceiling) / 2);
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const entry = this.#current;
    if (this.#closed || this.#options.backgroundRefresh === false || entry === undefined) return;

    const delayMs = Math.min(this.#nextWakeDelay(entry), maxTimerDelayMs);
    this.#timer = setTimeout(() => this.#onTimer(), Math.max(1, Math.ceil(delayMs)));
    this.#timer.unref();
  }

  #nextWakeDelay(entry: CachedToken): number {
    const failure = this.#failure;
    if (failure) return Math.max(0, failure.retryAtMonotonicMs - this.#clocks.monotonicNow());
    return millisecondsUntilDue(entry, readClock(entry, this.#clocks));
  }

  #onTimer(): void {
    this.#timer = undefined;
    const entry = this.#current;
    if (this.#closed || entry === undefined) return;

    const reading = readClock(entry, this.#clocks);
    this.#reportDrift(entry, reading.driftMs);
    const wanted = !isUsable(entry, reading) || isDue(entry, reading);
    if (wanted && this.#inflight === undefined) this.#startBackgroundRefresh('refresh-ahead');
    if (this.#inflight === undefined) this.#schedule();
  }

  #reportDrift(entry: CachedToken, driftMs: number): void {
    const tolerance = this.#options.clockJumpToleranceMs ?? defaults.clockJumpToleranceMs;
    if (Math.abs(driftMs - entry.reportedDriftMs) <= tolerance) return;

    entry.reportedDriftMs = driftMs;
    this.#emit({
      type: 'clock-jump',
      driftMs,
      direction: driftMs > 0 ? 'forward' : 'backward',
      message:
        `The wall clock moved ${Math.abs(driftMs)} ms ${driftMs > 0 ? 'ahead of' : 'behind'} ` +
        'the monotonic clock. Check NTP on this host; tokens are judged by the later clock.',
    });
  }

  #emit(event: SignerEvent): void {
    try {
      this.#options.onEvent?.({ ...event, cacheKey: this.#context.cacheKey });
    } catch {
      // A faulty callback must not break token delivery.
    }
  }

  #assertOpen(): void {
    if (!this.#closed) return;
    throw new KmsJwtError(
      'ERR_TOKEN_PROVIDER_CLOSED',
      `The token provider for ${this.#context.cacheKey} is closed; create a new one.`,
      { details: { cacheKey: this.#context.cacheKey } },
    );
  }
}

/** Resolves with `flight`, or rejects with `ERR_TOKEN_ABORTED` when `signal` aborts first. */
function waitForFlight<T>(flight: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return flight;
  if (signal.aborted) return Promise.reject(abortedError(signal));

  return new Promise<T>((resolve, reject) => {
    const stop = onAbort(signal, () => reject(abortedError(signal)));
    flight.then(resolve, reject).finally(stop);
  });
}

interface SignalWaiters {
  callbacks: Set<() => void>;
  listener: () => void;
}

// Callers waiting with one signal share one listener on it. Node prints a
// MaxListenersExceededWarning once a signal has more than 10, such as a shutdown signal passed
// to every get() during a cold start.
const waitersBySignal = new WeakMap<AbortSignal, SignalWaiters>();

/** Runs `callback` when `signal` aborts, and returns a function that cancels this. */
function onAbort(signal: AbortSignal, callback: () => void): () => void {
  let waiters = waitersBySignal.get(signal);
  if (waiters === undefined) {
    const callbacks = new Set<() => void>();
    const listener = () => {
      waitersBySignal.delete(signal);
      for (const waiting of callbacks) waiting();
    };
    waiters = { callbacks, listener };
    waitersBySignal.set(signal, waiters);
    signal.addEventListener('abort', listener, { once: true });
  }

  const shared = waiters;
  shared.callbacks.add(callback);
  return () => {
    shared.callbacks.delete(callback);
    if (shared.callbacks.size > 0 || waitersBySignal.get(signal) !== shared) return;
    waitersBySignal.delete(signal);
    signal.removeEventListener('abort', shared.listener);
  };
}

function abortedError(signal: AbortSignal): KmsJwtError {
  return new KmsJwtError('ERR_TOKEN_ABORTED', 'Waiting for a token was aborted by the caller.', {
    cause: signal.reason,
  });
}

// Codes the provider raises itself. They reach callers unwrapped.
const providerCodes = new Set([
  'ERR_TOKEN_INVALID',
  'ERR_TOKEN_MINT_TIMEOUT',
  'ERR_TOKEN_MINT_FAILED',
  'ERR_TOKEN_PROVIDER_CLOSED',
  'ERR_TOKEN_ABORTED',
]);

/**
 * Keeps the provider's own coded errors and a store's configuration error, such as
 * ERR_PEER_MISSING, and wraps everything else as ERR_TOKEN_MINT_FAILED.
 */
function toProviderError(error: unknown, cacheKey: string): KmsJwtError {
  if (isKmsJwtError(error) && providerCodes.has(error.code)) return error;
  if (isStoreConfigurationError(error)) return error as KmsJwtError;

  const causeCode = codeOf(error);
  return new KmsJwtError(
    'ERR_TOKEN_MINT_FAILED',
    `Minting a token for ${cacheKey} failed` +
      `${causeCode === undefined ? '' : ` (${causeCode})`}: ${describeThrown(error)}`,
    { cause: error, details: { cacheKey, causeCode } },
  );
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

function assertProviderOptions(options: TokenProviderOptions): void {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('createTokenProvider expects an options object.');
  }
  if (typeof options.mint !== 'function') {
    throw new TypeError('createTokenProvider needs mint, a function resolving to a token.');
  }
  assertRefreshPolicy(options.policy);
  if (options.store !== undefined && !(typeof options.cacheKey === 'string' && options.cacheKey)) {
    throw new TypeError(
      'createTokenProvider needs cacheKey with a shared store, such as ' +
        "tokenCacheKey('apns', teamId, keyId), so that different tokens never share one entry.",
    );
  }
  if (options.cacheKey !== undefined && typeof options.cacheKey !== 'string') {
    throw new TypeError(`cacheKey must be a string, got ${typeof options.cacheKey}.`);
  }
  const fields = [
    'marginSeconds',
    'jitterSeconds',
    'mintTimeoutMs',
    'storeTimeoutMs',
    'lockTtlMs',
    'pollIntervalMs',
  ] as const;
  for (const field of fields) {
    const value = options[field];
    if (value !== undefined && !(Number.isFinite(value) && value >= 0)) {
      throw new TypeError(`${field} must be a number >= 0, got ${String(value)}.`);
    }
  }
  assertBackoff(options.backoff);
}

/** Throws TypeError unless `backoff` is absent or contains finite delays >= 0 in milliseconds. */
function assertBackoff(backoff: TokenProviderOptions['backoff']): void {
  if (backoff === undefined) return;
  if (typeof backoff !== 'object' || backoff === null) {
    throw new TypeError('backoff must be an object such as { initialMs: 1000, maxMs: 60000 }.');
  }
  for (const field of ['initialMs', 'maxMs'] as const) {
    const value: unknown = backoff[field];
    if (
      value !== undefined &&
      !(typeof value === 'number' && Number.isFinite(value) && value >= 0)
    ) {
      throw new TypeError(
        `backoff.${field} must be a number of milliseconds >= 0, got ${String(value)}.`,
      );
    }
  }
}

/**
 * Builds a cache key from identifiers, percent-encoding each part so that none can collide.
 *
 * @example
 * tokenCacheKey('client-secret', 'DEF123GHIJ', 'ABC123DEFG', 'com.example.web');
 * // 'client-secret:DEF123GHIJ:ABC123DEFG:com.example.web'
 */
export function tokenCacheKey(...parts: Array<string | undefined>): string {
  return parts.map((part) => encodeURIComponent(part ?? '')).join(':');
}
