// Signatures per second through the PKCS#11 adapter against a bare loop of the binding's own
// asynchronous sign calls (C_SignInit, then C_SignAsync) on the same SoftHSM2 key, at the same
// concurrency, in one process. Both hash the signing input with SHA-256 before each sign. The
// adapter's `sign` leaves out the verify-after-sign that `signJwt` adds, so that check is
// measured on its own line. Also reports how long the event loop stalls while signing under load
// (perf_hooks.monitorEventLoopDelay), and how long the synchronous set-up calls block. Besides
// wall-clock rates it reports process CPU time per signature (main thread and libuv workers
// together), which other load on a shared machine disturbs far less than the rates.
//
// Usage: node test/bench/pkcs11.bench.mjs
//   BENCH_PKCS11_SIGNS=2000 signs per round, BENCH_PKCS11_ROUNDS=9 rounds per side.
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, verify } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '..', '..', 'dist');
const modulePath = process.env.SOFTHSM2_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so';
const signsPerRound = Number(process.env.BENCH_PKCS11_SIGNS ?? 2000);
const rounds = Number(process.env.BENCH_PKCS11_ROUNDS ?? 9);
const concurrencies = [1, 4, 16];
const pin = 'bench-user-pin-2231';
const CKM_ECDSA = 0x1041;
const CKO_PRIVATE_KEY = 3;
const CKA_CLASS = 0;
const CKA_LABEL = 3;
const CKF_SERIAL_SESSION = 4;

