// Throughput of minting an Apple client secret with the local signer (`createAppleClientSecret`
// over `createPemSigner`) against jose's `SignJWT`, both signing the same claims with the same
// P-256 key. `SignJWT` gets the KeyObject itself, and the local signer gets that KeyObject's
// PKCS#8 export, so both sign with the same key. The floor is a bare `crypto.sign` of the same
// signing input, which is the ECDSA work every candidate must do. One row per Apple token kind
// then shows that every kind costs the same as the client secret.
//
// The candidates run in the same process in rotating order, one time slice each per round, so
// that machine noise hits all of them alike. Each is measured one mint at a time and 16 at a
// time. The median of the per-slice rates is reported, with the median CPU time per mint, which
// varies less than wall-clock time on a busy machine.
//
// Usage: node test/bench/mint.bench.mjs
//   BENCH_MINT_ROUNDS=15   rounds (default 15)
//   BENCH_MINT_SLICE_MS=200   length of one time slice in milliseconds (default 200)
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '..', '..', 'dist');
const rounds = Number(process.env.BENCH_MINT_ROUNDS ?? 15);
const sliceMs = Number(process.env.BENCH_MINT_SLICE_MS ?? 200);
const warmupRounds = 2;
// Mints in flight at once in the concurrent run. jose signs through WebCrypto, which runs on
// libuv's thread pool, so concurrency lets it use a second core. The local signer signs on the
// main thread.
const batchSize = 16;

const teamId = 'BENCHTEAM1';
const keyId = 'BENCHKEY01';
const clientId = 'com.example.bench';
const issuerId = '57246542-96fe-1a63-e053-0824d011072a';
// A fixed clock, so that every candidate signs the same claims in every round.
const nowMs = 1_767_225_600_000;
const iat = nowMs / 1000 - 30;
const exp = nowMs / 1000 + 180 * 86_400;

const kindOptions = {
  'client-secret': { teamId, clientId },
  'app-store-connect': { issuerId },
  'app-store-server': { issuerId, bundleId: 'com.example.app' },
  apns: { teamId },
  musickit: { teamId },
  weatherkit: { teamId, serviceId: 'com.example.weather' },
  mapkit: { teamId },
  devicecheck: { teamId },
  'business-manager': {
    clientId: 'BUSINESSAPI.0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f',
    keyId: 'd136aa66-0c3b-4bd4-9892-c20e8db024ab',
    jti: 'bench-jti',
  },
};

async function loadPackage() {
  if (!existsSync(join(dist, 'index.js'))) {
    throw new Error('dist/index.js is missing: run `npm run build` first.');
  }
  const library = await import(join(dist, 'index.js'));
  const { createPemSigner } = await import(join(dist, 'pem.js'));
  return { library, createPemSigner };
}

async function buildCandidates(library, signer, privateKey) {
  const header = { alg: 'ES256', kid: keyId };
  const claims = { iss: teamId, iat, exp, aud: 'https://appleid.apple.com', sub: clientId };
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = Buffer.from(`${encode(header)}.${encode(claims)}`);
  const now = () => nowMs;

  const ours = async () =>
    (await library.createAppleClientSecret({ signer, teamId, clientId, keyId, now })).token;
  const jose = () =>
    new SignJWT({ aud: claims.aud, sub: clientId })
      .setProtectedHeader(header)
      .setIssuer(teamId)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(privateKey);
  const floor = async () =>
    sign('sha256', signingInput, { key: privateKey, dsaEncoding: 'ieee-p1363' });

  const kinds = Object.entries(kindOptions).map(([kind, options]) => ({
    name: `createAppleToken('${kind}')`,
    kind,
    run: async () =>
      (await library.createAppleToken(kind, { signer, keyId, now, ...options })).token,
  }));
  return {
    main: [
      { name: 'kms-jwt-signer createAppleClientSecret', run: ours, token: true },
      { name: 'jose SignJWT', run: jose, token: true },
      { name: 'crypto.sign alone (floor)', run: floor, token: false },
    ],
    kinds,
    expected: { header, claims },
  };
}

/** Checks that our token and jose's carry the same header and claims, and both verify. */
async function assertSameTokens(candidates, publicKey) {
  for (const candidate of [...candidates.main.filter((c) => c.token), ...candidates.kinds]) {
    const token = await candidate.run();
    const [headerText, claimsText, signature] = token.split('.');
    const valid = verify(
      'sha256',
      Buffer.from(`${headerText}.${claimsText}`),
      { key: publicKey, dsaEncoding: 'ieee-p1363' },
      Buffer.from(signature, 'base64url'),
    );
    if (!valid) throw new Error(`${candidate.name} produced a token that does not verify`);
    if (candidate.kind !== undefined) continue;

    const decode = (text) => JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    const same =
      JSON.stringify(sortKeys(decode(headerText))) ===
        JSON.stringify(sortKeys(candidates.expected.header)) &&
      JSON.stringify(sortKeys(decode(claimsText))) ===
        JSON.stringify(sortKeys(candidates.expected.claims));
    if (!same) throw new Error(`${candidate.name} signed other claims than the comparison uses`);
  }
}

