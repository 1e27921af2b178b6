/**
 * A token store in Redis, so that a fleet of processes shares one token per cache key and mints
 * about once per refresh. Published as the `kms-jwt-signer/redis-store` subpath. It uses the
 * `redis` package (node-redis), an optional peer dependency loaded only when this store opens its
 * own connection.
 *
 * Keys, for a namespace `ns` and a cache key `k`:
 * - `ns:{k}:token` contains the token record as JSON with its fencing number. It expires with
 *   the token (`PX`, counted from this host's clock), so Redis drops a token once it is invalid.
 * - `ns:{k}:lock` contains the lease owner's random token, with the lease time as its expiry.
 * - `ns:{k}:fence` counts leases. Each lease gets the next number, above the stored token's,
 *   and a write under an older number than the stored token's is dropped.
 * The braces are a Redis Cluster hash tag, so that one script's keys live in one slot.
 *
 * Every command has a deadline. When Redis is down or slow, operations reject with
 * `ERR_STORE_UNAVAILABLE`, and the token provider falls back to its local cache and mints by
 * itself. When the `redis` package is not installed, operations reject with `ERR_PEER_MISSING`,
 * a configuration error that the provider passes to its callers instead of falling back.
 */
import { randomBytes } from 'node:crypto';
import { KmsJwtError } from '../errors.js';
import { loadPeer } from '../peer.js';
import type { SignerEvent } from '../signer.js';
import type { MintedToken } from '../token-record.js';
import { acquireScript, releaseScript, writeScript } from './redis-scripts.js';
import type { TokenLease, TokenStore } from './store.js';

/**
 * The part of a node-redis client (`redis` 5 or 6) that the store uses. Any connected client
 * from `createClient()` has it.
 */
export interface RedisClientLike {
  readonly isOpen: boolean;
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  sendCommand(args: string[]): Promise<unknown>;
  on(event: 'error' | 'ready', listener: (error?: unknown) => void): unknown;
  close?(): Promise<unknown>;
  destroy?(): void;
  ref?(): void;
  unref?(): void;
}

/** Options for {@link createRedisStore}. Pass `url` or `client`, not both. */
export interface RedisStoreOptions {
  /** A Redis URL such as `redis://127.0.0.1:6379`; the store opens and closes its connection. */
  url?: string;
  /** A node-redis client you created and connect and close yourself. */
  client?: RedisClientLike;
  /** Prefix of every key. Letters, digits and `._:-` only. Default `kms-jwt`. */
  namespace?: string;
  /** Deadline for one Redis command, in milliseconds. Default 1 000. */
  commandTimeoutMs?: number;
  /** Deadline for opening the connection, in milliseconds. Default 2 000. */
  connectTimeoutMs?: number;
  /** Wall clock in milliseconds since the epoch, for key expiry. Defaults to `Date.now`. */
  now?: () => number;
  /** Receives `store-connection-error` (once per outage) and `store-connected` events. */
  onEvent?: (event: SignerEvent) => void;
}

/** A {@link TokenStore} in Redis. `close()` closes the connection the store opened itself. */
export interface RedisTokenStore extends TokenStore {
  close(): Promise<void>;
}

const defaults = { namespace: 'kms-jwt', commandTimeoutMs: 1_000, connectTimeoutMs: 2_000 };
const namespacePattern = /^[A-Za-z0-9._:-]+$/;
// While a command waits, reconnect after 50 ms, doubling up to 2 s. The provider mints locally
// meanwhile, and picks the store up again once Redis replies.
const reconnectDelay = (retries: number) => Math.min(50 * 2 ** Math.min(retries, 6), 2_000);

/**
 * Creates a token store in Redis. The connection opens on first use; until Redis replies, each
 * operation rejects with `ERR_STORE_UNAVAILABLE` and the provider mints locally. Without the
 * `redis` package, each operation, and so each provider `get()`, rejects with `ERR_PEER_MISSING`.
 *
 * @example
 * import { createTokenProvider, tokenCacheKey } from 'kms-jwt-signer';
 * import { createRedisStore } from 'kms-jwt-signer/redis-store';
 *
 * const store = createRedisStore({ url: 'redis://127.0.0.1:6379', namespace: 'myapp:tokens' });
 * const provider = createTokenProvider({
 *   store,
 *   cacheKey: tokenCacheKey('apns', 'DEF123GHIJ', 'ABC123DEFG'),
 *   policy: { type: 'by-age', minAgeSeconds: 1200, maxAgeSeconds: 3300, targetAgeSeconds: 2700 },
 *   mint,
 * });
 */
