// Clock tricks against the provider: tokens whose iat is ahead of this host's clock, and wall
// clocks that disagree with the monotonic clock. A returned token must be usable by every clock
// the provider has evidence for.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createTokenProvider } from '../../src/token-provider.js';
import { makeToken } from './fixtures.js';
import { bootSeconds, installFakeClock } from './harness.js';

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

describe('clock checks: iat ahead of this host', () => {
  it('counts time from an iat ahead', async () => {
    // The signer's clock runs 250 s ahead of this host's. If the signer is right, this host
    // is 250 s behind, and the token's exp comes 250 s sooner than this host's clock shows.
    const aheadSeconds = 250;
    const mint = vi.fn(async () => {
      const iat = nowSeconds() + aheadSeconds;
      return makeToken(iat, iat + 1200);
    });
    const provider = createTokenProvider({ policy: shortLived, backgroundRefresh: false, mint });
    const first = await provider.getRecord();

    // This host's clock reads exp - 200 s. The signer's clock reads exp + 50 s.
    await vi.advanceTimersByTimeAsync((first.exp! - 200 - bootSeconds) * 1000);
    const second = await provider.get();
    expect(second).not.toBe(first.token);
    expect(mint).toHaveBeenCalledTimes(2);
    await provider.close();
  });

  it('rejects a mint unusable by its own iat', async () => {
    // Usable until exp - 120 s = iat - 20 s: already over by the signer's clock.
    const iat = bootSeconds + 250;
    const provider = createTokenProvider({
      policy: shortLived,
      mint: async () => makeToken(iat, iat + 100),
    });

    await expect(provider.get()).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID' });
    await provider.close();
  });
});
