// The Redis token store against a real redis-server on 127.0.0.1: leases, fencing, expiry,
// namespaces, outages, and the provider on top of it.
import { spawn } from 'node:child_process';
import { inspect } from 'node:util';
import { createClient } from 'redis';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { KmsJwtError } from '../../src/errors.js';
import type { SignerEvent } from '../../src/signer.js';
import { createRedisStore, type RedisTokenStore } from '../../src/stores/redis.js';
import { createTokenProvider } from '../../src/token-provider.js';
import { apnsPolicy, makeToken } from '../provider/fixtures.js';
import { describeWithRedis } from './redis-support.js';
import { findFreePort, startRedisServer, type RedisServer } from './redis-server.mjs';

type RawClient = ReturnType<typeof createClient>;

let server: RedisServer;
let raw: RawClient;
let namespace: string;
let testNumber = 0;
const stores: RedisTokenStore[] = [];

function nowSeconds() {
  return Math.floor(Date.now() / 1000);
}

function openStore(options: Parameters<typeof createRedisStore>[0] = {}) {
  const store = createRedisStore({ url: server.url, namespace, ...options });
  stores.push(store);
  return store;
}

describeWithRedis('redis store', () => {
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
    namespace = `test${testNumber}`;
  });

  it('reads nothing for a new key', async () => {
    const store = openStore();
    expect(await store.read('apns:TEAM:KEY')).toBeUndefined();
  });

  it('stores a token under a lease', async () => {
    const store = openStore();
    const token = makeToken(nowSeconds(), nowSeconds() + 3600);
    const lease = await store.acquire('k', 5_000);

    expect(lease?.fence).toBe(1);
    expect(await lease!.write(token, (nowSeconds() + 3600) * 1000)).toBe(true);
    expect(await store.read('k')).toEqual(token);
  });

  it('keeps exp undefined for tokens without exp', async () => {
    const store = openStore();
    const token = makeToken(nowSeconds(), undefined);
    const lease = await store.acquire('k', 5_000);
    await lease!.write(token, Date.now() + 60_000);

    const stored = await store.read('k');
    expect(stored).toEqual(token);
    expect(stored!.exp).toBeUndefined();
  });

  it('grants one lease at a time', async () => {
    const first = openStore();
    const second = openStore();

    const lease = await first.acquire('k', 5_000);
    expect(lease).toBeDefined();
    expect(await second.acquire('k', 5_000)).toBeUndefined();

    await lease!.release();
    const next = await second.acquire('k', 5_000);
    expect(next?.fence).toBe(2);
  });

  it('stores the lease owner token as the lock value', async () => {
    const store = openStore();
    await store.acquire('k', 5_000);

    const value = await raw.get(`${namespace}:{k}:lock`);
    expect(value).toMatch(/^[0-9a-f]{32}$/);
    const ttl = await raw.pTTL(`${namespace}:{k}:lock`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(5_000);
  });

  it('hands an expired lease to another process', async () => {
    const store = openStore();
    const stale = await store.acquire('k', 200);
    expect(await store.acquire('k', 200)).toBeUndefined();

    await waitUntil(async () => (await raw.exists(`${namespace}:{k}:lock`)) === 0);
    const takeover = await store.acquire('k', 5_000);
    expect(takeover?.fence).toBe(2);

    // The stale holder's release must not free the new holder's lock.
    await stale!.release();
    expect(await store.acquire('k', 5_000)).toBeUndefined();
  });

  it('drops a write from an older lease', async () => {
    const store = openStore();
    const stale = await store.acquire('k', 100);
    await waitUntil(async () => (await raw.exists(`${namespace}:{k}:lock`)) === 0);
    const current = await store.acquire('k', 5_000);

    const newer = makeToken(nowSeconds(), nowSeconds() + 3600, { n: 'newer' });
    const older = makeToken(nowSeconds(), nowSeconds() + 3600, { n: 'older' });
    expect(await current!.write(newer, Date.now() + 3_600_000)).toBe(true);
    expect(await stale!.write(older, Date.now() + 3_600_000)).toBe(false);
    expect(await store.read('k')).toEqual(newer);
  });

  it('raises the counter to a written fence', async () => {
    const store = openStore();
    await raw.set(`${namespace}:{k}:fence`, '6');
    const lease = await store.acquire('k', 5_000);
    expect(lease?.fence).toBe(7);
    await lease!.release();

    // As after a Redis restart that lost the counter but not the lease holder.
    await raw.set(`${namespace}:{k}:fence`, '2');
    await lease!.write(makeToken(nowSeconds(), nowSeconds() + 3600), Date.now() + 60_000);
    expect(await raw.get(`${namespace}:{k}:fence`)).toBe('7');
    expect((await store.acquire('k', 5_000))?.fence).toBe(8);
  });

  it('keeps a token only while it is valid', async () => {
    const store = openStore();
    const lease = await store.acquire('k', 5_000);
    await lease!.write(makeToken(nowSeconds(), nowSeconds() + 3600), Date.now() + 30_000);

    const ttl = await raw.pTTL(`${namespace}:{k}:token`);
    expect(ttl).toBeGreaterThan(25_000);
    expect(ttl).toBeLessThanOrEqual(30_000);
  });

  it('does not store a token that is no longer valid', async () => {
    const store = openStore();
    const lease = await store.acquire('k', 5_000);

    const written = await lease!.write(makeToken(nowSeconds() - 7200, undefined), Date.now() - 1);
    expect(written).toBe(false);
    expect(await raw.exists(`${namespace}:{k}:token`)).toBe(0);
  });

  it('expires a stored token in Redis', async () => {
    const store = openStore();
    const lease = await store.acquire('k', 5_000);
    await lease!.write(makeToken(nowSeconds(), nowSeconds() + 3600), Date.now() + 150);

    await waitUntil(async () => (await raw.exists(`${namespace}:{k}:token`)) === 0);
    expect(await store.read('k')).toBeUndefined();
  });

  it('separates namespaces', async () => {
    const blue = openStore({ namespace: `${namespace}-blue` });
    const green = openStore({ namespace: `${namespace}-green` });
    const lease = await blue.acquire('k', 5_000);
    await lease!.write(makeToken(nowSeconds(), nowSeconds() + 3600), Date.now() + 60_000);

    expect(await green.read('k')).toBeUndefined();
    expect(await green.acquire('k', 5_000)).toBeDefined();
    const keys = (await raw.keys(`${namespace}-blue:*`)).sort();
    expect(keys).toEqual([
      `${namespace}-blue:{k}:fence`,
      `${namespace}-blue:{k}:lock`,
      `${namespace}-blue:{k}:token`,
    ]);
  });

  it('replaces a stored value that is not a record', async () => {
    await raw.set(`${namespace}:{k}:token`, 'not json');
    const events: SignerEvent[] = [];
    const provider = createTokenProvider({
      store: openStore(),
      cacheKey: 'k',
      policy: apnsPolicy,
      onEvent: (event) => events.push(event),
      mint: async () => makeToken(nowSeconds(), undefined),
    });

    const token = await provider.get();
    expect(events.map((event) => event.type)).toContain('store-invalid');
    expect(JSON.parse((await raw.get(`${namespace}:{k}:token`))!)).toMatchObject({ token });
    await provider.close();
  });

  it('uses a client the caller owns and leaves it open', async () => {
    const client = createClient({ url: server.url });
    await client.connect();
    const store = createRedisStore({ client, namespace });

    const lease = await store.acquire('k', 5_000);
    expect(lease?.fence).toBe(1);
    await store.close();
    expect(client.isOpen).toBe(true);
    await client.close();
  });

  it('shares one mint between providers in one process', async () => {
    const mint = vi.fn(async () => makeToken(nowSeconds(), undefined));
    const options = { cacheKey: 'k', policy: apnsPolicy, mint, pollIntervalMs: 20 };
    const first = createTokenProvider({ ...options, store: openStore() });
    const second = createTokenProvider({ ...options, store: openStore() });

    const [a, b] = await Promise.all([first.get(), second.get()]);
    expect(a).toBe(b);
    expect(mint).toHaveBeenCalledTimes(1);
    await first.close();
    await second.close();
  });

  it('rejects bad options with TypeError', () => {
    expect(() => createRedisStore({})).toThrow(TypeError);
    expect(() => createRedisStore({ url: server.url, client: raw as never })).toThrow(TypeError);
    expect(() => createRedisStore({ url: server.url, namespace: 'a b' })).toThrow(TypeError);
    expect(() => createRedisStore({ url: server.url, namespace: 'a{b}' })).toThrow(TypeError);
    expect(() => createRedisStore({ url: server.url, commandTimeoutMs: 0 })).toThrow(TypeError);
  });
});

