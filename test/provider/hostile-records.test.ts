// Records that lie: a mint function, a store or a cache file whose iat and exp disagree with the
// token they carry. The provider must judge a token by the times the token itself states.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SignerEvent } from '../../src/signer.js';
import { getOrMintWithFileCache } from '../../src/stores/file-cache.js';
import { createMemoryStore } from '../../src/stores/store.js';
import { createTokenProvider } from '../../src/token-provider.js';
import { assertMintedToken } from '../../src/token-record.js';
import { makeToken } from './fixtures.js';
import { bootSeconds, installFakeClock } from './harness.js';

const day = 86_400;
// A short-lived kind, such as an App Store Connect token.
const shortLived = {
  type: 'before-expiry',
  refreshAtFraction: 0.5,
  minRemainingSeconds: 120,
} as const;

beforeEach(() => {
  installFakeClock();
});

afterEach(() => {
  vi.useRealTimers();
});

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

describe('record checks: times against claims', () => {
  it('rejects a record exp later than the claim', () => {
    const token = makeToken(bootSeconds, bootSeconds + 1200);
    const lying = { ...token, exp: bootSeconds + 180 * day };

    expect(() => assertMintedToken(lying, 'the mint function')).toThrow(
      expect.objectContaining({ code: 'ERR_TOKEN_INVALID' }),
    );
  });

  it('rejects a record iat other than the claim', () => {
    const token = makeToken(bootSeconds - 3000, undefined);
    const lying = { ...token, iat: bootSeconds };

    expect(() => assertMintedToken(lying, 'the mint function')).toThrow(
      expect.objectContaining({ code: 'ERR_TOKEN_INVALID' }),
    );
  });

  it('rejects an exp the token does not carry', () => {
    const token = makeToken(bootSeconds, undefined);

    expect(() => assertMintedToken({ ...token, exp: bootSeconds + 600 }, 'a store')).toThrow(
      expect.objectContaining({ code: 'ERR_TOKEN_INVALID' }),
    );
    const withExp = makeToken(bootSeconds, bootSeconds + 600);
    expect(() => assertMintedToken({ ...withExp, exp: undefined }, 'a store')).toThrow(
      expect.objectContaining({ code: 'ERR_TOKEN_INVALID' }),
    );
  });

  it('rejects a payload that is not a JSON object', () => {
    const token = makeToken(bootSeconds, bootSeconds + 600);
    const [header, , signature] = token.token.split('.');
    for (const payload of ['bm90IGpzb24', 'WzFd', 'bnVsbA']) {
      const record = { ...token, token: `${header}.${payload}.${signature}` };
      expect(() => assertMintedToken(record, 'a store')).toThrow(
        expect.objectContaining({ code: 'ERR_TOKEN_INVALID' }),
      );
    }
  });

  it('accepts a record that matches its claims', () => {
    expect(() =>
      assertMintedToken(makeToken(bootSeconds, bootSeconds + 600), 'the mint function'),
    ).not.toThrow();
    expect(() =>
      assertMintedToken(makeToken(bootSeconds, undefined), 'the mint function'),
    ).not.toThrow();
  });

  it('rejects a mint that outlives its token', async () => {
    const token = makeToken(bootSeconds, bootSeconds + 1200);
    const provider = createTokenProvider({
      policy: shortLived,
      mint: async () => ({ ...token, exp: bootSeconds + 180 * day }),
    });

    await expect(provider.get()).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID' });
    await provider.close();
  });

  it('replaces a stored record outliving its token', async () => {
    const store = createMemoryStore();
    const expired = makeToken(bootSeconds - 7200, bootSeconds - 3600);
    const lease = await store.acquire('k', 1_000);
    const lie = { ...expired, iat: bootSeconds, exp: bootSeconds + 180 * day };
    await lease!.write(lie, (bootSeconds + 180 * day) * 1000);
    await lease!.release();
    const events: SignerEvent[] = [];
    const provider = createTokenProvider({
      policy: shortLived,
      store,
      cacheKey: 'k',
      mint: async () => makeToken(nowSeconds(), nowSeconds() + 1200),
      onEvent: (event) => events.push(event),
    });

    const token = await provider.get();
    expect(token).not.toBe(expired.token);
    expect((await store.read('k'))!.token).toBe(token);
    expect(events.map((event) => event.type)).toContain('store-invalid');
    await provider.close();
  });

  it('re-mints over an outliving cache file', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'kms-jwt-hostile-'));
    try {
      const path = join(folder, 'secret.json');
      const cacheKey = 'client-secret:DEF123GHIJ:ABC123DEFG:com.example.web';
      const expired = makeToken(bootSeconds - 200 * day, bootSeconds - 20 * day);
      const body = {
        version: 1,
        cacheKey,
        ...expired,
        iat: bootSeconds,
        exp: bootSeconds + 180 * day,
      };
      writeFileSync(path, JSON.stringify(body), { mode: 0o600 });
      const mint = vi.fn(async () => makeToken(bootSeconds, bootSeconds + 180 * day));

      const result = await getOrMintWithFileCache({
        path,
        cacheKey,
        policy: { type: 'before-expiry', refreshAtFraction: 0.5, minRemainingSeconds: day },
        now: () => bootSeconds * 1000,
        mint,
      });
      expect(result.token).not.toBe(expired.token);
      expect(result.reused).toBe(false);
      expect(mint).toHaveBeenCalledTimes(1);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });
});

describe('record checks: units', () => {
  it('rejects exp in milliseconds', async () => {
    // A token built with exp = Date.now() + lifetime, which verifiers read as 55,000 years away.
    const expMs = (bootSeconds + 1200) * 1000;
    const provider = createTokenProvider({
      policy: shortLived,
      mint: async () => makeToken(bootSeconds, expMs),
    });

    const error = await provider.get().catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'ERR_TOKEN_INVALID' });
    expect((error as Error).message).toContain('milliseconds');
    await provider.close();
  });
});

describe('record checks: live objects', () => {
  it('caches the values it checked', async () => {
    const token = makeToken(bootSeconds, bootSeconds + 1200);
    let lying = false;
    // A result whose exp getter changes once the provider has reported the mint.
    const result = {
      token: token.token,
      iat: token.iat,
      get exp() {
        return lying ? bootSeconds + 180 * day : token.exp;
      },
    };
    const provider = createTokenProvider({
      policy: shortLived,
      mint: async () => result as never,
      onEvent: (event) => {
        if (event.type === 'mint') lying = true;
      },
    });

    const record = await provider.getRecord();
    expect(record.exp).toBe(bootSeconds + 1200);
    await provider.close();
  });
});