export function createRedisStore(options: RedisStoreOptions): RedisTokenStore {
  assertRedisOptions(options);
  const settings = {
    namespace: options.namespace ?? defaults.namespace,
    commandTimeoutMs: options.commandTimeoutMs ?? defaults.commandTimeoutMs,
    connectTimeoutMs: options.connectTimeoutMs ?? defaults.connectTimeoutMs,
    now: options.now ?? Date.now,
  };
  const connection = new RedisConnection(options, settings);
  const keys = (cacheKey: string) => {
    const base = `${settings.namespace}:{${cacheKey}}`;
    return { token: `${base}:token`, lock: `${base}:lock`, fence: `${base}:fence` };
  };

  async function read(cacheKey: string): Promise<MintedToken | undefined> {
    const text = await connection.run('read', cacheKey, ['GET', keys(cacheKey).token]);
    if (text === null || text === undefined) return undefined;
    return parseRecord(String(text));
  }

  async function acquire(cacheKey: string, ttlMs: number): Promise<TokenLease | undefined> {
    const { lock, fence, token } = keys(cacheKey);
    const owner = randomBytes(16).toString('hex');
    const ttl = String(Math.max(1, Math.ceil(ttlMs)));
    let reply: unknown;
    try {
      reply = await connection.run(
        'acquire',
        cacheKey,
        evalArgs(acquireScript, [lock, fence, token], [owner, ttl]),
      );
    } catch (error) {
      // A command that timed out may still run once Redis catches up, and take a lock without a
      // holder. The release follows it on the same connection, so Redis runs it right after.
      const release = evalArgs(releaseScript, [lock], [owner]);
      connection.run('release', cacheKey, release).catch(() => undefined);
      throw error;
    }
    if (reply === null || reply === undefined) return undefined;
    return createLease(cacheKey, Number(reply), owner);
  }

  function createLease(cacheKey: string, fence: number, owner: string): TokenLease {
    const { token, lock, fence: fenceKey } = keys(cacheKey);
    return {
      fence,
      async write(record, expiresAtMs) {
        const ttlMs = Math.floor(expiresAtMs - settings.now());
        if (ttlMs <= 0) return false;
        const body = JSON.stringify({ ...recordFields(record), fence });
        const args = evalArgs(writeScript, [token, fenceKey], [body, String(fence), String(ttlMs)]);
        return Number(await connection.run('write', cacheKey, args)) === 1;
      },
      async release() {
        await connection.run('release', cacheKey, evalArgs(releaseScript, [lock], [owner]));
      },
    };
  }

  return { name: 'redis', read, acquire, close: () => connection.close() };
}

function evalArgs(script: string, keys: string[], args: string[]): string[] {
  return ['EVAL', script, String(keys.length), ...keys, ...args];
}

function recordFields(record: MintedToken): { token: string; iat: number; exp: number | null } {
  return { token: record.token, iat: record.iat, exp: record.exp ?? null };
}

/**
 * Parses a stored record. Anything that is not the expected JSON is returned as it is, and the
 * provider reports it as `store-invalid` and mints a replacement.
 */
function parseRecord(text: string): MintedToken {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return text as unknown as MintedToken;
  }
  if (typeof value !== 'object' || value === null) return value as MintedToken;

  const stored = value as { token?: unknown; iat?: unknown; exp?: unknown };
  return { token: stored.token, iat: stored.iat, exp: stored.exp ?? undefined } as MintedToken;
}

interface ConnectionSettings {
  commandTimeoutMs: number;
  connectTimeoutMs: number;
}

/** One Redis connection with deadlines, opened lazily, and outage reporting. */
class RedisConnection {
  readonly #options: RedisStoreOptions;
  readonly #settings: ConnectionSettings;
  readonly #owned: boolean;
  readonly #where: string;
  #client: RedisClientLike | undefined;
  #opening: Promise<RedisClientLike> | undefined;
  #failing = false;
  #closed = false;
  #inFlight = 0;
  #lastError: string | undefined;

  constructor(options: RedisStoreOptions, settings: ConnectionSettings) {
    this.#options = options;
    this.#settings = settings;
    this.#owned = options.client === undefined;
    this.#where = options.url === undefined ? 'the supplied client' : describeUrl(options.url);
    if (options.client !== undefined) this.#watch(options.client);
    this.#client = options.client;
  }