describeWithRedis('redis store in a script', () => {
  let local: RedisServer;
  let client: RawClient;

  beforeAll(async () => {
    local = await startRedisServer();
    client = createClient({ url: local.url });
    await client.connect();
  });

  afterAll(async () => {
    await client?.close();
    await local?.stop();
  });

  it('lets a script exit after get()', async () => {
    const run = await runScript(local.url, 'script-a');

    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toMatch(/^ey[\w-]+\.[\w-]+\.[\w-]+$/);
  });

  it('lets a script exit while Redis is down', async () => {
    const port = await findFreePort();
    const run = await runScript(`redis://127.0.0.1:${port}`, 'script-c');

    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toMatch(/^ey/);
  });

  it('keeps a script alive while it waits for a lease', async () => {
    // Another process holds the lease and dies: the script waits for the lock to expire.
    await client.set('script:{script-b}:lock', 'another-owner', { PX: 400 });
    const run = await runScript(local.url, 'script-b');

    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toMatch(/^ey/);
    expect(await client.get('script:{script-b}:fence')).toBe('1');
  });
});

/**
 * Runs a one-shot script on the built package that awaits one token and closes nothing, as a
 * cron job might. Node exits with code 13 when a top-level await never settles.
 */
function runScript(
  url: string,
  cacheKey: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const source = `
    import { generateKeyPairSync } from 'node:crypto';
    import { appleTokenProfiles, createApnsToken, createTokenProvider } from './dist/index.js';
    import { createPemSigner } from './dist/pem.js';
    import { createRedisStore } from './dist/redis-store.js';
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const signer = await createPemSigner({ pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) });
    const provider = createTokenProvider({
      store: createRedisStore({ url: ${JSON.stringify(url)}, namespace: 'script' }),
      cacheKey: ${JSON.stringify(cacheKey)},
      policy: appleTokenProfiles.apns.refreshPolicy,
      pollIntervalMs: 50,
      mint: async () => {
        const apns = await createApnsToken({ signer, teamId: 'DEF123GHIJ', keyId: 'ABC123DEFG' });
        return { token: apns.token, iat: apns.claims.iat, exp: undefined };
      },
    });
    console.log(await provider.get());
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// These need the redis package but no redis-server: nothing listens on the port.
describe('redis store without a server', () => {
  it('rejects with ERR_STORE_UNAVAILABLE when nothing listens', async () => {
    const port = await findFreePort();
    const store = createRedisStore({
      url: `redis://user:secret-password@127.0.0.1:${port}`,
      connectTimeoutMs: 300,
    });

    const error = await store.read('k').catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'ERR_STORE_UNAVAILABLE' });
    const message = (error as Error).message;
    expect(message).toContain(`127.0.0.1:${port}`);
    expect(message).not.toContain('secret-password');
    await store.close();
  });

  it('keeps a malformed URL out of errors', async () => {
    // Both URLs fail to parse, and the parser keeps its input on the error it throws.
    const urls = [
      'redis://user:secret-password@127.0.0.1:not-a-port',
      'redis://user:secret-password@[::1',
    ];
    for (const url of urls) {
      const error = await (async () => {
        const store = createRedisStore({ url });
        try {
          return await store.read('k').catch((caught: unknown) => caught);
        } finally {
          await store.close();
        }
      })().catch((caught: unknown) => caught);

      expect(inspect(error, { depth: 10 })).not.toContain('secret-password');
      expect(error).toBeInstanceOf(TypeError);
    }
  });

  it('falls back to a local mint when Redis is down', async () => {
    const port = await findFreePort();
    const events: SignerEvent[] = [];
    const store = createRedisStore({ url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 300 });
    const mint = vi.fn(async () => makeToken(nowSeconds(), undefined));
    const provider = createTokenProvider({
      store,
      cacheKey: 'k',
      policy: apnsPolicy,
      mint,
      onEvent: (event) => events.push(event),
    });

    const token = await provider.get();
    expect(token).toBe((await mint.mock.results[0]!.value).token);
    expect(mint).toHaveBeenCalledTimes(1);
    const fallback = events.filter((event) => event.type === 'store-fallback');
    expect(fallback).toHaveLength(1);
    expect(fallback[0]).toMatchObject({ store: 'redis', code: 'ERR_STORE_UNAVAILABLE' });
    await provider.close();
    await store.close();
  });
});

