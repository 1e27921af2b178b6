// Cloud KMS signing cost of the adapter's checks. One process runs the emulator from
// test/emulators/gcp-kms on 127.0.0.1 and one real KeyManagementServiceClient, and measures side
// by side, in alternating order:
//
// - the adapter: signer.sign() from dist/gcp-kms.js with all its checks (SHA-256, CRC32C of the
//   digest, AsymmetricSign with digestCrc32c, the verifiedDigestCrc32c, name and
//   signatureCrc32c checks, strict DER conversion) on the same client;
// - bare: SHA-256 and client.asymmetricSign({ name, digest }) with none of those checks;
// - signJwt: a whole token through the adapter, including the core's verify-after-sign.
//
// The goal is a median latency ratio adapter / bare of at most 1.05, with the first call of each
// excluded. A second table gives the CRC32C cost per signature.
//
// Usage: node test/bench/gcp-kms.bench.mjs   (BENCH_GCP_ROUNDS=400 to change the rounds)
import { KeyManagementServiceClient } from '@google-cloud/kms';
import { crc32c as awsCrc32c } from '@aws-crypto/crc32c';
import { grpc } from 'google-gax';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { crc32 } from 'node:zlib';
import { build } from 'tsup';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const rounds = Number(process.env.BENCH_GCP_ROUNDS ?? 400);
const crcIterations = 200_000;
const keyRing = 'projects/bench/locations/global/keyRings/apple';

/** Bundles the TypeScript emulator into a temporary ES module, with packages left external. */
async function loadEmulator(folder) {
  await build({
    config: false,
    entry: { emulator: join(root, 'test/emulators/gcp-kms/index.ts') },
    format: ['esm'],
    outDir: folder,
    platform: 'node',
    target: 'node20',
    skipNodeModulesBundle: true,
    silent: true,
  });
  return import(pathToFileURL(join(folder, 'emulator.js')).href);
}

function percentile(sorted, fraction) {
  const index = Math.min(sorted.length - 1, Math.floor(fraction * sorted.length));
  return sorted[index];
}

function summarize(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = samples.reduce((sum, value) => sum + value, 0) / samples.length;
  return {
    median: percentile(sorted, 0.5),
    p10: percentile(sorted, 0.1),
    p90: percentile(sorted, 0.9),
    mean,
  };
}

