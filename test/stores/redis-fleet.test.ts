// A fleet of real child processes sharing one redis-server on 127.0.0.1: one mint on a cold
// start, a takeover when the lease holder dies mid-refresh, and local service when Redis stops.
// The workers run the built package (dist/), minting APNs tokens with a throwaway key.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describeWithRedis } from './redis-support.js';
import { startRedisServer, type RedisServer } from './redis-server.mjs';
import { startFleet, type FleetMessage, type FleetWorker } from './fleet.mjs';

// The APNs profile refreshes at 2700 s of age, and the token is already 30 s old when minted.
const pastRefreshPoint = 2_700;
// Past the APNs profile's usable end: 3300 s of age minus the 60 s margin.
const pastUsableEnd = 3_300;

let server: RedisServer;
let folder: string;
let workers: FleetWorker[] = [];
let testNumber = 0;

function fleetConfig(extra: { hangFile?: string; url?: string } = {}) {
  testNumber += 1;
  return {
    url: server.url,
    namespace: `fleet${testNumber}`,
    cacheKey: 'apns:DEF123GHIJ:ABC123DEFG',
    lockTtlMs: 1_500,
    pollIntervalMs: 25,
    fixedJitter: 0,
    ...extra,
  };
}

async function getAll(fleet: FleetWorker[]): Promise<FleetMessage[]> {
  return Promise.all(fleet.map((worker) => worker.send({ cmd: 'get' })));
}

function mintStarts(fleet: FleetWorker[]): number {
  return fleet.reduce((sum, worker) => sum + worker.count('mint-start'), 0);
}

describeWithRedis('redis fleet of processes', () => {
  beforeAll(async () => {
    server = await startRedisServer();
    folder = mkdtempSync(join(tmpdir(), 'kms-jwt-fleet-'));
  });

  afterEach(async () => {
    await Promise.all(workers.map((worker) => worker.close()));
    workers = [];
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  it('mints once on a cold start of four processes', async () => {
    // A slow mint makes all four get() calls overlap it.
    workers = await startFleet(4, { ...fleetConfig(), mintDelayMs: 300 });

    const replies = await getAll(workers);
    const tokens = new Set(replies.map((reply) => reply.token));
    expect(replies.every((reply) => reply.error === undefined)).toBe(true);
    expect(tokens.size).toBe(1);
    expect(mintStarts(workers)).toBe(1);

    // A second round is served from each process's cache.
    const again = await getAll(workers);
    expect(new Set(again.map((reply) => reply.token))).toEqual(tokens);
    expect(mintStarts(workers)).toBe(1);
  }, 60_000);

  it('completes a refresh when the lease holder dies', async () => {
    const hangFile = join(folder, 'hang-mints');
    workers = await startFleet(3, fleetConfig({ hangFile }));
    const [first] = await getAll(workers);
    expect(mintStarts(workers)).toBe(1);

    writeFileSync(hangFile, '');
    await Promise.all(
      workers.map((worker) => worker.send({ cmd: 'advance', seconds: pastRefreshPoint })),
    );
    const during = await getAll(workers);
    // The due token is still usable, so every process keeps serving it while one refreshes.
    expect(during.map((reply) => reply.token)).toEqual(workers.map(() => first!.token));

    const holderStart = await Promise.any(
      workers.map((worker) =>
        worker.waitFor((m) => m.type === 'mint-start' && m.worker === worker.name),
      ),
    );
    const startsBefore = mintStarts(workers);
    const holder = workers.find((worker) => worker.name === holderStart.worker)!;
    await holder.kill();
    rmSync(hangFile);

    const survivors = workers.filter((worker) => worker !== holder);
    const doneBefore = survivors.reduce((sum, worker) => sum + worker.count('mint-done'), 0);
    // Each survivor installs the new token: one mints it, the other adopts it from Redis.
    await Promise.all(
      survivors.map((worker) =>
        worker.waitFor((m) => m.type === 'event' && m.event!.type === 'refresh'),
      ),
    );
    const after = await getAll(survivors);

    const tokens = new Set(after.map((reply) => reply.token));
    expect(tokens.size).toBe(1);
    expect(tokens.has(first!.token)).toBe(false);
    expect(mintStarts(survivors) + holder.count('mint-start')).toBe(startsBefore + 1);
    expect(survivors.reduce((sum, worker) => sum + worker.count('mint-done'), 0)).toBe(
      doneBefore + 1,
    );
  }, 60_000);

  it('keeps serving when Redis stops', async () => {
    const own = await startRedisServer();
    try {
      workers = await startFleet(3, fleetConfig({ url: own.url }));
      const [first] = await getAll(workers);
      await own.stop();

      // A valid token is served from each process's cache without Redis.
      const cached = await getAll(workers);
      expect(cached.map((reply) => reply.token)).toEqual(workers.map(() => first!.token));

      // Past the usable end each process mints by itself and reports the fallback.
      await Promise.all(
        workers.map((worker) => worker.send({ cmd: 'advance', seconds: pastUsableEnd })),
      );
      const fresh = await getAll(workers);
      for (const reply of fresh) {
        expect(reply.error).toBeUndefined();
        expect(reply.token).not.toBe(first!.token);
      }
      for (const worker of workers) {
        expect(worker.isAlive()).toBe(true);
        expect(worker.count('mint-done')).toBeGreaterThanOrEqual(1);
        expect(worker.events('store-fallback').length).toBeGreaterThanOrEqual(1);
      }
      expect(mintStarts(workers)).toBe(1 + workers.length);
    } finally {
      await own.stop();
    }
  }, 60_000);
});
