// The in-memory store: one lease at a time, lease expiry, fencing and token expiry, on injected
// clocks.
import { describe, expect, it } from 'vitest';
import { createMemoryStore } from '../../src/stores/store.js';
import { makeToken } from '../provider/fixtures.js';

const start = 1_760_000_000;

function clocks() {
  const state = { wallMs: start * 1000, monotonicMs: 0 };
  return {
    state,
    store: createMemoryStore({ now: () => state.wallMs, monotonicNow: () => state.monotonicMs }),
  };
}

describe('memory store', () => {
  it('reads nothing for a new key', async () => {
    const { store } = clocks();
    expect(await store.read('k')).toBeUndefined();
  });

  it('grants one lease at a time', async () => {
    const { store } = clocks();
    const lease = await store.acquire('k', 1_000);
    expect(lease?.fence).toBe(1);
    expect(await store.acquire('k', 1_000)).toBeUndefined();

    await lease!.release();
    expect((await store.acquire('k', 1_000))?.fence).toBe(2);
  });

  it('keeps leases per key', async () => {
    const { store } = clocks();
    expect(await store.acquire('a', 1_000)).toBeDefined();
    expect(await store.acquire('b', 1_000)).toBeDefined();
  });

  it('expires a lease by the monotonic clock', async () => {
    const { state, store } = clocks();
    const stale = await store.acquire('k', 1_000);

    state.monotonicMs += 999;
    expect(await store.acquire('k', 1_000)).toBeUndefined();
    state.monotonicMs += 1;
    const takeover = await store.acquire('k', 1_000);
    expect(takeover?.fence).toBe(2);

    // The stale holder's release leaves the new lease in place.
    await stale!.release();
    expect(await store.acquire('k', 1_000)).toBeUndefined();
  });

  it('ignores wall-clock jumps for leases', async () => {
    const { state, store } = clocks();
    await store.acquire('k', 1_000);
    state.wallMs += 3_600_000;
    expect(await store.acquire('k', 1_000)).toBeUndefined();
  });

  it('drops a write from an older lease', async () => {
    const { state, store } = clocks();
    const stale = await store.acquire('k', 1_000);
    state.monotonicMs += 1_000;
    const current = await store.acquire('k', 1_000);

    const newer = makeToken(start, start + 3_600, { n: 'newer' });
    const older = makeToken(start, start + 3_600, { n: 'older' });
    expect(await current!.write(newer, (start + 3_600) * 1000)).toBe(true);
    expect(await stale!.write(older, (start + 3_600) * 1000)).toBe(false);
    expect(await store.read('k')).toEqual(newer);
  });

  it('forgets a token at its expiry', async () => {
    const { state, store } = clocks();
    const lease = await store.acquire('k', 1_000);
    const token = makeToken(start, start + 60);
    await lease!.write(token, (start + 60) * 1000);

    state.wallMs += 59_999;
    expect(await store.read('k')).toEqual(token);
    state.wallMs += 1;
    expect(await store.read('k')).toBeUndefined();
  });

  it('stores a copy of the token', async () => {
    const { store } = clocks();
    const lease = await store.acquire('k', 1_000);
    const token = makeToken(start, start + 60);
    await lease!.write(token, (start + 60) * 1000);

    token.iat = 0;
    expect((await store.read('k'))!.iat).toBe(start);
  });
});
