import { spawn } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { SignerEvent } from '../../src/signer.js';
import { createMemoryStore, type TokenStore } from '../../src/stores/store.js';
import { createTokenProvider, tokenCacheKey } from '../../src/token-provider.js';
import { apnsPolicy, makeToken } from './fixtures.js';
import { bootSeconds, createHarness, installFakeClock, settle } from './harness.js';

const day = 86_400;

beforeEach(() => {
  installFakeClock();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('token provider: client secret', () => {
  it('mints lazily and then serves the cache', async () => {
    const harness = createHarness();
    expect(harness.mints).toHaveLength(0);

    const first = await harness.provider.get();
    const again = await harness.provider.get();
    expect(again).toBe(first);
    expect(harness.mints).toHaveLength(1);
    expect(first).toBe(harness.mints[0]!.token);
    await harness.provider.close();
  });

  it('refreshes ahead on its timer at the policy point', async () => {
    const harness = createHarness();
    const first = await harness.provider.get();

    await harness.advance(90 * day - 1);
    expect(harness.mints).toHaveLength(1);
    await harness.advance(1);
    expect(harness.mints).toHaveLength(2);

    const second = await harness.provider.get();
    expect(second).not.toBe(first);
    expect(second).toBe(harness.mints[1]!.token);
    await harness.provider.close();
  });

  it('refreshes in the background inside get()', async () => {
    const harness = createHarness({ backgroundRefresh: false });
    const first = await harness.provider.get();
    await harness.advance(100 * day);

    // The due token is still usable, so the caller gets it at once while the mint runs.
    expect(await harness.provider.get()).toBe(first);
    await settle();
    expect(harness.mints).toHaveLength(2);
    expect(await harness.provider.get()).toBe(harness.mints[1]!.token);
    await harness.provider.close();
  });

  it('adds jitter after the refresh point', async () => {
    const harness = createHarness({ backgroundRefresh: false, random: () => 0.5 });
    await harness.provider.get();

    // Default jitter: a tenth of the 89 days between the point and the usable end, capped at 300 s.
    await harness.advance(90 * day + 149);
    await harness.provider.get();
    await settle();
    expect(harness.mints).toHaveLength(1);

    await harness.advance(1);
    await harness.provider.get();
    await settle();
    expect(harness.mints).toHaveLength(2);
    await harness.provider.close();
  });

  it('never serves inside the minimum remaining time', async () => {
    const harness = createHarness({ backgroundRefresh: false });
    const first = await harness.provider.get();

    // 10 minutes before exp: the one-day minimum makes the token unusable.
    await harness.advance(180 * day - 600);
    const fresh = await harness.provider.getRecord();
    expect(fresh.token).not.toBe(first);
    expect(fresh.iat).toBe(harness.wallSeconds());
    await harness.provider.close();
  });

  it('rejects a token already past its usable end', async () => {
    const harness = createHarness({ lifetimeSeconds: 3600 });
    await expect(harness.provider.get()).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID' });
    await harness.provider.close();
  });

  it('rejects a mint result in milliseconds', async () => {
    const provider = createTokenProvider({
      policy: apnsPolicy,
      mint: async () => ({ token: 'a.b.c', iat: Date.now(), exp: undefined }),
    });
    await expect(provider.get()).rejects.toMatchObject({
      code: 'ERR_TOKEN_INVALID',
      message: expect.stringContaining('milliseconds'),
    });
    await provider.close();
  });
});

describe('token provider: single-flight', () => {
  it('shares one mint among 10,000 callers', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const mint = vi.fn(async () => {
      await gate;
      return makeToken(bootSeconds, bootSeconds + 180 * day);
    });
    const provider = createTokenProvider({ mint, policy: clientSecret() });

    const calls = Array.from({ length: 10_000 }, () => provider.get());
    await settle();
    expect(mint).toHaveBeenCalledTimes(1);

    release();
    const tokens = new Set(await Promise.all(calls));
    expect(tokens.size).toBe(1);
    expect(mint).toHaveBeenCalledTimes(1);
    await provider.close();
  });

  it('gives 10,000 callers one error from a hung backend', async () => {
    const mint = vi.fn(() => new Promise<never>(() => undefined));
    const provider = createTokenProvider({ mint, policy: clientSecret(), mintTimeoutMs: 5_000 });

    const calls = Array.from({ length: 10_000 }, () =>
      provider.get().then(
        () => undefined,
        (error: unknown) => error,
      ),
    );
    await vi.advanceTimersByTimeAsync(5_000);
    const errors = await Promise.all(calls);

    expect(mint).toHaveBeenCalledTimes(1);
    expect(new Set(errors).size).toBe(1);
    expect(errors[0]).toMatchObject({ code: 'ERR_TOKEN_MINT_TIMEOUT' });
    await provider.close();
  });

  it('gives 10,000 callers one error from a failing backend', async () => {
    const backendError = Object.assign(new Error('KMS throttled'), {
      code: 'ERR_AWS_KMS_THROTTLED',
    });
    const mint = vi.fn(async () => {
      throw backendError;
    });
    const provider = createTokenProvider({ mint, policy: clientSecret() });

    const calls = Array.from({ length: 10_000 }, () =>
      provider.get().then(
        () => undefined,
        (error: unknown) => error,
      ),
    );
    const errors = await Promise.all(calls);

    expect(mint).toHaveBeenCalledTimes(1);
    expect(new Set(errors).size).toBe(1);
    expect(errors[0]).toMatchObject({ code: 'ERR_TOKEN_MINT_FAILED', cause: backendError });
    expect((errors[0] as Error).message).toContain('ERR_AWS_KMS_THROTTLED');
    await provider.close();
  });

  it('lets one caller abort without stopping the others', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const provider = createTokenProvider({
      policy: clientSecret(),
      mint: async () => {
        await gate;
        return makeToken(bootSeconds, bootSeconds + 180 * day);
      },
    });
    const controller = new AbortController();

    const aborted = provider.get({ signal: controller.signal });
    const patient = provider.get();
    controller.abort(new Error('request cancelled'));

    await expect(aborted).rejects.toMatchObject({ code: 'ERR_TOKEN_ABORTED' });
    release();
    await expect(patient).resolves.toMatch(/^ey/);
    await provider.close();
  });

  it('adds one listener to a shared signal', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const provider = createTokenProvider({
      policy: clientSecret(),
      mint: async () => {
        await gate;
        return makeToken(bootSeconds, bootSeconds + 180 * day);
      },
    });
    // Node warns on stderr (MaxListenersExceededWarning) past 10 listeners on one signal.
    const shared = new AbortController();
    const calls = Array.from({ length: 50 }, () => provider.get({ signal: shared.signal }));

    expect(getEventListeners(shared.signal, 'abort').length).toBeLessThanOrEqual(1);
    release();
    const tokens = await Promise.all(calls);
    expect(new Set(tokens).size).toBe(1);
    expect(getEventListeners(shared.signal, 'abort')).toHaveLength(0);
    await provider.close();
  });

  it('aborts every caller sharing a signal', async () => {
    const provider = createTokenProvider({
      policy: clientSecret(),
      mint: () => new Promise<never>(() => undefined),
      mintTimeoutMs: 60_000,
    });
    const shared = new AbortController();
    const calls = Array.from({ length: 20 }, () => provider.get({ signal: shared.signal }));

    shared.abort(new Error('shutting down'));
    for (const call of calls)
      await expect(call).rejects.toMatchObject({ code: 'ERR_TOKEN_ABORTED' });
    expect(getEventListeners(shared.signal, 'abort')).toHaveLength(0);
    await provider.close();
  });

  it('shares one mint between providers on one store', async () => {
    const store = createMemoryStore();
    const mint = vi.fn(async () => makeToken(bootSeconds, bootSeconds + 180 * day));
    const cacheKey = tokenCacheKey('client-secret', 'DEF123GHIJ', 'ABC123DEFG', 'com.example');
    const first = createTokenProvider({ mint, policy: clientSecret(), store, cacheKey });
    const second = createTokenProvider({ mint, policy: clientSecret(), store, cacheKey });

    const both = Promise.all([first.get(), second.get()]);
    // The second provider waits for the first one's lease, checking the store every 100 ms.
    await vi.advanceTimersByTimeAsync(200);
    const [a, b] = await both;
    expect(a).toBe(b);
    expect(mint).toHaveBeenCalledTimes(1);
    await first.close();
    await second.close();
  });
});

