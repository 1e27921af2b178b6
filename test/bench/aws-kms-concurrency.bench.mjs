// 500 concurrent signJwt calls against one AWS KMS signer and the local emulator, in one
// process. Checks that no mint fails, that every token verifies (node:crypto, after timing),
// and counts the KMS calls the mints cost: one Sign per mint, and one GetPublicKey shared by
// all of them for a cold signer. Reports the throughput over several runs, for a cold signer
// (public key not yet fetched) and a warm one.
//
// Goal: no errors, and no more Sign calls than mints.
// Usage: node test/bench/aws-kms-concurrency.bench.mjs   (BENCH_AWS_RUNS=10 for more runs)
import { verify } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { clientSecretParts, machine, percentile, setUp } from './aws-kms-setup.mjs';

const mints = 500;
const runs = Number(process.env.BENCH_AWS_RUNS ?? 5);

async function runOnce(context, warm, runIndex) {
  const { core, awsKms, emulator, key, client } = context;
  const signer = await awsKms.createAwsKmsSigner(`awskms:${key.arn}`, { client });
  if (warm) await signer.getPublicKey();
  emulator.reset();

  const started = performance.now();
  const results = await Promise.allSettled(
    Array.from({ length: mints }, (_, i) =>
      core.signJwt(signer, clientSecretParts(`${runIndex}-${i}`)),
    ),
  );
  const elapsedMs = performance.now() - started;
  const calls = { sign: emulator.calls.Sign ?? 0, getPublicKey: emulator.calls.GetPublicKey ?? 0 };

  const publicKey = await signer.getPublicKey();
  await signer.close();
  const errors = results.filter((result) => result.status === 'rejected');
  const bad = results.filter(
    (result) => result.status === 'fulfilled' && !isValid(result.value, publicKey),
  );
  return { elapsedMs, calls, errors: errors.length, bad: bad.length };
}

function isValid(token, publicKey) {
  const [header, payload, signature] = token.split('.');
  const key = { key: publicKey, dsaEncoding: 'ieee-p1363' };
  return verify(
    'sha256',
    Buffer.from(`${header}.${payload}`),
    key,
    Buffer.from(signature, 'base64url'),
  );
}

function summarize(name, outcomes) {
  const throughputs = outcomes.map((o) => mints / (o.elapsedMs / 1000)).sort((a, b) => a - b);
  const elapsed = outcomes.map((o) => o.elapsedMs).sort((a, b) => a - b);
  const sign = Math.max(...outcomes.map((o) => o.calls.sign));
  const getPublicKey = Math.max(...outcomes.map((o) => o.calls.getPublicKey));
  const errors = outcomes.reduce((sum, o) => sum + o.errors + o.bad, 0);
  const cells = [
    name,
    String(mints),
    percentile(elapsed, 0.5).toFixed(0),
    percentile(throughputs, 0.5).toFixed(0),
    `${throughputs[0].toFixed(0)}–${throughputs.at(-1).toFixed(0)}`,
    String(sign),
    String(getPublicKey),
    String(sign + getPublicKey),
    String(errors),
  ];
  console.log(`| ${cells.join(' | ')} |`);
  return { ok: errors === 0 && sign <= mints };
}

async function main() {
  const context = await setUp();
  const cold = [];
  const warm = [];
  for (let run = 0; run < runs; run += 1) {
    cold.push(await runOnce(context, false, `cold${run}`));
    warm.push(await runOnce(context, true, `warm${run}`));
  }
  context.client.destroy();
  await context.emulator.stop();

  console.log(
    '| signer | concurrent mints | median wall ms | median mints/s | mints/s range | ' +
      'max Sign calls | max GetPublicKey calls | KMS calls in all | errors + bad tokens |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  const results = [
    summarize('cold (first use)', cold),
    summarize('warm (public key cached)', warm),
  ];
  const met = results.every((result) => result.ok);
  console.log(
    `\n${runs} runs each. Goal (no errors, Sign calls <= mints): ${met ? 'met' : 'NOT met'}.`,
  );
  console.log(`Machine: ${await machine()}.`);
  if (!met) process.exitCode = 1;
}

await main();
