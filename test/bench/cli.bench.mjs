// Whole-process time of `kms-jwt client-secret` against a PyJWT script doing the same work
// (read the .p8, sign the same claims with ES256, print the token) under Debian's
// /usr/bin/python3, with a bare `node -e 0` as the floor of any Node CLI. The three commands run
// side by side in every round, in a rotating order, so that machine noise hits all of them alike.
// Also reports the CLI's peak RSS, measured by /usr/bin/time.
//
// Usage: node test/bench/cli.bench.mjs   (BENCH_CLI_ROUNDS=60 to change the number of rounds)
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, verify } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '..', '..', 'dist', 'cli.cjs');
const python = '/usr/bin/python3';
const pyjwtScript = join(here, 'pyjwt_client_secret.py');
const rounds = Number(process.env.BENCH_CLI_ROUNDS ?? 40);
const warmupRounds = 3;
const teamId = 'BENCHTEAM1';
const clientId = 'com.example.bench';
const keyId = 'BENCHKEY01';

function createKey(folder) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const path = join(folder, `AuthKey_${keyId}.p8`);
  writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return { path, publicKey };
}

function commandsFor(keyPath) {
  return [
    { name: 'node -e 0 (floor)', file: process.execPath, args: ['-e', '0'], token: false },
    {
      name: 'kms-jwt client-secret',
      file: process.execPath,
      args: [cli, 'client-secret', '--team-id', teamId, '--client-id', clientId, '--key', keyPath],
      token: true,
    },
    {
      name: 'PyJWT (/usr/bin/python3)',
      file: python,
      args: [pyjwtScript, keyPath, teamId, clientId, keyId],
      token: true,
    },
  ];
}

function runOnce(command) {
  const started = process.hrtime.bigint();
  const result = spawnSync(command.file, command.args, { encoding: 'utf8' });
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) {
    throw new Error(`${command.name} exited with ${result.status}: ${result.stderr.trim()}`);
  }
  return { elapsedMs, stdout: result.stdout.trim() };
}

/** Checks once that each token-producing command printed a valid ES256 token for the key. */
function assertTokens(commands, publicKey) {
  for (const command of commands.filter((c) => c.token)) {
    const token = runOnce(command).stdout;
    const [header, payload, signature] = token.split('.');
    const valid = verify(
      'sha256',
      Buffer.from(`${header}.${payload}`),
      { key: publicKey, dsaEncoding: 'ieee-p1363' },
      Buffer.from(signature, 'base64url'),
    );
    if (!valid) throw new Error(`${command.name} printed a token that does not verify`);
  }
}

function percentile(sorted, fraction) {
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
}

function measure(commands) {
  const samples = commands.map(() => []);
  for (let round = 0; round < warmupRounds + rounds; round++) {
    for (let offset = 0; offset < commands.length; offset++) {
      const index = (round + offset) % commands.length;
      const { elapsedMs } = runOnce(commands[index]);
      if (round >= warmupRounds) samples[index].push(elapsedMs);
    }
  }
  return samples.map((list) => list.sort((a, b) => a - b));
}

/** Peak RSS in MiB from GNU time's %M (KiB), the median of a few runs. */
function peakRssMiB(command) {
  if (!existsSync('/usr/bin/time')) return undefined;
  const values = [];
  for (let i = 0; i < 5; i++) {
    const result = spawnSync('/usr/bin/time', ['-f', '%M', command.file, ...command.args], {
      encoding: 'utf8',
    });
    const kib = Number(result.stderr.trim().split('\n').pop());
    if (result.status === 0 && Number.isFinite(kib)) values.push(kib / 1024);
  }
  return values.length === 0 ? undefined : values.sort((a, b) => a - b)[values.length >> 1];
}

function printTable(commands, samples) {
  const pyjwtMedian = percentile(samples[2], 0.5);
  console.log(`| command | median ms | p10 ms | p90 ms | vs PyJWT | peak RSS MiB |`);
  console.log('|---|---|---|---|---|---|');
  commands.forEach((command, index) => {
    const sorted = samples[index];
    const median = percentile(sorted, 0.5);
    const rss = peakRssMiB(command);
    const cells = [
      command.name,
      median.toFixed(1),
      percentile(sorted, 0.1).toFixed(1),
      percentile(sorted, 0.9).toFixed(1),
      `${(median / pyjwtMedian).toFixed(2)}x`,
      rss === undefined ? 'n/a' : rss.toFixed(1),
    ];
    console.log(`| ${cells.join(' | ')} |`);
  });
  console.log(`\n${rounds} rounds after ${warmupRounds} warm-up rounds; lower is better.`);
}

function main() {
  if (!existsSync(cli)) throw new Error('dist/cli.cjs is missing: run `npm run build` first.');
  if (spawnSync(python, ['-c', 'import jwt, cryptography']).status !== 0) {
    throw new Error(
      `${python} lacks PyJWT or cryptography: apt-get install python3-jwt python3-cryptography`,
    );
  }

  const folder = mkdtempSync(join(tmpdir(), 'kms-jwt-bench-'));
  try {
    const key = createKey(folder);
    const commands = commandsFor(key.path);
    assertTokens(commands, key.publicKey);
    printTable(commands, measure(commands));
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

main();