describe('token provider: failure and recovery', () => {
  it('keeps serving the current token when a refresh fails', async () => {
    let failing = false;
    const events: SignerEvent[] = [];
    const wallSeconds = () => Math.floor(Date.now() / 1000);
    const provider = createTokenProvider({
      policy: clientSecret(),
      random: () => 0,
      backgroundRefresh: false,
      onEvent: (event) => events.push(event),
      mint: async () => {
        if (failing) throw Object.assign(new Error('KMS down'), { code: 'ERR_BACKEND_DOWN' });
        return makeToken(wallSeconds(), wallSeconds() + 180 * day);
      },
    });
    const original = await provider.get();

    failing = true;
    await vi.advanceTimersByTimeAsync(100 * day * 1000);
    expect(await provider.get()).toBe(original);
    await settle();
    const failure = events.find((event) => event.type === 'failure');
    expect(failure).toMatchObject({
      code: 'ERR_TOKEN_MINT_FAILED',
      causeCode: 'ERR_BACKEND_DOWN',
      attempt: 1,
      servingCurrent: true,
    });

    // Inside the backoff the current token is served without a new attempt.
    failing = false;
    expect(await provider.get()).toBe(original);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await provider.get()).toBe(original);
    await settle();
    const recovered = await provider.get();
    expect(recovered).not.toBe(original);
    expect(events.filter((event) => event.type === 'failure')).toHaveLength(1);
    await provider.close();
  });

  it('codes a thrown value without text', async () => {
    // Values that String() cannot convert: it throws a TypeError for each.
    const thrownValues = [
      Object.create(null) as object,
      {
        toString() {
          throw new Error('no text');
        },
      },
    ];
    for (const thrown of thrownValues) {
      const mint = vi.fn(async () => {
        throw thrown;
      });
      const events: SignerEvent[] = [];
      const provider = createTokenProvider({
        policy: clientSecret(),
        mint,
        onEvent: (event) => events.push(event),
      });

      const first = await provider.get().catch((caught: unknown) => caught);
      const second = await provider.get().catch((caught: unknown) => caught);
      expect(first).toMatchObject({ code: 'ERR_TOKEN_MINT_FAILED' });
      expect(second).toBe(first);
      expect(mint).toHaveBeenCalledTimes(1);
      expect(events.map((event) => event.type)).toContain('failure');
      await provider.close();
    }
  });

  it('fails fast during backoff, then retries', async () => {
    const mint = vi.fn(async () => {
      throw new Error('KMS down');
    });
    const provider = createTokenProvider({
      mint,
      policy: clientSecret(),
      random: () => 1,
      backoff: { initialMs: 1_000, maxMs: 8_000 },
    });

    const first = await provider.get().catch((error: unknown) => error);
    const second = await provider.get().catch((error: unknown) => error);
    expect(second).toBe(first);
    expect(mint).toHaveBeenCalledTimes(1);

    await vi.advanceTimersByTimeAsync(1_000);
    await provider.get().catch(() => undefined);
    expect(mint).toHaveBeenCalledTimes(2);

    // The second failure doubles the wait.
    await vi.advanceTimersByTimeAsync(1_999);
    await provider.get().catch(() => undefined);
    expect(mint).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(1);
    await provider.get().catch(() => undefined);
    expect(mint).toHaveBeenCalledTimes(3);
    await provider.close();
  });

  it('never returns an expired token while the backend is down', async () => {
    let failing = false;
    const provider = createTokenProvider({
      policy: apnsPolicy,
      backgroundRefresh: false,
      mint: async () => {
        if (failing) throw new Error('HSM unplugged');
        return makeToken(Math.floor(Date.now() / 1000), undefined);
      },
    });
    const token = await provider.get();
    failing = true;

    for (let minute = 1; minute <= 70; minute += 1) {
      await vi.advanceTimersByTimeAsync(60_000);
      const result = await provider.get().catch((error: { code: string }) => error.code);
      // The default margin is 60 s, so the token stops at 59 minutes of age.
      expect(result).toBe(minute < 59 ? token : 'ERR_TOKEN_MINT_FAILED');
    }
    await provider.close();
  });
});