  /** Sends one command under the command deadline, mapping every failure to a coded error. */
  async run(operation: string, cacheKey: string, args: string[]): Promise<unknown> {
    if (this.#closed) throw this.#error(operation, cacheKey, 'the store is closed');

    this.#hold();
    try {
      const client = await this.#ready();
      return await withTimeout(client.sendCommand(args), this.#settings.commandTimeoutMs);
    } catch (error) {
      if (error instanceof KmsJwtError && error.code === 'ERR_PEER_MISSING') throw error;
      throw this.#error(operation, cacheKey, messageOf(error), error);
    } finally {
      this.#letGo();
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (!this.#owned) return;

    // While the peer is still loading, #open() checks #closed and creates no client.
    if (this.#client === undefined) await this.#opening?.catch(() => undefined);
    const client = this.#client;
    if (client === undefined) return;
    if (client.isReady) await client.close?.().catch(() => client.destroy?.());
    else client.destroy?.();
  }

  /**
   * Keeps an opened socket referenced while a command is in flight, so that a script awaiting a
   * token does not exit mid-command. An idle socket is unreferenced and never keeps a process
   * alive. A client the caller supplied is left as it is.
   */
  #hold(): void {
    this.#inFlight += 1;
    if (this.#inFlight === 1 && this.#owned) this.#client?.ref?.();
  }

  #letGo(): void {
    this.#inFlight -= 1;
    if (this.#inFlight === 0 && this.#owned) this.#client?.unref?.();
  }

  async #ready(): Promise<RedisClientLike> {
    const client = this.#client;
    if (client?.isReady) return client;
    if (!this.#owned) throw new Error('the supplied client is not connected');
    if (this.#opening === undefined && client?.isOpen) {
      throw new Error('the connection is not ready; the client is reconnecting');
    }

    // No client yet, or the last one gave up reconnecting: open a new one.
    this.#opening ??= this.#open();
    try {
      return await withTimeout(this.#opening, this.#settings.connectTimeoutMs);
    } catch (error) {
      // A timeout alone hides why the connection failed, such as WRONGPASS or ECONNREFUSED.
      const last = this.#lastError;
      if (last === undefined) throw error;
      throw new Error(`${messageOf(error)}; the last connection error was: ${last}`, {
        cause: error,
      });
    }
  }

  async #open(): Promise<RedisClientLike> {
    const redis = await loadPeer('redis', () => import('redis'), 'the Redis token store');
    if (this.#closed) throw new Error('the store was closed while connecting');
    const client = redis.createClient({
      url: this.#options.url,
      disableOfflineQueue: true,
      socket: {
        connectTimeout: this.#settings.connectTimeoutMs,
        reconnectStrategy: (retries: number) => this.#reconnectDelay(retries),
      },
    }) as unknown as RedisClientLike;
    this.#watch(client);
    if (this.#inFlight === 0) client.unref?.();
    this.#client = client;

    try {
      await client.connect();
      return client;
    } catch (error) {
      this.#client = undefined;
      throw error;
    } finally {
      this.#opening = undefined;
    }
  }

  /**
   * Retries only while a command waits for Redis. An idle store lets a broken connection close,
   * so that no reconnect timer keeps the process alive, and opens a new one on the next command.
   */
  #reconnectDelay(retries: number): number | false {
    if (this.#closed || this.#inFlight === 0) return false;
    return reconnectDelay(retries);
  }

  /** Reports the first error of an outage, and the return of the connection. */
  #watch(client: RedisClientLike): void {
    client.on('error', (error) => {
      this.#lastError = messageOf(error);
      if (this.#failing || this.#closed) return;
      this.#failing = true;
      this.#emit({ type: 'store-connection-error', store: 'redis', message: messageOf(error) });
    });
    client.on('ready', () => {
      this.#lastError = undefined;
      if (!this.#failing) return;
      this.#failing = false;
      this.#emit({ type: 'store-connected', store: 'redis' });
    });
  }

  #emit(event: SignerEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch {
      // A faulty callback must not break the store.
    }
  }

  #error(operation: string, cacheKey: string, reason: string, cause?: unknown): KmsJwtError {
    return new KmsJwtError(
      'ERR_STORE_UNAVAILABLE',
      `Redis token store: ${operation} for ${cacheKey} at ${this.#where} failed: ` +
        `${reason.replace(/\.+$/, '')}. Check that Redis is running and reachable, and that the ` +
        "URL's user name and password are right. Providers mint locally meanwhile.",
      { cause, details: { store: 'redis', operation, cacheKey } },
    );
  }
}

/** Names the host and port of a Redis URL, leaving out any user name or password. */
function describeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}`;
  } catch {
    return 'the configured URL';
  }
}

function withTimeout<T>(work: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
  });
  work.catch(() => undefined);
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Throws TypeError when `url` is not a string or does not parse. The URL parser's own error keeps
 * the whole input, password included, on its `input` field, so this check throws its own error
 * first and node-redis never meets such a URL.
 */
function assertRedisUrl(url: unknown): void {
  if (typeof url !== 'string') {
    throw new TypeError('url must be a string such as redis://127.0.0.1:6379.');
  }
  // node-redis 6 parses unix: socket URLs with a pattern, and its errors there omit the URL.
  if (url.startsWith('unix:') || URL.canParse(url)) return;
  throw new TypeError(
    'url does not parse as a URL. Use the form redis://[user:password@]host[:port][/db], and ' +
      'percent-encode special characters in the user name and password.',
  );
}

function assertRedisOptions(options: RedisStoreOptions): void {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('createRedisStore expects an options object with url or client.');
  }
  if ((options.url === undefined) === (options.client === undefined)) {
    throw new TypeError('createRedisStore needs exactly one of url (a redis:// URL) or client.');
  }
  if (options.url !== undefined) assertRedisUrl(options.url);
  const namespace = options.namespace;
  if (
    namespace !== undefined &&
    !(typeof namespace === 'string' && namespacePattern.test(namespace))
  ) {
    throw new TypeError(
      `namespace must be letters, digits and . _ : - only, got ${JSON.stringify(namespace)}.`,
    );
  }
  for (const field of ['commandTimeoutMs', 'connectTimeoutMs'] as const) {
    const value = options[field];
    if (value !== undefined && !(Number.isFinite(value) && value > 0)) {
      throw new TypeError(`${field} must be a number of milliseconds > 0, got ${String(value)}.`);
    }
  }
}
