// Cached token-provider get() against a fresh local-key mint of the same Sign in with Apple client
// secret, in one process. The two run in alternating batches, so that machine noise hits both
// alike, and the table shows the median of the batches. The goal is a cached get() at least 100
// times faster than a mint.
//
// Usage: node test/bench/provider-get.bench.mjs   (BENCH_PROVIDER_ROUNDS=7 to change the rounds)
import { generateKeyPairSync, verify } from 'node:crypto';
import {
  appleTokenProfiles,
  createAppleClientSecret,
  createTokenProvider,
  tokenCacheKey,
} from '../../dist/index.js';
import { createPemSigner } from '../../dist/pem.js';

const rounds = Number(process.env.BENCH_PROVIDER_ROUNDS ?? 7);
const mintsPerBatch = 500;
const getsPerBatch = 200_000;
const teamId = 'BENCHTEAM1';
const clientId = 'com.example.bench';
const keyId = 'BENCHKEY01';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signer = await createPemSigner({ pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) });

async function mintSecret() {
  const secret = await createAppleClientSecret({ signer, teamId, clientId, keyId });
  return { token: secret.token, iat: secret.claims.iat, exp: secret.claims.exp };
}

const provider = createTokenProvider({
  cacheKey: tokenCacheKey('client-secret', teamId, keyId, clientId),
  policy: appleTokenProfiles['client-secret'].refreshPolicy,
  mint: mintSecret,
});

/** Checks once that both paths produce a token that node:crypto verifies with the public key. */
function assertVerifies(token) {
  const [header, payload, signature] = token.split('.');
  const valid = verify(
    'sha256',
    Buffer.from(`${header}.${payload}`),
    { key: publicKey, dsaEncoding: 'ieee-p1363' },
    Buffer.from(signature, 'base64url'),
  );
  if (!valid) throw new Error('a benchmarked token did not verify');
}

async function timeBatch(count, work) {
  const started = process.hrtime.bigint();
  for (let index = 0; index < count; index += 1) await work();
  const elapsedNs = Number(process.hrtime.bigint() - started);
  return elapsedNs / count;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

assertVerifies((await mintSecret()).token);
assertVerifies(await provider.get());
// Warm-up: let the JIT compile both paths before measuring.
await timeBatch(100, mintSecret);
await timeBatch(50_000, () => provider.get());

const mintNs = [];
const getNs = [];
for (let round = 0; round < rounds; round += 1) {
  globalThis.gc?.();
  mintNs.push(await timeBatch(mintsPerBatch, mintSecret));
  globalThis.gc?.();
  getNs.push(await timeBatch(getsPerBatch, () => provider.get()));
}
await provider.close();

const mint = median(mintNs);
const get = median(getNs);
const rows = [
  ['fresh local-key mint (createAppleClientSecret, PEM signer)', mint, mintsPerBatch],
  ['cached provider.get() (in-memory store)', get, getsPerBatch],
];
console.log(`Median of ${rounds} alternating batches, Node ${process.version}.\n`);
console.log('| Operation | Calls per batch | Time per call | Calls per second |');
console.log('|---|---:|---:|---:|');
for (const [name, ns, count] of rows) {
  const perCall = ns >= 1000 ? `${(ns / 1000).toFixed(1)} µs` : `${ns.toFixed(0)} ns`;
  console.log(`| ${name} | ${count} | ${perCall} | ${Math.round(1e9 / ns).toLocaleString('en')} |`);
}
const ratio = mint / get;
console.log(
  `\nCached get() is ${ratio.toFixed(0)}x faster than a fresh mint (goal: at least 100x).`,
);
if (ratio < 100) process.exitCode = 1;