function sortKeys(object) {
  return Object.fromEntries(Object.entries(object).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * Runs `run` for one time slice, `concurrency` calls at a time, and returns operations per
 * second of wall-clock time and the process CPU time per operation in microseconds. The CPU time
 * includes libuv's thread pool, where WebCrypto (and so jose) signs.
 */
async function slice(run, concurrency) {
  let operations = 0;
  const cpuBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(sliceMs) * 1_000_000n;
  let now = started;
  while (now < deadline) {
    const batch = [];
    for (let i = 0; i < concurrency; i++) batch.push(run());
    await Promise.all(batch);
    operations += concurrency;
    now = process.hrtime.bigint();
  }
  const cpu = process.cpuUsage(cpuBefore);
  return {
    rate: operations / (Number(now - started) / 1e9),
    cpuMicros: (cpu.user + cpu.system) / operations,
  };
}

/** Measures every candidate in rotating order and returns the median rate and CPU time of each. */
async function measure(candidates, concurrency) {
  const samples = candidates.map(() => ({ rates: [], cpu: [] }));
  for (let round = 0; round < warmupRounds + rounds; round++) {
    for (let offset = 0; offset < candidates.length; offset++) {
      const index = (round + offset) % candidates.length;
      globalThis.gc?.();
      const result = await slice(candidates[index].run, concurrency);
      if (round < warmupRounds) continue;
      samples[index].rates.push(result.rate);
      samples[index].cpu.push(result.cpuMicros);
    }
  }
  return samples.map((sample) => ({ rate: median(sample.rates), cpuMicros: median(sample.cpu) }));
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const formatRate = (rate) => Math.round(rate).toLocaleString('en-US');

function printMainTable(candidates, results, concurrency) {
  const [ours, jose, floor] = results;
  console.log(
    `\n### ${concurrency === 1 ? 'One mint at a time' : `${concurrency} mints at a time`}\n`,
  );
  console.log('| candidate | ops/s | vs jose | vs floor | CPU µs per mint | CPU vs jose |');
  console.log('|---|---|---|---|---|---|');
  candidates.forEach((candidate, index) => {
    const { rate, cpuMicros } = results[index];
    const cells = [
      candidate.name,
      formatRate(rate),
      `${(rate / jose.rate).toFixed(2)}x`,
      `${((rate / floor.rate) * 100).toFixed(0)} %`,
      cpuMicros.toFixed(1),
      `${(cpuMicros / jose.cpuMicros).toFixed(2)}x`,
    ];
    console.log(`| ${cells.join(' | ')} |`);
  });
  const goal = ours.rate >= jose.rate ? 'met' : 'MISSED';
  console.log(
    `\nGoal >= 1.00x jose's throughput: ${goal} (${(ours.rate / jose.rate).toFixed(2)}x).`,
  );
}

function printKindTable(candidates, results, concurrency) {
  const base = results[0];
  console.log(`\n### One row per kind, ${concurrency} mints at a time\n`);
  console.log('| kind | ops/s | vs client-secret | CPU µs per mint |');
  console.log('|---|---|---|---|');
  candidates.forEach((candidate, index) => {
    const { rate, cpuMicros } = results[index];
    const cells = [
      candidate.kind,
      formatRate(rate),
      `${(rate / base.rate).toFixed(2)}x`,
      cpuMicros.toFixed(1),
    ];
    console.log(`| ${cells.join(' | ')} |`);
  });
}

async function main() {
  const { library, createPemSigner } = await loadPackage();
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  const signer = await createPemSigner({ pem });

  const candidates = await buildCandidates(library, signer, privateKey);
  await assertSameTokens(candidates, publicKey);

  for (const concurrency of [1, batchSize]) {
    printMainTable(candidates.main, await measure(candidates.main, concurrency), concurrency);
  }
  printKindTable(candidates.kinds, await measure(candidates.kinds, 1), 1);
  console.log(
    `\n${rounds} rounds of ${sliceMs} ms slices after ${warmupRounds} warm-up rounds; ` +
      `Node ${process.version}. Higher ops/s and lower CPU time are better.`,
  );
}

await main();
