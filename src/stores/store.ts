/**
 * The shared-store contract of the token provider, and the in-memory store it uses by default.
 *
 * A store keeps one token per cache key and hands out leases: a lease is a lock with an expiry
 * and a fencing number. Only the holder of the newest lease mints, and a write carrying an older
 * fencing number than the stored token's is dropped, so a lease holder that stalled past its
 * expiry cannot overwrite a newer token.
 */
import type { MintedToken } from '../token-record.js';

/** One coordinated refresh: the right to mint for a key until `ttlMs` passes. */
export interface TokenLease {
  /** The lease's fencing number. Every newer lease on the same key has a larger one. */
  readonly fence: number;
  /**
   * Stores `token` until `expiresAtMs` (milliseconds since the epoch), unless a token from a
   * lease with a larger fencing number is stored already. Resolves to false when dropped.
   */
  write(token: MintedToken, expiresAtMs: number): Promise<boolean>;
  /** Gives the lease up early. A lease that expired or was taken over is left alone. */
  release(): Promise<void>;
}

/**
 * A token store shared by providers: the in-memory default, the Redis store, or your own.
 *
 * @example
 * const store = createMemoryStore();
 * const apns = createTokenProvider({ mint, policy, store, cacheKey: 'apns:TEAM:KEY' });
 */
export interface TokenStore {
  /** A short label for events, such as `memory` or `redis`. */
  readonly name: string;
  /** Returns the stored token for `key`, or undefined when there is none. */
  read(key: string): Promise<MintedToken | undefined>;
  /** Takes the lease for `key` for `ttlMs`, or resolves to undefined while another holds it. */
  acquire(key: string, ttlMs: number): Promise<TokenLease | undefined>;
  /** Releases connections this store opened itself. */
  close?(): Promise<void>;
}

interface MemoryEntry {
  token: MintedToken;
  fence: number;
  expiresAtMs: number;
}

interface MemoryLock {
  fence: number;
  expiresAtMonotonicMs: number;
}

/** Options for {@link createMemoryStore}. */
export interface MemoryStoreOptions {
  /** Clock in milliseconds since the epoch, for token expiry. Defaults to `Date.now`. */
  now?: () => number;
  /** Monotonic clock in milliseconds, for lease expiry. Defaults to `performance.now`. */
  monotonicNow?: () => number;
}

/**
 * Creates a store that keeps tokens in this process only. Providers that share one such store
 * share their tokens and their leases.
 *
 * @example
 * const store = createMemoryStore();
 */
export function createMemoryStore(options: MemoryStoreOptions = {}): TokenStore {
  const now = options.now ?? Date.now;
  const monotonicNow = options.monotonicNow ?? (() => performance.now());
  const entries = new Map<string, MemoryEntry>();
  const locks = new Map<string, MemoryLock>();
  const fences = new Map<string, number>();

  function read(key: string): Promise<MintedToken | undefined> {
    const entry = entries.get(key);
    if (entry !== undefined && entry.expiresAtMs <= now()) entries.delete(key);
    return Promise.resolve(entries.get(key)?.token);
  }

  function acquire(key: string, ttlMs: number): Promise<TokenLease | undefined> {
    const held = locks.get(key);
    if (held !== undefined && held.expiresAtMonotonicMs > monotonicNow()) {
      return Promise.resolve(undefined);
    }

    const fence = (fences.get(key) ?? 0) + 1;
    fences.set(key, fence);
    locks.set(key, { fence, expiresAtMonotonicMs: monotonicNow() + ttlMs });
    return Promise.resolve(createMemoryLease(key, fence));
  }

  function createMemoryLease(key: string, fence: number): TokenLease {
    return {
      fence,
      write(token, expiresAtMs) {
        const stored = entries.get(key);
        if (stored !== undefined && stored.fence > fence) return Promise.resolve(false);
        entries.set(key, { token: { ...token }, fence, expiresAtMs });
        return Promise.resolve(true);
      },
      release() {
        if (locks.get(key)?.fence === fence) locks.delete(key);
        return Promise.resolve();
      },
    };
  }

  return { name: 'memory', read, acquire };
}