describe('token provider: wall-clock jumps', () => {
  it('refreshes early when the wall clock jumps ahead', async () => {
    const harness = createHarness({ policy: apnsPolicy, lifetimeSeconds: undefined });
    const first = await harness.provider.get();

    await harness.advance(300);
    harness.jumpWall(3_900);
    const second = await harness.provider.get();

    expect(second).not.toBe(first);
    expect(harness.events).toContainEqual(
      expect.objectContaining({ type: 'clock-jump', direction: 'forward', driftMs: 3_900_000 }),
    );
    await harness.provider.close();
  });

  it('ages tokens by the monotonic clock after a backward jump', async () => {
    const harness = createHarness({
      policy: apnsPolicy,
      lifetimeSeconds: undefined,
      backgroundRefresh: false,
    });
    const first = await harness.provider.get();

    await harness.advance(600);
    harness.jumpWall(-1_800);
    await harness.provider.get();
    expect(harness.events).toContainEqual(
      expect.objectContaining({ type: 'clock-jump', direction: 'backward', driftMs: -1_800_000 }),
    );

    // 61 real minutes after the mint the wall clock reads 31 minutes, but the token is stale.
    await harness.advance(3_060);
    const later = await harness.provider.get();
    expect(later).not.toBe(first);
    expect(harness.mints).toHaveLength(2);
    const jumps = harness.events.filter((event) => event.type === 'clock-jump');
    expect(jumps).toHaveLength(1);
    await harness.provider.close();
  });
});