describeWithRedis('redis store with a password', () => {
  // A throwaway password for a server that this test starts and stops.
  const password = 'test-only-redis-password-5f3a';
  let secured: RedisServer;

  beforeAll(async () => {
    secured = await startRedisServer({ args: ['--requirepass', password] });
  });

  afterAll(async () => {
    await secured?.stop();
  });

  it('authenticates with the password in the URL', async () => {
    const store = createRedisStore({ url: `redis://:${password}@127.0.0.1:${secured.port}` });
    const lease = await store.acquire('k', 5_000);
    expect(lease?.fence).toBe(1);
    await store.close();
  });

  it('keeps a wrong password out of the error', async () => {
    const wrong = 'wrong-password-for-this-test';
    const store = createRedisStore({ url: `redis://:${wrong}@127.0.0.1:${secured.port}` });

    const error = await store.read('k').catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'ERR_STORE_UNAVAILABLE' });
    const text = `${(error as Error).message} ${JSON.stringify((error as KmsJwtError).details)}`;
    expect(text).toContain('WRONGPASS');
    expect(text).not.toContain(wrong);
    expect(text).not.toContain(password);
    await store.close();
  });
});

describeWithRedis('redis store outages', () => {
  it('reports the outage and the return of Redis', async () => {
    const local = await startRedisServer();
    const events: SignerEvent[] = [];
    const store = createRedisStore({ url: local.url, onEvent: (event) => events.push(event) });
    expect(await store.read('k')).toBeUndefined();

    await local.stop();
    await expect(store.read('k')).rejects.toMatchObject({ code: 'ERR_STORE_UNAVAILABLE' });
    await waitUntil(async () => events.some((event) => event.type === 'store-connection-error'));

    // An idle store does not reconnect by itself; the next command opens a new connection.
    const again = await startRedisServer({ port: local.port });
    await waitUntil(async () => {
      return store.read('k').then(
        () => true,
        () => false,
      );
    });
    expect(events.map((event) => event.type)).toContain('store-connected');
    expect(events.filter((event) => event.type === 'store-connection-error')).toHaveLength(1);
    await store.close();
    await again.stop();
  });
});

/** Polls `condition` every 20 ms for up to 10 s. */
async function waitUntil(condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
