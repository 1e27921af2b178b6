// The Redis token store on a real redis-server on 127.0.0.1, against entries that a buggy or
// hostile process left behind: a record with a huge fencing number, or a lost or garbage counter.
// Also a lock left by an acquire that timed out while the server was stopped.
import { createClient } from 'redis';
import { afterAll, beforeAll, beforeEach, expect, it, vi } from 'vitest';
import { createRedisStore, type RedisTokenStore } from '../../src/stores/redis.js';
import { createTokenProvider } from '../../src/token-provider.js';
import { apnsPolicy, makeToken } from '../provider/fixtures.js';
import { describeWithRedis } from './redis-support.js';
import { startRedisServer, type RedisServer } from './redis-server.mjs';

let server: RedisServer;
let raw: ReturnType<typeof createClient>;
let namespace: string;
let testNumber = 0;
const stores: RedisTokenStore[] = [];

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function openStore(options: { commandTimeoutMs?: number } = {}): RedisTokenStore {
  const store = createRedisStore({ url: server.url, namespace, ...options });
  stores.push(store);
  return store;
}

/** Opens a provider on its own store connection, as a separate process would, counting mints. */
function openProvider() {
  const mint = vi.fn(async () => makeToken(nowSeconds(), undefined));
  const provider = createTokenProvider({
    store: openStore(),
    cacheKey: 'k',
    policy: apnsPolicy,
    mint,
  });
  return { provider, mint };
}

describeWithRedis('redis store: hostile entries', () => {
  beforeAll(async () => {
    server = await startRedisServer();
    raw = createClient({ url: server.url });
    await raw.connect();
  });

  afterAll(async () => {
    for (const store of stores) await store.close();
    await raw?.close();
    await server?.stop();
  });

  beforeEach(() => {
    testNumber += 1;
    namespace = `hostile${testNumber}`;
  });

  it('replaces a garbage record with a huge fence', async () => {
    // No expiry, so Redis would keep it for ever.
    await raw.set(`${namespace}:{k}:token`, JSON.stringify({ token: 'x', fence: 999_999_999 }));
    const first = openProvider();
    const second = openProvider();

    const token = await first.provider.get();
    expect(JSON.parse((await raw.get(`${namespace}:{k}:token`))!)).toMatchObject({ token });
    expect(await second.provider.get()).toBe(token);
    expect(first.mint).toHaveBeenCalledTimes(1);
    expect(second.mint).toHaveBeenCalledTimes(0);
    await first.provider.close();
    await second.provider.close();
  });

  it('replaces a record whose fence is out of range', async () => {
    const stale = makeToken(nowSeconds() - 7200, undefined);
    const body = `{"token":"${stale.token}","iat":${stale.iat},"exp":null,"fence":1e300}`;
    await raw.set(`${namespace}:{k}:token`, body);
    const { provider } = openProvider();

    const token = await provider.get();
    expect(JSON.parse((await raw.get(`${namespace}:{k}:token`))!)).toMatchObject({ token });
    await provider.close();
  });

  it('numbers leases above a stored fence', async () => {
    const store = openStore();
    for (let round = 0; round < 3; round += 1) {
      const lease = await store.acquire('k', 5_000);
      await lease!.write(makeToken(nowSeconds(), undefined), Date.now() + 60_000);
      await lease!.release();
    }

    // As after the counter alone was evicted or deleted.
    await raw.del(`${namespace}:{k}:fence`);
    const lease = await store.acquire('k', 5_000);
    expect(lease?.fence).toBe(4);
    expect(await lease!.write(makeToken(nowSeconds(), undefined), Date.now() + 60_000)).toBe(true);
  });

  it('restarts a counter that is not a number', async () => {
    await raw.set(`${namespace}:{k}:fence`, 'not a number');
    const store = openStore();

    const lease = await store.acquire('k', 5_000);
    expect(lease?.fence).toBe(1);
    expect(await lease!.write(makeToken(nowSeconds(), undefined), Date.now() + 60_000)).toBe(true);
    expect(await raw.get(`${namespace}:{k}:fence`)).toBe('1');
  });

  it('restarts a counter near 2^53', async () => {
    // Lua numbers are doubles, so a counter above 2^53 would hand out repeated numbers.
    await raw.set(`${namespace}:{k}:fence`, String(2 ** 53 - 2));
    const store = openStore();

    const fences: number[] = [];
    for (let round = 0; round < 4; round += 1) {
      const lease = await store.acquire('k', 5_000);
      fences.push(lease!.fence);
      await lease!.release();
    }
    expect(new Set(fences).size).toBe(4);
    for (const fence of fences) expect(Number.isSafeInteger(fence)).toBe(true);
  });

  it('frees the lock of a timed-out acquire', async () => {
    const store = openStore({ commandTimeoutMs: 200 });
    await store.read('k');
    const info = await raw.info('server');
    const pid = Number(/process_id:(\d+)/.exec(info)![1]);

    // SIGSTOP stalls the server with the connection open, so the acquire times out here and
    // runs on the server later.
    process.kill(pid, 'SIGSTOP');
    try {
      await expect(store.acquire('k', 60_000)).rejects.toMatchObject({
        code: 'ERR_STORE_UNAVAILABLE',
      });
    } finally {
      process.kill(pid, 'SIGCONT');
    }

    // Replies come in order, so this read returns after everything sent before it has run.
    await store.read('k');
    expect(await raw.exists(`${namespace}:{k}:lock`)).toBe(0);
    expect(await openStore().acquire('k', 5_000)).toBeDefined();
  });
});