describe('token provider: APNs rules', () => {
  function apnsHarness(options = {}) {
    return createHarness({ policy: apnsPolicy, lifetimeSeconds: undefined, ...options });
  }

  it('mints the first token on the first get()', async () => {
    const harness = apnsHarness();
    await harness.advance(45 * 60);
    expect(harness.mints).toHaveLength(0);

    await harness.provider.get();
    expect(harness.mints).toHaveLength(1);
    expect(harness.mints[0]!.iat).toBe(bootSeconds + 45 * 60);
    await harness.provider.close();
  });

  it('keeps one token across a late first send', async () => {
    const harness = apnsHarness();
    await harness.advance(45 * 60);
    const first = await harness.provider.get();
    await harness.advance(12 * 60);
    const second = await harness.provider.get();

    expect(second).toBe(first);
    expect(harness.mints).toHaveLength(1);
    await harness.provider.close();
  });

  it('mints one token for 500 sends in a minute', async () => {
    const harness = apnsHarness();
    for (let send = 0; send < 500; send += 1) {
      await harness.provider.get();
      await vi.advanceTimersByTimeAsync(120);
    }
    expect(harness.mints).toHaveLength(1);
    await harness.provider.close();
  });

  it('does not send a boot token stale', async () => {
    const harness = apnsHarness({ backgroundRefresh: false });
    const boot = await harness.provider.get();
    await harness.advance(65 * 60);

    const record = await harness.provider.getRecord();
    expect(record.token).not.toBe(boot);
    expect(harness.wallSeconds() - record.iat).toBeLessThan(60);
    await harness.provider.close();
  });

  it('refreshes between 20 and 60 minutes of age', async () => {
    const harness = apnsHarness({ random: Math.random });
    const served: Array<{ iat: number; at: number }> = [];

    for (let step = 0; step < 6 * 360; step += 1) {
      const record = await harness.provider.getRecord();
      served.push({ iat: record.iat, at: harness.wallSeconds() });
      await harness.advance(10);
    }

    const iats = harness.mints.map((mint) => mint.iat);
    const gaps = iats.slice(1).map((iat, index) => iat - iats[index]!);
    expect(iats.length).toBeGreaterThanOrEqual(7);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(2_700);
    for (const gap of gaps) expect(gap).toBeLessThanOrEqual(2_700 + 84);
    for (const { iat, at } of served) expect(at - iat).toBeLessThan(3_600 - 60);
    await harness.provider.close();
  });

  it('never refreshes before 20 minutes of age', async () => {
    const floorPolicy = { ...apnsPolicy, targetAgeSeconds: 1_200 };
    const harness = apnsHarness({ policy: floorPolicy, backgroundRefresh: false });
    await harness.provider.get();

    // A wall clock 700 s fast makes the token look 21 minutes old after 10 real minutes.
    await harness.advance(600);
    harness.jumpWall(700);
    await harness.provider.get();
    await settle();
    expect(harness.mints).toHaveLength(1);

    await harness.advance(599);
    await harness.provider.get();
    await settle();
    expect(harness.mints).toHaveLength(1);

    await harness.advance(1);
    await harness.provider.get();
    await settle();
    expect(harness.mints).toHaveLength(2);
    await harness.provider.close();
  });
});

