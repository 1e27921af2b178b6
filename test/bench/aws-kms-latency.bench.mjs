// AWS KMS adapter latency against a bare SignCommand, on the same KMSClient and the same local
// emulator, in one process. Each round times one signJwt through the adapter (SHA-256, Sign
// with MessageType DIGEST, strict DER-to-JOSE, and verify-after-sign against the cached public
// key) and one bare SignCommand with a precomputed SHA-256 digest, in alternating order. Warm-up
// rounds, the first call included, are left out. The verify step is also timed on its own. It
// runs twice: as the emulator responds, and with 5 ms added to each Sign, a stand-in for the
// service time of a remote KMS (an assumed figure, not a measured AWS latency).
//
// Goal: median(adapter) / median(bare) <= 1.05.
// Usage: node test/bench/aws-kms-latency.bench.mjs   (BENCH_AWS_ROUNDS=2000 for more rounds)
import { createHash, verify } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { clientSecretParts, machine, percentile, setUp } from './aws-kms-setup.mjs';

const rounds = Number(process.env.BENCH_AWS_ROUNDS ?? 1000);
const warmupRounds = 50;
const verifyIterations = 5000;
const goal = 1.05;

async function timeOnce(action) {
  const started = performance.now();
  await action();
  return performance.now() - started;
}

function describeSamples(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    median: percentile(sorted, 0.5),
    p10: percentile(sorted, 0.1),
    p90: percentile(sorted, 0.9),
  };
}

async function main() {
  const { core, awsKms, sdk, emulator, key, client } = await setUp();
  const signer = await awsKms.createAwsKmsSigner(`awskms:${key.arn}`, { client });
  const signingInput = Buffer.from('eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJCRU5DSFRFQU0xIn0');
  const paths = {
    adapter: () => core.signJwt(signer, clientSecretParts('latency')),
    bare: () =>
      client.send(
        new sdk.SignCommand({
          KeyId: key.arn,
          Message: createHash('sha256').update(signingInput).digest(),
          MessageType: 'DIGEST',
          SigningAlgorithm: 'ECDSA_SHA_256',
        }),
      ),
  };

  const rows = [];
  for (const serviceMs of [0, 5]) {
    emulator.faults = serviceMs === 0 ? {} : { delayMs: serviceMs, operations: ['Sign'] };
    const roundCount = serviceMs === 0 ? rounds : Math.ceil(rounds / 3);
    rows.push({ serviceMs, roundCount, ...(await measure(paths, roundCount)) });
  }
  emulator.faults = {};

  const verifyMs = timeVerify(
    await signer.getPublicKey(),
    await signer.sign(signingInput),
    signingInput,
  );
  const calls = { ...emulator.calls };
  await signer.close();
  client.destroy();
  await emulator.stop();
  printReport(rows, verifyMs, calls);
  console.log(`\nMachine: ${await machine()}.`);
}

// Times both paths in alternating order, round after round, and drops the warm-up rounds.
async function measure(paths, roundCount) {
  const samples = { adapter: [], bare: [] };
  for (let round = 0; round < warmupRounds + roundCount; round += 1) {
    const order = round % 2 === 0 ? ['adapter', 'bare'] : ['bare', 'adapter'];
    for (const name of order) {
      const elapsedMs = await timeOnce(paths[name]);
      if (round >= warmupRounds) samples[name].push(elapsedMs);
    }
  }
  return { adapter: describeSamples(samples.adapter), bare: describeSamples(samples.bare) };
}

// The median of many node:crypto verifications with the cached KeyObject, as signJwt runs them.
function timeVerify(publicKey, signature, signingInput) {
  const samples = [];
  for (let i = 0; i < verifyIterations; i += 1) {
    const started = performance.now();
    const valid = verify(
      'sha256',
      signingInput,
      { key: publicKey, dsaEncoding: 'ieee-p1363' },
      signature,
    );
    samples.push(performance.now() - started);
    if (!valid) throw new Error('The benchmark signature does not verify.');
  }
  return describeSamples(samples).median;
}

function printReport(rows, verifyMs, calls) {
  console.log(
    '| emulator service time | path | median ms | p10 ms | p90 ms | vs bare SignCommand |',
  );
  console.log('|---|---|---|---|---|---|');
  for (const row of rows) {
    for (const [name, stats] of [
      ['adapter: signJwt with verify-after-sign', row.adapter],
      ['bare SignCommand (DIGEST)', row.bare],
    ]) {
      const cells = [
        row.serviceMs === 0 ? 'none added' : `+${row.serviceMs} ms per Sign`,
        name,
        stats.median.toFixed(3),
        stats.p10.toFixed(3),
        stats.p90.toFixed(3),
        `${(stats.median / row.bare.median).toFixed(3)}x`,
      ];
      console.log(`| ${cells.join(' | ')} |`);
    }
  }

  console.log(
    `\nverify-after-sign alone (node:crypto verify, median of ${verifyIterations}): ` +
      `${(verifyMs * 1000).toFixed(1)} µs`,
  );
  for (const row of rows) {
    const ratio = row.adapter.median / row.bare.median;
    const verdict = ratio <= goal ? 'met' : 'NOT met';
    const label = row.serviceMs === 0 ? 'no added service time' : `+${row.serviceMs} ms per Sign`;
    console.log(`median ratio with ${label}: ${ratio.toFixed(3)} (goal <= ${goal}): ${verdict}`);
  }
  const counts = rows.map((row) => `${row.roundCount}`).join(' and ');
  console.log(
    `${counts} rounds per path after ${warmupRounds} warm-up rounds each; emulator calls: ` +
      `Sign ${calls.Sign}, GetPublicKey ${calls.GetPublicKey}.`,
  );
}

await main();
