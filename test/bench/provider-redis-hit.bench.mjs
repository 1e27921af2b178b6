// The latency that the Redis store adds to a cache hit, against the in-memory store, in one
// process with redis-server on 127.0.0.1:
// - a warm get(): the process has a usable token, which both stores serve from memory.
// - a cold get() served by the store: a new provider whose store already contains a token minted by
//   another process, as in a process that starts after the fleet minted. It reads the store once
//   and adopts the token without minting.
// The two stores run in alternating batches, and the table shows percentiles over all calls.
//
// Usage: node test/bench/provider-redis-hit.bench.mjs   (BENCH_REDIS_HIT_ROUNDS=5)
import { generateKeyPairSync } from 'node:crypto';
import {
  appleTokenProfiles,
  createApnsToken,
  createMemoryStore,
  createTokenProvider,
} from '../../dist/index.js';
import { createPemSigner } from '../../dist/pem.js';
import { createRedisStore } from '../../dist/redis-store.js';
import { findRedisServerProblem, startRedisServer } from '../stores/redis-server.mjs';

const rounds = Number(process.env.BENCH_REDIS_HIT_ROUNDS ?? 5);
const warmCallsPerBatch = 100_000;
const coldCallsPerBatch = 1_000;
const cacheKey = 'apns:BENCHTEAM1:BENCHKEY01';
const policy = appleTokenProfiles.apns.refreshPolicy;

const problem = findRedisServerProblem();
if (problem !== undefined) {
  console.log(`Skipped: ${problem}. Install it with apt-get install redis-server.`);
  process.exit(process.env.CI === 'true' ? 1 : 0);
}

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signer = await createPemSigner({ pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) });
let mints = 0;
async function mint() {
  mints += 1;
  const apns = await createApnsToken({ signer, teamId: 'BENCHTEAM1', keyId: 'BENCHKEY01' });
  return { token: apns.token, iat: apns.claims.iat, exp: undefined };
}

function percentile(sorted, fraction) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))];
}

/** Times each call of `work` in nanoseconds. */
async function timeCalls(count, work, samples) {
  for (let index = 0; index < count; index += 1) {
    const started = process.hrtime.bigint();
    await work();
    samples.push(Number(process.hrtime.bigint() - started));
  }
}

const server = await startRedisServer();
const stores = { memory: createMemoryStore(), redis: createRedisStore({ url: server.url }) };
const warm = { memory: [], redis: [] };
const cold = { memory: [], redis: [] };
try {
  const providers = {};
  for (const [name, store] of Object.entries(stores)) {
    providers[name] = createTokenProvider({ store, cacheKey, policy, mint });
    await providers[name].get();
  }
  const mintsBefore = mints;

  const coldGet = async (store) => {
    const provider = createTokenProvider({ store, cacheKey, policy, mint });
    await provider.get();
    await provider.close();
  };
  for (const name of Object.keys(stores)) {
    await timeCalls(20_000, () => providers[name].get(), []);
    await timeCalls(200, () => coldGet(stores[name]), []);
  }

  for (let round = 0; round < rounds; round += 1) {
    for (const name of Object.keys(stores)) {
      globalThis.gc?.();
      await timeCalls(warmCallsPerBatch, () => providers[name].get(), warm[name]);
      await timeCalls(coldCallsPerBatch, () => coldGet(stores[name]), cold[name]);
    }
  }
  for (const provider of Object.values(providers)) await provider.close();
  if (mints !== mintsBefore) throw new Error('a measured get() minted instead of hitting a cache');
} finally {
  await stores.redis.close();
  await server.stop();
}

const format = (ns) => (ns >= 1000 ? `${(ns / 1000).toFixed(1)} µs` : `${ns.toFixed(0)} ns`);
console.log(`${rounds} alternating rounds, Node ${process.version}, redis-server on 127.0.0.1.\n`);
console.log('| Cache hit | Store | Calls | p50 | p99 | Extra p50 over memory |');
console.log('|---|---|---:|---:|---:|---:|');
for (const [label, samples] of [
  ['warm get() (token in this process)', warm],
  ['cold get() served by the store', cold],
]) {
  const memory = [...samples.memory].sort((a, b) => a - b);
  const redis = [...samples.redis].sort((a, b) => a - b);
  const extra = percentile(redis, 0.5) - percentile(memory, 0.5);
  for (const [name, sorted] of [
    ['memory', memory],
    ['redis', redis],
  ]) {
    const extraText = name === 'redis' ? format(extra) : '';
    console.log(
      `| ${label} | ${name} | ${sorted.length} | ${format(percentile(sorted, 0.5))} | ` +
        `${format(percentile(sorted, 0.99))} | ${extraText} |`,
    );
  }
}