describe('token provider: shared store', () => {
  function flakyStore(mode: { failing: boolean; hanging: boolean }): TokenStore {
    const inner = createMemoryStore();
    const guard = async () => {
      if (mode.hanging) await new Promise<never>(() => undefined);
      if (mode.failing)
        throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
    };
    return {
      name: 'flaky',
      read: async (key) => (await guard(), inner.read(key)),
      acquire: async (key, ttlMs) => (await guard(), inner.acquire(key, ttlMs)),
    };
  }

  it('mints locally while the store fails', async () => {
    const mode = { failing: true, hanging: false };
    const harness = createHarness({
      store: flakyStore(mode),
      cacheKey: 'k',
      backgroundRefresh: false,
    });

    const token = await harness.provider.get();
    expect(token).toBe(harness.mints[0]!.token);
    const fallback = harness.events.filter((event) => event.type === 'store-fallback');
    expect(fallback).toHaveLength(1);
    expect(fallback[0]).toMatchObject({ store: 'flaky', operation: 'read', code: 'ECONNREFUSED' });

    mode.failing = false;
    await harness.advance(100 * day);
    await harness.provider.get();
    await settle();
    expect(harness.events.map((event) => event.type)).toContain('store-recovered');
    expect(harness.mints).toHaveLength(2);
    await harness.provider.close();
  });

  for (const operation of ['read', 'acquire'] as const) {
    it(`rejects a store without its package at ${operation}`, async () => {
      const peerMissing = () =>
        Object.assign(new Error('The optional dependency redis is not installed.'), {
          code: 'ERR_PEER_MISSING',
        });
      const inner = createMemoryStore();
      const store: TokenStore = {
        name: 'unconfigured',
        read: async (key) => {
          if (operation === 'read') throw peerMissing();
          return inner.read(key);
        },
        acquire: async () => {
          throw peerMissing();
        },
      };
      const harness = createHarness({ store, cacheKey: 'k', backgroundRefresh: false });

      await expect(harness.provider.get()).rejects.toMatchObject({ code: 'ERR_PEER_MISSING' });
      await harness.advance(100 * day);
      await expect(harness.provider.get()).rejects.toMatchObject({ code: 'ERR_PEER_MISSING' });
      expect(harness.mints).toHaveLength(0);
      const types = harness.events.map((event) => event.type);
      expect(types).not.toContain('store-fallback');
      expect(harness.events).toContainEqual(
        expect.objectContaining({ type: 'failure', code: 'ERR_PEER_MISSING' }),
      );
      await harness.provider.close();
    });
  }

  it('wraps a mint without its package', async () => {
    const harness = createHarness({
      mint: async () => {
        throw Object.assign(new Error('@aws-sdk/client-kms is not installed'), {
          code: 'ERR_PEER_MISSING',
        });
      },
    });

    await expect(harness.provider.get()).rejects.toMatchObject({
      code: 'ERR_TOKEN_MINT_FAILED',
      details: { causeCode: 'ERR_PEER_MISSING' },
    });
    await harness.provider.close();
  });

  it('falls back when a store throws oddly', async () => {
    const odd: TokenStore = {
      name: 'odd',
      read: async () => {
        // String() cannot convert an object without a prototype.
        throw Object.create(null);
      },
      acquire: async () => undefined,
    };
    const harness = createHarness({ store: odd, cacheKey: 'k' });

    expect(await harness.provider.get()).toBe(harness.mints[0]!.token);
    expect(harness.events).toContainEqual(
      expect.objectContaining({ type: 'store-fallback', store: 'odd' }),
    );
    await harness.provider.close();
  });

  it('reports one outage once', async () => {
    const mode = { failing: true, hanging: false };
    const harness = createHarness({
      store: flakyStore(mode),
      cacheKey: 'k',
      backgroundRefresh: false,
    });
    await harness.provider.get();

    for (let round = 0; round < 3; round += 1) {
      await harness.advance(100 * day);
      await harness.provider.get();
      await settle();
    }
    expect(harness.mints).toHaveLength(4);
    expect(harness.events.filter((event) => event.type === 'store-fallback')).toHaveLength(1);
    await harness.provider.close();
  });

  it('mints locally when the store hangs', async () => {
    const mode = { failing: false, hanging: true };
    const harness = createHarness({
      store: flakyStore(mode),
      cacheKey: 'k',
      storeTimeoutMs: 2_000,
    });

    const pending = harness.provider.get();
    await harness.advance(2);
    const token = await pending;
    expect(token).toBe(harness.mints[0]!.token);
    expect(harness.events).toContainEqual(
      expect.objectContaining({ type: 'store-fallback', code: 'ERR_STORE_TIMEOUT' }),
    );
    await harness.provider.close();
  });

  it('releases a lease granted after the deadline', async () => {
    const inner = createMemoryStore();
    // A store whose acquire replies 3 s late: after the provider's 2 s store deadline.
    const slow: TokenStore = {
      name: 'slow',
      read: (key) => inner.read(key),
      acquire: async (key, ttlMs) => {
        await new Promise((resolve) => setTimeout(resolve, 3_000));
        return inner.acquire(key, ttlMs);
      },
    };
    const harness = createHarness({ store: slow, cacheKey: 'k', storeTimeoutMs: 2_000 });

    const pending = harness.provider.get();
    await harness.advance(3);
    await pending;
    expect(harness.events).toContainEqual(
      expect.objectContaining({ type: 'store-fallback', code: 'ERR_STORE_TIMEOUT' }),
    );
    expect(await inner.acquire('k', 1_000)).toBeDefined();
    await harness.provider.close();
  });

  it('takes over when a lease holder never stores', async () => {
    const store = createMemoryStore();
    await store.acquire('k', 3_000);
    const harness = createHarness({ store, cacheKey: 'k', pollIntervalMs: 100 });

    const pending = harness.provider.get();
    await harness.advance(2.9);
    expect(harness.mints).toHaveLength(0);
    await harness.advance(0.2);
    await pending;
    expect(harness.mints).toHaveLength(1);
    expect(harness.mints[0]!.token).toBe((await store.read('k'))!.token);
    await harness.provider.close();
  });

  it('adopts a newer token from the store', async () => {
    const store = createMemoryStore();
    const cacheKey = 'client-secret:TEAM:KEY:CLIENT';
    const first = createHarness({ store, cacheKey, backgroundRefresh: false });
    const second = createHarness({ store, cacheKey, backgroundRefresh: false });
    const original = await first.provider.get();
    expect(await second.provider.get()).toBe(original);

    // The first provider refreshes at its point; the second adopts that token at its own point.
    await first.advance(90 * day);
    await first.provider.get();
    await settle();
    await second.provider.get();
    await settle();
    const refreshed = await second.provider.get();
    expect(refreshed).not.toBe(original);
    expect(refreshed).toBe(await first.provider.get());
    expect(first.mints.length + second.mints.length).toBe(2);
    await first.provider.close();
    await second.provider.close();
  });

  it('ignores a stored token issued in the future', async () => {
    const store = createMemoryStore();
    const lease = await store.acquire('k', 1_000);
    await lease!.write(makeToken(bootSeconds + 3_600, bootSeconds + 200 * day), Infinity);
    await lease!.release();
    const harness = createHarness({ store, cacheKey: 'k' });

    const token = await harness.provider.get();
    expect(token).toBe(harness.mints[0]!.token);
    expect(harness.events).toContainEqual(
      expect.objectContaining({ type: 'clock-skew', aheadSeconds: 3_600 }),
    );
    await harness.provider.close();
  });
});

