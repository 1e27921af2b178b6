// Mints per refresh across 20 processes that share one redis-server, side by side with the same
// 20 processes each on its own in-memory store. Every process runs the built package and mints
// real APNs tokens with a throwaway key. The processes' clocks are moved ahead together past the
// refresh point, so that all 20 are due at once, which is the hardest case for the lease. The
// goal is one mint per refresh with Redis.
//
// Usage: node test/bench/provider-fleet.bench.mjs   (BENCH_FLEET_SIZE, BENCH_FLEET_REFRESHES)
import { findRedisServerProblem, startRedisServer } from '../stores/redis-server.mjs';
import { createThrowawayKeyPem, startFleet } from '../stores/fleet.mjs';

const fleetSize = Number(process.env.BENCH_FLEET_SIZE ?? 20);
const refreshes = Number(process.env.BENCH_FLEET_REFRESHES ?? 5);
// Past the APNs refresh point (2700 s of age) plus the largest jitter (54 s), and before the
// usable end (3240 s), so that every process refreshes in the background.
const advanceSeconds = 2_760;

function mintCount(workers) {
  return workers.reduce((sum, worker) => sum + worker.count('mint-start'), 0);
}

function refreshCount(worker) {
  return worker.events('refresh').length;
}

/** Runs a cold start and `refreshes` refresh rounds, returning the mints of each. */
async function measure(config, keyPem) {
  const workers = await startFleet(fleetSize, config, keyPem);
  try {
    const counts = [];
    await Promise.all(workers.map((worker) => worker.send({ cmd: 'get' })));
    counts.push(mintCount(workers));

    for (let round = 1; round <= refreshes; round += 1) {
      const before = mintCount(workers);
      await Promise.all(
        workers.map((worker) => worker.send({ cmd: 'advance', seconds: advanceSeconds })),
      );
      await Promise.all(workers.map((worker) => worker.send({ cmd: 'get' })));
      await Promise.all(
        workers.map((worker) => worker.waitFor(() => refreshCount(worker) >= round, 30_000)),
      );
      counts.push(mintCount(workers) - before);
    }
    return counts;
  } finally {
    await Promise.all(workers.map((worker) => worker.close()));
  }
}

const problem = findRedisServerProblem();
if (problem !== undefined) {
  console.log(`Skipped: ${problem}. Install it with apt-get install redis-server.`);
  process.exit(process.env.CI === 'true' ? 1 : 0);
}

const server = await startRedisServer();
try {
  const keyPem = createThrowawayKeyPem();
  const shared = await measure(
    { url: server.url, namespace: 'bench', cacheKey: 'apns:TEAM:KEY', pollIntervalMs: 50 },
    keyPem,
  );
  const unshared = await measure({ namespace: 'bench', cacheKey: 'apns:TEAM:KEY' }, keyPem);

  const labels = ['cold start', ...Array.from({ length: refreshes }, (_, i) => `refresh ${i + 1}`)];
  console.log(`${fleetSize} processes, Node ${process.version}, redis-server on 127.0.0.1.\n`);
  console.log('| Round | Mints, shared Redis store | Mints, one in-memory store per process |');
  console.log('|---|---:|---:|');
  labels.forEach((label, index) => {
    console.log(`| ${label} | ${shared[index]} | ${unshared[index]} |`);
  });
  const worst = Math.max(...shared);
  console.log(`\nWorst round with Redis: ${worst} mint(s) for ${fleetSize} processes (goal: 1).`);
  if (worst !== 1) process.exitCode = 1;
} finally {
  await server.stop();
}
