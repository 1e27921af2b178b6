// A fake-clock harness for provider tests: vitest's fake timers drive setTimeout and Date, the
// monotonic clock follows fake time, and the wall clock can jump by an offset.
import { vi } from 'vitest';
import type { SignerEvent } from '../../src/signer.js';
import {
  createTokenProvider,
  type TokenProvider,
  type TokenProviderOptions,
} from '../../src/token-provider.js';
import type { MintedToken } from '../../src/token-record.js';
import { makeToken } from './fixtures.js';

export const bootSeconds = 1_760_000_000;

export interface Harness {
  provider: TokenProvider;
  events: SignerEvent[];
  mints: MintedToken[];
  /** Seconds on the (possibly jumped) wall clock. */
  wallSeconds: () => number;
  /** Moves the wall clock alone, as an NTP step would. */
  jumpWall: (seconds: number) => void;
  /** Advances real (fake) time, running due timers and settling promises. */
  advance: (seconds: number) => Promise<void>;
}

export function installFakeClock(): void {
  vi.useFakeTimers({
    now: bootSeconds * 1000,
    toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'],
  });
}

export function createHarness(
  options: Partial<TokenProviderOptions> & { lifetimeSeconds?: number | undefined } = {},
): Harness {
  let wallOffsetMs = 0;
  const events: SignerEvent[] = [];
  const mints: MintedToken[] = [];
  const origin = Date.now();
  const wallSeconds = () => Math.floor((Date.now() + wallOffsetMs) / 1000);
  const lifetime = 'lifetimeSeconds' in options ? options.lifetimeSeconds : 180 * 86_400;

  const mint = async () => {
    const iat = wallSeconds();
    const token = makeToken(iat, lifetime === undefined ? undefined : iat + lifetime, {
      n: mints.length,
    });
    mints.push(token);
    return token;
  };

  const provider = createTokenProvider({
    mint,
    policy: { type: 'before-expiry', refreshAtFraction: 0.5, minRemainingSeconds: 86_400 },
    random: () => 0,
    now: () => Date.now() + wallOffsetMs,
    monotonicNow: () => Date.now() - origin + 5_000,
    onEvent: (event) => events.push(event),
    ...options,
  });

  return {
    provider,
    events,
    mints,
    wallSeconds,
    jumpWall: (seconds) => {
      wallOffsetMs += seconds * 1000;
    },
    advance: async (seconds) => {
      await vi.advanceTimersByTimeAsync(seconds * 1000);
    },
  };
}

/** Lets pending promise callbacks run without moving the clock. */
export async function settle(): Promise<void> {
  await vi.advanceTimersByTimeAsync(0);
}