describe('token provider: mint checks', () => {
  it('rejects a minted iat far in the future', async () => {
    const provider = createTokenProvider({
      policy: clientSecret(),
      mint: async () => makeToken(bootSeconds + 600, bootSeconds + 180 * day),
    });

    const error = await provider.get().catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'ERR_TOKEN_INVALID' });
    expect((error as Error).message).toContain('600 s ahead');
    await provider.close();
  });

  it('re-mints a secret with ten minutes left', async () => {
    const harness = createHarness({ backgroundRefresh: false, lifetimeSeconds: 180 * day });
    const first = await harness.provider.get();
    await harness.advance(180 * day - 600);

    const second = await harness.provider.get();
    expect(second).not.toBe(first);
    expect(harness.mints).toHaveLength(2);
    await harness.provider.close();
  });

  it('returns a copy of the record', async () => {
    const harness = createHarness();
    const record = await harness.provider.getRecord();
    record.token = 'changed.by.caller';
    record.iat = 0;

    const again = await harness.provider.getRecord();
    expect(again.token).toBe(harness.mints[0]!.token);
    expect(again.iat).toBe(bootSeconds);
    await harness.provider.close();
  });

  it('rejects a malformed backoff', () => {
    const mint = async () => makeToken(bootSeconds, bootSeconds + day);
    const cases = [
      { initialMs: Number.NaN },
      { initialMs: -1 },
      { maxMs: Number.POSITIVE_INFINITY },
      { maxMs: '60000' },
      'fast',
    ];
    for (const backoff of cases) {
      expect(() =>
        createTokenProvider({ mint, policy: clientSecret(), backoff: backoff as never }),
      ).toThrow(TypeError);
    }
  });

  it('requires cacheKey with a store', () => {
    const mint = async () => makeToken(bootSeconds, bootSeconds + day);
    const store = createMemoryStore();
    expect(() => createTokenProvider({ mint, policy: clientSecret(), store })).toThrow(TypeError);
    expect(() =>
      createTokenProvider({ mint, policy: clientSecret(), store, cacheKey: '' }),
    ).toThrow(TypeError);
    expect(() =>
      createTokenProvider({ mint, policy: clientSecret(), cacheKey: 7 as never }),
    ).toThrow(TypeError);
  });

  it('carries iat and exp on the record', async () => {
    const harness = createHarness();
    const record = await harness.provider.getRecord();

    expect(record.iat).toBe(bootSeconds);
    expect(record.exp).toBe(bootSeconds + 180 * day);
    expect(Object.keys(record).sort()).toEqual(['exp', 'iat', 'token']);
    await harness.provider.close();
  });
});