/** Creates a throwaway token in a temporary folder with one imported P-256 key. */
function createToken() {
  const folder = mkdtempSync(join(tmpdir(), 'kms-jwt-bench-softhsm-'));
  mkdirSync(join(folder, 'tokens'), { mode: 0o700 });
  const config = join(folder, 'softhsm2.conf');
  writeFileSync(config, `directories.tokendir = ${join(folder, 'tokens')}\nlog.level = ERROR\n`);
  process.env.SOFTHSM2_CONF = config;

  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pemPath = join(folder, 'key.pem');
  writeFileSync(pemPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const run = (args) => execFileSync('softhsm2-util', args, { stdio: 'pipe' });
  run(['--init-token', '--free', '--label', 'bench', '--so-pin', '12345678', '--pin', pin]);
  run(['--import', pemPath, '--token', 'bench', '--label', 'siwa', '--id', '01', '--pin', pin]);
  rmSync(pemPath);
  return { folder, publicKey };
}

function inputFor(i) {
  return Buffer.from(`eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJCRU5DSCIsImp0aSI6${i}`);
}

/**
 * Runs `count` calls of `signOne` with `concurrency` workers. Returns signs per second and the
 * process CPU time per sign in microseconds.
 */
async function measure(count, concurrency, signOne) {
  let next = 0;
  const worker = async (slot) => {
    while (next < count) {
      const i = next;
      next += 1;
      await signOne(slot, i);
    }
  };
  const started = process.hrtime.bigint();
  const cpuBefore = process.cpuUsage();
  await Promise.all(Array.from({ length: concurrency }, (_, slot) => worker(slot)));
  const cpu = process.cpuUsage(cpuBefore);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { rate: count / seconds, cpuUs: (cpu.user + cpu.system) / count };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Creates the bare loop, with one session of its own per worker on the adapter's binding. */
function createBareLoop(binding, slot, concurrency) {
  const sessions = Array.from({ length: concurrency }, () =>
    binding.C_OpenSession(slot, CKF_SERIAL_SESSION),
  );
  binding.C_FindObjectsInit(sessions[0], [
    { type: CKA_CLASS, value: CKO_PRIVATE_KEY },
    { type: CKA_LABEL, value: 'siwa' },
  ]);
  const [key] = binding.C_FindObjects(sessions[0], 1);
  binding.C_FindObjectsFinal(sessions[0]);

  const signOne = async (worker, i) => {
    const session = sessions[worker];
    const digest = createHash('sha256').update(inputFor(i)).digest();
    binding.C_SignInit(session, { mechanism: CKM_ECDSA }, key);
    const signature = await binding.C_SignAsync(session, digest, Buffer.alloc(128));
    if (signature.length !== 64) throw new Error('bare loop: signature is not 64 bytes');
  };
  const close = () => sessions.forEach((session) => binding.C_CloseSession(session));
  return { signOne, close };
}

/** Measures event-loop delay while `run` executes, in milliseconds. */
async function withLoopDelay(run) {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  const result = await run();
  histogram.disable();
  const ms = (ns) => ns / 1e6;
  return {
    result,
    p50: ms(histogram.percentile(50)),
    p99: ms(histogram.percentile(99)),
    max: ms(histogram.max),
  };
}

function formatRate(value) {
  return Math.round(value).toLocaleString('en-US');
}

async function main() {
  if (!existsSync(modulePath)) {
    console.log(`Skipped: SoftHSM2 module ${modulePath} is missing (apt-get install softhsm2).`);
    return;
  }
  const token = createToken();
  const adapter = await import(pathToFileURL(join(dist, 'pkcs11.js')).href);
  const core = await import(pathToFileURL(join(dist, 'index.js')).href);
  const uri = `pkcs11:token=bench;object=siwa;id=%01?module-path=${modulePath}`;

  const setupStarted = process.hrtime.bigint();
  const probe = await adapter.createPkcs11Signer(uri, { pin, maxSessions: 1 });
  const setupMs = Number(process.hrtime.bigint() - setupStarted) / 1e6;
  const registry = globalThis[Symbol.for('kms-jwt-signer.pkcs11.modules.v1')];
  const entry = [...registry.modules.values()][0];
  const slot = [...entry.tokens.values()][0].slot;
  const binding = entry.binding;

  // Every signature from both sides is checked once, outside the timed rounds.
  const checkInput = inputFor('check');
  const checkSignature = await probe.sign(checkInput);
  const checkKey = { key: token.publicKey, dsaEncoding: 'ieee-p1363' };
  if (!verify('sha256', checkInput, checkKey, checkSignature)) throw new Error('bad signature');

  const rows = [];
  for (const concurrency of concurrencies) {
    const signer = await adapter.createPkcs11Signer(uri, { pin, maxSessions: concurrency });
    const bare = createBareLoop(binding, slot, concurrency);
    const adapterSign = (_worker, i) => signer.sign(inputFor(i));
    await measure(200, concurrency, adapterSign);
    await measure(200, concurrency, bare.signOne);

    const adapterRates = [];
    const bareRates = [];
    for (let round = 0; round < rounds; round += 1) {
      // Alternate which side goes first, so that drift on a busy machine hits both alike.
      const order = round % 2 === 0 ? ['adapter', 'bare'] : ['bare', 'adapter'];
      for (const side of order) {
        if (side === 'adapter')
          adapterRates.push(await measure(signsPerRound, concurrency, adapterSign));
        else bareRates.push(await measure(signsPerRound, concurrency, bare.signOne));
      }
    }
    const adapterDelay = await withLoopDelay(() =>
      measure(signsPerRound, concurrency, adapterSign),
    );
    const bareDelay = await withLoopDelay(() => measure(signsPerRound, concurrency, bare.signOne));
    rows.push({
      concurrency,
      adapter: median(adapterRates.map((run) => run.rate)),
      bare: median(bareRates.map((run) => run.rate)),
      adapterCpu: median(adapterRates.map((run) => run.cpuUs)),
      bareCpu: median(bareRates.map((run) => run.cpuUs)),
      adapterDelay,
      bareDelay,
    });
    bare.close();
    await signer.close();
  }

  // verify-after-sign: the core's isValidSignature, as signJwt runs it after every sign.
  const verifyCount = 4000;
  const verifyStarted = process.hrtime.bigint();
  for (let i = 0; i < verifyCount; i += 1) {
    if (!core.isValidSignature(token.publicKey, checkInput, checkSignature)) {
      throw new Error('verify-after-sign rejected a good signature');
    }
  }
  const verifyUs = Number(process.hrtime.bigint() - verifyStarted) / 1e3 / verifyCount;

  const jwtSigner = await adapter.createPkcs11Signer(uri, { pin, maxSessions: 4 });
  const parts = { header: { alg: 'ES256', kid: 'BENCHKEY01' }, payload: { iss: 'BENCH' } };
  await measure(200, 4, () => core.signJwt(jwtSigner, parts));
  const signJwtRate = (await measure(signsPerRound, 4, () => core.signJwt(jwtSigner, parts))).rate;
  await jwtSigner.close();

  // The synchronous C_SignInit that precedes each asynchronous C_Sign.
  const initSession = binding.C_OpenSession(slot, CKF_SERIAL_SESSION);
  binding.C_FindObjectsInit(initSession, [{ type: CKA_CLASS, value: CKO_PRIVATE_KEY }]);
  const [initKey] = binding.C_FindObjects(initSession, 1);
  binding.C_FindObjectsFinal(initSession);
  const digest = createHash('sha256').update(checkInput).digest();
  let signInitNs = 0n;
  for (let i = 0; i < 2000; i += 1) {
    const started = process.hrtime.bigint();
    binding.C_SignInit(initSession, { mechanism: CKM_ECDSA }, initKey);
    signInitNs += process.hrtime.bigint() - started;
    await binding.C_SignAsync(initSession, digest, Buffer.alloc(128));
  }
  binding.C_CloseSession(initSession);
  await probe.close();
  rmSync(token.folder, { recursive: true, force: true });

  console.log(`\nSoftHSM2 ${modulePath}, ${signsPerRound} signs per round, median of ${rounds}.\n`);
  console.log(
    '| concurrency | adapter sign/s | bare loop sign/s | ratio | adapter CPU µs/sign | ' +
      'bare CPU µs/sign | ratio by CPU |',
  );
  console.log('|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) {
    const ratio = (row.adapter / row.bare).toFixed(2);
    const cpuRatio = (row.bareCpu / row.adapterCpu).toFixed(2);
    console.log(
      `| ${row.concurrency} | ${formatRate(row.adapter)} | ${formatRate(row.bare)} | ${ratio}x | ` +
        `${row.adapterCpu.toFixed(1)} | ${row.bareCpu.toFixed(1)} | ${cpuRatio}x |`,
    );
  }
  console.log('\nEvent-loop delay while signing (ms, monitorEventLoopDelay at 1 ms resolution):\n');
  console.log('| concurrency | adapter p50 | adapter p99 | adapter max | bare p99 | bare max |');
  console.log('|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) {
    const a = row.adapterDelay;
    const b = row.bareDelay;
    const f = (value) => value.toFixed(2);
    console.log(
      `| ${row.concurrency} | ${f(a.p50)} | ${f(a.p99)} | ${f(a.max)} | ${f(b.p99)} | ${f(b.max)} |`,
    );
  }
  console.log('');
  console.log(
    `verify-after-sign (isValidSignature, left out above): ${verifyUs.toFixed(1)} µs per token`,
  );
  console.log(`signJwt with verify-after-sign, concurrency 4: ${formatRate(signJwtRate)} tokens/s`);
  const signInitUs = Number(signInitNs) / 1e3 / 2000;
  console.log(`synchronous C_SignInit before each C_SignAsync: ${signInitUs.toFixed(1)} µs mean`);
  console.log(
    `first createPkcs11Signer (load, C_Initialize, login, find; blocking): ${setupMs.toFixed(1)} ms`,
  );
}

await main();