async function timeOnce(run) {
  const started = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

function signingInput(index) {
  const header = Buffer.from('{"alg":"ES256","kid":"KEYBBBB222"}').toString('base64url');
  const claims = Buffer.from(`{"iss":"TEAMAAAA11","jti":"${index}"}`).toString('base64url');
  return Buffer.from(`${header}.${claims}`);
}

async function measureLatency(approaches) {
  const firstCalls = {};
  for (const approach of approaches) firstCalls[approach.name] = await timeOnce(approach.run);

  const samples = Object.fromEntries(approaches.map((approach) => [approach.name, []]));
  for (let round = 0; round < rounds; round++) {
    // Rotate the order every round so that machine noise hits every approach alike.
    for (let offset = 0; offset < approaches.length; offset++) {
      const approach = approaches[(round + offset) % approaches.length];
      samples[approach.name].push(await timeOnce(() => approach.run(round)));
    }
  }
  return { firstCalls, samples };
}

function printLatency({ firstCalls, samples }, baseline) {
  const base = summarize(samples[baseline]).median;
  console.log(
    '| approach | median ms | p10 ms | p90 ms | mean ms | first call ms | median / bare |',
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const [name, values] of Object.entries(samples)) {
    const stats = summarize(values);
    const cells = [
      name,
      stats.median.toFixed(3),
      stats.p10.toFixed(3),
      stats.p90.toFixed(3),
      stats.mean.toFixed(3),
      firstCalls[name].toFixed(1),
      (stats.median / base).toFixed(3),
    ];
    console.log(`| ${cells.join(' | ')} |`);
  }
  console.log(
    `\n${rounds} rounds per approach, first call excluded (it follows one warm-up signature ` +
      'by the emulator); lower is better.',
  );
}

/** Builds a CRC32C function on a 256-entry table, written here only as a yardstick. */
function tableCrc32c() {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return (data) => {
    let crc = 0xffffffff;
    for (const byte of data) crc = table[(crc ^ byte) & 0xff] ^ (crc >>> 8);
    return (crc ^ 0xffffffff) >>> 0;
  };
}

function nanosecondsPerCall(fn, data) {
  let sink = 0;
  for (let i = 0; i < 10_000; i++) sink ^= fn(data); // warm-up
  const started = process.hrtime.bigint();
  for (let i = 0; i < crcIterations; i++) sink ^= fn(data);
  const elapsed = Number(process.hrtime.bigint() - started);
  if (sink === 0.5) console.log('unreachable');
  return elapsed / crcIterations;
}

function printCrcCost(signatureLength, medianSignMs) {
  const digest = createHash('sha256').update('bench').digest();
  const signature = Buffer.alloc(signatureLength, 0x5a);
  const table = tableCrc32c();
  if (table(Buffer.from('123456789')) !== 0xe3069283) throw new Error('table CRC32C is wrong');
  const rows = [
    ['@aws-crypto/crc32c (used)', awsCrc32c],
    ['256-entry table (yardstick)', table],
    ['node:zlib crc32, CRC-32/IEEE (not usable, for scale)', crc32],
  ];

  console.log(
    '\n| CRC implementation | ns per 32-byte digest | ns per signature | ns per sign call |',
  );
  console.log('|---|---|---|---|');
  let usedPerSign = 0;
  for (const [name, fn] of rows) {
    const digestNs = nanosecondsPerCall(fn, digest);
    const signatureNs = nanosecondsPerCall(fn, signature);
    if (fn === awsCrc32c) usedPerSign = digestNs + signatureNs;
    const cells = [
      name,
      digestNs.toFixed(0),
      signatureNs.toFixed(0),
      (digestNs + signatureNs).toFixed(0),
    ];
    console.log(`| ${cells.join(' | ')} |`);
  }
  const share = (usedPerSign / 1e6 / medianSignMs) * 100;
  console.log(
    `\nEach sign call computes two CRC32Cs (the digest and the ${signatureLength}-byte ` +
      `signature): ${usedPerSign.toFixed(0)} ns with the package, ${share.toFixed(3)} % of the ` +
      'median adapter latency above.',
  );
}

async function main() {
  process.env.METADATA_SERVER_DETECTION = 'none';
  // Inside the repository (.tmp is git-ignored), so that the bundle resolves node_modules.
  mkdirSync(join(root, '.tmp'), { recursive: true });
  const folder = mkdtempSync(join(root, '.tmp', 'bench-gcp-'));
  const { GcpKmsEmulator } = await loadEmulator(folder);
  const { createGcpKmsSigner } = await import(pathToFileURL(join(root, 'dist/gcp-kms.js')).href);
  const { signJwt } = await import(pathToFileURL(join(root, 'dist/index.js')).href);

  const kms = await new GcpKmsEmulator().start();
  const client = new KeyManagementServiceClient({
    apiEndpoint: kms.host,
    port: kms.port,
    sslCreds: grpc.credentials.createInsecure(),
    universeDomain: 'googleapis.com',
  });
  try {
    const key = kms.createKey({ keyRing, cryptoKeyId: 'bench' });
    const name = key.versionName;
    const signer = await createGcpKmsSigner(name, { client });
    const parts = {
      header: { alg: 'ES256', kid: 'KEYBBBB222' },
      payload: { iss: 'TEAMAAAA11', aud: 'https://appleid.apple.com', sub: 'com.example.web' },
    };

    const approaches = [
      { name: 'adapter sign (all checks)', run: (i = 0) => signer.sign(signingInput(i)) },
      {
        name: 'bare asymmetricSign',
        run: (i = 0) => {
          const digest = createHash('sha256').update(signingInput(i)).digest();
          return client.asymmetricSign({ name, digest: { sha256: digest } });
        },
      },
      { name: 'signJwt (adds verify-after-sign)', run: () => signJwt(signer, parts) },
    ];
    // One unrecorded signature first: the emulator's curve library builds its tables on first
    // use, which would otherwise land in the first call of whichever approach runs first.
    await client.asymmetricSign({ name, digest: { sha256: Buffer.alloc(32, 1) } });
    const latency = await measureLatency(approaches);
    const [bareResponse] = await client.asymmetricSign({
      name,
      digest: { sha256: createHash('sha256').update('x').digest() },
    });

    const nodeVersion = process.version;
    const model = cpus()[0]?.model ?? 'unknown';
    console.log(`Node ${nodeVersion}, ${cpus().length} CPUs (${model}), emulator in-process.\n`);
    printLatency(latency, 'bare asymmetricSign');
    const ratio =
      summarize(latency.samples['adapter sign (all checks)']).median /
      summarize(latency.samples['bare asymmetricSign']).median;
    console.log(`Goal: adapter / bare median at most 1.05. Measured: ${ratio.toFixed(3)}.`);

    const medianSignMs = summarize(latency.samples['adapter sign (all checks)']).median;
    printCrcCost(bareResponse.signature.length, medianSignMs);
    await signer.close();
  } finally {
    await client.close();
    await kms.stop();
    rmSync(folder, { recursive: true, force: true });
  }
}

await main();