describe('token provider: lifecycle and events', () => {
  it('leaves no timer after close during a mint', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const provider = createTokenProvider({
      policy: clientSecret(),
      mint: async () => {
        await gate;
        return makeToken(bootSeconds, bootSeconds + 180 * day);
      },
    });

    const pending = provider.get();
    await settle();
    await provider.close();
    release();
    await pending;
    await settle();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('stops its timers on close', async () => {
    const harness = createHarness();
    await harness.provider.get();
    expect(vi.getTimerCount()).toBe(1);

    await harness.provider.close();
    expect(vi.getTimerCount()).toBe(0);
    await expect(harness.provider.get()).rejects.toMatchObject({
      code: 'ERR_TOKEN_PROVIDER_CLOSED',
    });
  });

  it('puts no token text in any event', async () => {
    const harness = createHarness({ policy: apnsPolicy, lifetimeSeconds: undefined });
    await harness.provider.get();
    await harness.advance(3 * 3600);
    harness.jumpWall(7200);
    await harness.provider.get();

    const text = JSON.stringify(harness.events);
    expect(harness.events.map((event) => event.type)).toEqual(
      expect.arrayContaining(['mint', 'refresh', 'clock-jump']),
    );
    for (const mint of harness.mints) {
      expect(text).not.toContain(mint.token);
      expect(text).not.toContain(mint.token.split('.')[2]);
    }
    await harness.provider.close();
  });
});

describe('token provider: real timers', () => {
  it('unrefs every timer', async () => {
    vi.useRealTimers();
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const provider = createTokenProvider({
      policy: clientSecret(),
      mint: async () => {
        const iat = Math.floor(Date.now() / 1000);
        return makeToken(iat, iat + 180 * day);
      },
    });
    await provider.get();

    const timers = spy.mock.results.map((result) => result.value as NodeJS.Timeout);
    expect(timers.length).toBeGreaterThanOrEqual(2);
    for (const timer of timers) expect(timer.hasRef()).toBe(false);
    spy.mockRestore();
    await provider.close();
  });
});

describe('token provider: process lifetime', () => {
  it('keeps a waiting script alive until the deadline', async () => {
    vi.useRealTimers();
    // The mint never settles and opens no handle, so only the deadline timer can end the wait.
    const source = `
      import { createTokenProvider } from './dist/index.js';
      const provider = createTokenProvider({
        policy: { type: 'by-age', minAgeSeconds: 1200, maxAgeSeconds: 3300, targetAgeSeconds: 2700 },
        mintTimeoutMs: 300,
        mint: () => new Promise(() => undefined),
      });
      const code = await provider.get().then(() => 'no error', (error) => error.code);
      console.log(code);
    `;
    const run = await runModule(source);

    expect(run.stdout.trim()).toBe('ERR_TOKEN_MINT_TIMEOUT');
    expect(run.code).toBe(0);
  });
});

/** Runs an ES module on the built package in a child process, as a one-shot script would. */
function runModule(source: string): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout });
    });
  });
}

function clientSecret() {
  return { type: 'before-expiry', refreshAtFraction: 0.5, minRemainingSeconds: day } as const;
}
