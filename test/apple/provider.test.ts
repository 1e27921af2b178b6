/**
 * createAppleTokenProvider under a fake clock: each kind refreshed by its own policy. APNs
 * tokens are replaced by age, never sooner than 20 minutes and always before 60. A burst of
 * callers shares one token, and client secrets are replaced halfway through their life.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  appleTokenProfiles,
  createAppleToken,
  createAppleTokenProvider,
} from '../../src/apple/index.js';
import type { AppleTokenKind } from '../../src/apple/types.js';
import type { Signer, SignerEvent } from '../../src/signer.js';
import { createMemoryStore } from '../../src/stores/store.js';
import { computeRefreshWindow } from '../../src/token-policy.js';
import {
  businessClientId,
  businessKeyId,
  createTestKey,
  day,
  issuerId,
  keyId,
  teamId,
  verifyIndependently,
} from './support.js';

const bootSeconds = 1_767_225_600;
// No random jitter, so that refreshes happen at the policy's own points.
const noJitter = { random: () => 0 };
let publicPem: string;
let signer: Signer & { calls: number };

beforeAll(async () => {
  const key = await createTestKey();
  publicPem = key.publicPem;
  const inner = key.signer;
  signer = {
    keyId: inner.keyId,
    calls: 0,
    sign: (input: Uint8Array) => {
      signer.calls += 1;
      return inner.sign(input);
    },
    getPublicKey: () => inner.getPublicKey(),
  };
});

beforeEach(() => {
  vi.useFakeTimers({
    now: bootSeconds * 1000,
    toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'],
  });
  signer.calls = 0;
});

afterEach(() => {
  vi.useRealTimers();
});

function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));
}

async function advance(seconds: number): Promise<void> {
  await vi.advanceTimersByTimeAsync(seconds * 1000);
}

function clockSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

describe('createAppleTokenProvider: APNs', () => {
  it('mints one token for 500 sends in a minute', async () => {
    const provider = createAppleTokenProvider('apns', { signer, teamId, keyId }, noJitter);
    const tokens = new Set<string>();
    for (let send = 0; send < 500; send++) {
      tokens.add(await provider.get());
      if (send % 10 === 9) await advance(1);
    }
    expect(tokens.size).toBe(1);
    expect(signer.calls).toBe(1);
    await provider.close();
  });

  it('shares one mint between concurrent callers', async () => {
    const provider = createAppleTokenProvider('apns', { signer, teamId, keyId }, noJitter);
    const tokens = await Promise.all(Array.from({ length: 50 }, () => provider.get()));
    expect(new Set(tokens).size).toBe(1);
    expect(signer.calls).toBe(1);
    await provider.close();
  });

  it('counts age from the first mint, not from creation', async () => {
    const provider = createAppleTokenProvider('apns', { signer, teamId, keyId }, noJitter);
    await advance(45 * 60);
    const first = await provider.get();
    await advance(12 * 60);
    expect(await provider.get()).toBe(first);
    expect(signer.calls).toBe(1);
    await provider.close();
  });

  it('refreshes between 20 and 60 minutes of age', async () => {
    const provider = createAppleTokenProvider('apns', { signer, teamId, keyId }, noJitter);
    const first = await provider.get();
    const firstIat = claimsOf(first).iat as number;

    await advance(20 * 60);
    expect(await provider.get()).toBe(first);
    await advance(25 * 60);
    const second = await provider.get();
    expect(second).not.toBe(first);
    expect(signer.calls).toBe(2);

    const secondIat = claimsOf(second).iat as number;
    expect(secondIat - firstIat).toBeGreaterThanOrEqual(20 * 60);
    expect(secondIat - firstIat).toBeLessThan(60 * 60);
    expect(Object.keys(claimsOf(second))).toEqual(['iss', 'iat']);
    expect(claimsOf(second).iss).toBe(teamId);
    await provider.close();
  });

  it('never serves a token an hour old', async () => {
    const provider = createAppleTokenProvider(
      'apns',
      { signer, teamId, keyId },
      { ...noJitter, backgroundRefresh: false },
    );
    const first = await provider.get();
    await advance(60 * 60);
    const later = await provider.get();
    expect(later).not.toBe(first);
    const age = clockSeconds() - (claimsOf(later).iat as number);
    expect(age).toBeLessThan(60 * 60);
    await provider.close();
  });
});

describe('createAppleTokenProvider: kinds with exp', () => {
  it('replaces a client secret halfway through its life', async () => {
    const provider = createAppleTokenProvider(
      'client-secret',
      {
        signer,
        teamId,
        clientId: 'com.example.web',
        keyId,
      },
      noJitter,
    );
    const first = await provider.get();
    await advance(90 * day - 60);
    expect(await provider.get()).toBe(first);
    await advance(120);
    const second = await provider.get();
    expect(second).not.toBe(first);

    const verified = await verifyIndependently(second, publicPem, clockSeconds());
    expect(verified.claims.exp).toBe((verified.claims.iat as number) + 30 + 180 * day);
    await provider.close();
  });

  it('never serves a client secret with 10 minutes left', async () => {
    let failing = false;
    const flaky: Signer = {
      keyId: signer.keyId,
      sign: (input, options) => {
        if (failing) return Promise.reject(new Error('signing backend down'));
        return signer.sign(input, options);
      },
      getPublicKey: (options) => signer.getPublicKey(options),
    };
    const provider = createAppleTokenProvider(
      'client-secret',
      { signer: flaky, teamId, clientId: 'com.example.web', keyId },
      { ...noJitter, backgroundRefresh: false },
    );
    const first = await provider.getRecord();
    failing = true;

    await advance(first.exp! - 600 - clockSeconds());
    const tenMinutesLeft = await provider.get().then(
      (token) => token,
      (error: unknown) => error as { code?: string },
    );
    expect(tenMinutesLeft).not.toBe(first.token);
    expect((tenMinutesLeft as { code?: string }).code).toBe('ERR_TOKEN_MINT_FAILED');

    await advance(601);
    const expired = await provider.get().then(
      (token) => token,
      (error: unknown) => error as { code?: string },
    );
    expect(expired).not.toBe(first.token);
    await provider.close();
  });

  it('replaces an App Store Connect token before its 15 minutes run out', async () => {
    const provider = createAppleTokenProvider(
      'app-store-connect',
      {
        signer,
        issuerId,
        keyId: '2X9R4HXF34',
      },
      noJitter,
    );
    const record = await provider.getRecord();
    expect(record.exp! - record.iat).toBe(930);

    const served: string[] = [];
    for (let minute = 0; minute < 60; minute++) {
      const current = await provider.getRecord();
      // Every token handed out is valid for at least the provider's 60 s margin.
      expect(current.exp! - clockSeconds()).toBeGreaterThanOrEqual(60);
      served.push(current.token);
      await advance(60);
    }
    expect(new Set(served).size).toBeGreaterThanOrEqual(4);
    await provider.close();
  });

  it('takes the policy from the caller', async () => {
    const provider = createAppleTokenProvider(
      'weatherkit',
      { signer, teamId, serviceId: 'com.example.weather', keyId, lifetime: '2h' },
      {
        policy: { type: 'before-expiry', refreshAtFraction: 0.25, minRemainingSeconds: 60 },
        backgroundRefresh: false,
        jitterSeconds: 0,
      },
    );
    // exp - iat is 7230 s with the 30 s backdating, so a quarter is due 1777 s from now.
    const first = await provider.get();
    await advance(1776);
    expect(await provider.get()).toBe(first);
    await advance(2);
    await provider.get();
    await vi.advanceTimersByTimeAsync(0);
    expect(await provider.get()).not.toBe(first);
    await provider.close();
  });
});

describe('createAppleTokenProvider: cache keys and errors', () => {
  it('keeps tokens for different teams apart in a shared store', async () => {
    const store = createMemoryStore();
    const events: SignerEvent[] = [];
    const onEvent = (event: SignerEvent) => events.push(event);
    const first = createAppleTokenProvider('apns', { signer, teamId, keyId }, { store, onEvent });
    const other = createAppleTokenProvider(
      'apns',
      { signer, teamId: 'ZZZ999YYYY', keyId },
      { store, onEvent },
    );
    const same = createAppleTokenProvider('apns', { signer, teamId, keyId }, { store, onEvent });

    const firstToken = await first.get();
    const otherToken = await other.get();
    expect(otherToken).not.toBe(firstToken);
    expect(claimsOf(otherToken).iss).toBe('ZZZ999YYYY');
    expect(await same.get()).toBe(firstToken);
    expect(signer.calls).toBe(2);

    const keys = new Set(events.map((event) => event.cacheKey));
    expect(keys).toEqual(new Set([`apns:${teamId}:${keyId}`, `apns:ZZZ999YYYY:${keyId}`]));
    await Promise.all([first.close(), other.close(), same.close()]);
  });

  it('replaces a stored token for another team', async () => {
    const store = createMemoryStore();
    const cacheKey = `apns:${teamId}:${keyId}`;
    // A buggy process stored another team's token under this team's key.
    const foreign = await createAppleToken('apns', { signer, teamId: 'ZZZ999YYYY', keyId });
    const lease = await store.acquire(cacheKey, 1_000);
    const record = { token: foreign.token, iat: foreign.claims.iat as number, exp: undefined };
    await lease!.write(record, Date.now() + 3_600_000);
    await lease!.release();
    signer.calls = 0;
    const events: SignerEvent[] = [];
    const provider = createAppleTokenProvider(
      'apns',
      { signer, teamId, keyId },
      { store, onEvent: (event) => events.push(event) },
    );

    const token = await provider.get();
    expect(token).not.toBe(foreign.token);
    expect(claimsOf(token).iss).toBe(teamId);
    expect(signer.calls).toBe(1);
    expect((await store.read(cacheKey))!.token).toBe(token);
    expect(events).toContainEqual(expect.objectContaining({ type: 'store-invalid', cacheKey }));
    await provider.close();
  });

  it('replaces a stored token for another client', async () => {
    const store = createMemoryStore();
    const options = { signer, teamId, keyId, clientId: 'com.example.web' };
    const cacheKey = `client-secret:${teamId}:com.example.web:${keyId}`;
    const foreign = await createAppleToken('client-secret', { ...options, clientId: 'com.evil' });
    const lease = await store.acquire(cacheKey, 1_000);
    const { iat, exp } = foreign.claims as { iat: number; exp: number };
    await lease!.write({ token: foreign.token, iat, exp }, exp * 1000);
    await lease!.release();
    const provider = createAppleTokenProvider('client-secret', options, { store, cacheKey });

    const token = await provider.get();
    expect(token).not.toBe(foreign.token);
    expect(claimsOf(token).sub).toBe('com.example.web');
    await provider.close();
  });

  it('rejects get() with the mint error code as the cause', async () => {
    const provider = createAppleTokenProvider('devicecheck', { signer, teamId: issuerId, keyId });
    const error = await provider.get().then(
      () => undefined,
      (reason: unknown) => reason as { code: string; details: Record<string, unknown> },
    );
    expect(error?.code).toBe('ERR_TOKEN_MINT_FAILED');
    expect(error?.details.causeCode).toBe('ERR_APPLE_FIELD_INVALID');
    expect(signer.calls).toBe(0);
    await provider.close();
  });

  it('rejects a kind that does not exist', () => {
    expect(() => createAppleTokenProvider('fax' as never, { signer } as never)).toThrow(TypeError);
  });

  it('sends mint warnings to the onEvent of the token options', async () => {
    const events: SignerEvent[] = [];
    const provider = createAppleTokenProvider('musickit', {
      signer,
      teamId,
      keyId,
      origin: ['https://music.example.com'],
      onEvent: (event) => events.push(event),
    });
    await provider.get();
    const warnings = events.filter((event) => event.type === 'warning');
    expect(warnings.map((event) => event.rule)).toEqual(['origin-browser-only']);
    await provider.close();
  });
});

const optionsByKind: Record<AppleTokenKind, Record<string, unknown>> = {
  'client-secret': { teamId, clientId: 'com.example.web', keyId },
  'app-store-connect': { subject: 'user', keyId: '2X9R4HXF34' },
  'app-store-server': { issuerId, bundleId: 'com.example.app', keyId: '2X9R4HXF34' },
  apns: { teamId, keyId },
  musickit: { teamId, keyId },
  weatherkit: { teamId, serviceId: 'com.example.weather', keyId },
  mapkit: { teamId, keyId },
  devicecheck: { teamId, keyId },
  'business-manager': { clientId: businessClientId, keyId: businessKeyId },
};

describe.each(Object.keys(optionsByKind) as AppleTokenKind[])(
  'createAppleTokenProvider: %s',
  (kind) => {
    it('refreshes at its profile policy point', async () => {
      const options = { ...optionsByKind[kind], signer };
      const provider = createAppleTokenProvider(kind, options as never, noJitter);
      const first = await provider.getRecord();
      const window = computeRefreshWindow(appleTokenProfiles[kind].refreshPolicy, first, 60);
      const dueIn = window.refreshAt - clockSeconds();
      expect(dueIn).toBeGreaterThan(0);

      await advance(dueIn - 1);
      expect((await provider.getRecord()).token).toBe(first.token);
      expect(signer.calls).toBe(1);
      await advance(2);
      const second = await provider.getRecord();
      expect(second.token).not.toBe(first.token);
      expect(signer.calls).toBe(2);
      // The timer mints at the refresh point, and iat is backdated 30 s from then.
      expect(second.iat - (window.refreshAt - 30)).toBeGreaterThanOrEqual(0);
      expect(second.iat - (window.refreshAt - 30)).toBeLessThanOrEqual(1);
      await provider.close();
    });
  },
);
