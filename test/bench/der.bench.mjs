// derToJose and joseToDer from the built package against ecdsa-sig-formatter 1.x, the converter
// behind jsonwebtoken and jws, on the same real P-256 signatures, side by side in one process.
// ecdsa-sig-formatter returns base64url text, so this package is also measured with the
// base64url step added. A strictness table follows: how many Wycheproof signatures that are not
// canonical DER each converter accepts instead of throwing.
//
// Usage: node --expose-gc test/bench/der.bench.mjs   (BENCH_DER_SAMPLES=9 for more samples)
import { generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const require = createRequire(import.meta.url);
const formatter = require('ecdsa-sig-formatter');
const { derToJose, joseToDer } = await import(join(root, 'dist', 'index.js'));

const signatureCount = 2_000;
const samples = Number(process.env.BENCH_DER_SAMPLES ?? 7);
const sampleMs = 400;

/** Real DER signatures from node:crypto, about 1 in 128 with a short r or s. */
function createSignatures() {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = [];
  for (let i = 0; i < signatureCount; i++) {
    der.push(sign('sha256', Buffer.from(`signing input ${i}`), { key: privateKey }));
  }
  const jose = der.map((signature) => derToJose(signature));
  return { der, jose, joseText: jose.map((signature) => signature.toString('base64url')) };
}

/** Runs `body` over all inputs repeatedly for about `sampleMs`, and returns operations/s. */
function sampleRate(body, inputs) {
  globalThis.gc?.();
  let operations = 0;
  let sink = 0;
  const started = process.hrtime.bigint();
  let elapsedNs = 0n;
  while (elapsedNs < BigInt(sampleMs) * 1_000_000n) {
    for (const input of inputs) sink += body(input).length;
    operations += inputs.length;
    elapsedNs = process.hrtime.bigint() - started;
  }
  if (sink === 0) throw new Error('the converter returned nothing');
  return operations / (Number(elapsedNs) / 1e9);
}

/** Measures each case in rotating order, so that noise hits all of them alike. */
function measure(cases) {
  const rates = cases.map(() => []);
  for (const entry of cases) sampleRate(entry.body, entry.inputs); // Warm-up and JIT.
  for (let round = 0; round < samples; round++) {
    for (let offset = 0; offset < cases.length; offset++) {
      const index = (round + offset) % cases.length;
      rates[index].push(sampleRate(cases[index].body, cases[index].inputs));
    }
  }
  return rates.map((list) => list.sort((a, b) => a - b)[list.length >> 1]);
}

function assertSameOutput({ der, jose, joseText }) {
  for (let i = 0; i < der.length; i++) {
    if (formatter.derToJose(der[i], 'ES256') !== jose[i].toString('base64url')) {
      throw new Error(`derToJose outputs differ for signature ${i}`);
    }
    if (!formatter.joseToDer(joseText[i], 'ES256').equals(joseToDer(jose[i]))) {
      throw new Error(`joseToDer outputs differ for signature ${i}`);
    }
  }
}

function printSpeedTable(signatures) {
  const { der, jose, joseText } = signatures;
  const cases = [
    { name: 'derToJose, kms-jwt-signer (Buffer out)', body: derToJose, inputs: der },
    {
      name: 'derToJose, kms-jwt-signer + base64url',
      body: (signature) => derToJose(signature).toString('base64url'),
      inputs: der,
    },
    {
      name: 'derToJose, ecdsa-sig-formatter (base64url out)',
      body: (signature) => formatter.derToJose(signature, 'ES256'),
      inputs: der,
    },
    { name: 'joseToDer, kms-jwt-signer (Buffer in)', body: joseToDer, inputs: jose },
    {
      name: 'joseToDer, kms-jwt-signer after base64url decoding',
      body: (signature) => joseToDer(Buffer.from(signature, 'base64url')),
      inputs: joseText,
    },
    {
      name: 'joseToDer, ecdsa-sig-formatter (base64url in)',
      body: (signature) => formatter.joseToDer(signature, 'ES256'),
      inputs: joseText,
    },
  ];
  const rates = measure(cases);
  const peerOf = [2, 2, 2, 5, 5, 5];

  console.log('| operation | ops/s (median) | vs ecdsa-sig-formatter |');
  console.log('|---|---|---|');
  cases.forEach((entry, index) => {
    const ratio = rates[index] / rates[peerOf[index]];
    const cells = [
      entry.name,
      Math.round(rates[index]).toLocaleString('en-US'),
      `${ratio.toFixed(2)}x`,
    ];
    console.log(`| ${cells.join(' | ')} |`);
  });
  console.log(
    `\n${signatureCount} real signatures per pass, median of ${samples} samples of ${sampleMs} ms.`,
  );
}

function acceptsWithoutThrowing(convert, signature) {
  try {
    convert(signature);
    return true;
  } catch {
    return false;
  }
}

/** Wycheproof cases flagged as encoding problems: BER forms, bad lengths, wrong types. */
function printStrictnessTable() {
  const path = join(root, 'test', 'fixtures', 'wycheproof', 'ecdsa_secp256r1_sha256_test.json');
  const file = JSON.parse(readFileSync(path, 'utf8'));
  const encodingFlags = ['InvalidEncoding', 'BerEncodedSignature', 'InvalidTypesInSignature'];
  const cases = file.testGroups
    .flatMap((group) => group.tests)
    .filter((test) => test.flags.some((flag) => encodingFlags.includes(flag)))
    .map((test) => Buffer.from(test.sig, 'hex'));

  const ours = cases.filter((sig) => acceptsWithoutThrowing(derToJose, sig)).length;
  const theirs = cases.filter((sig) =>
    acceptsWithoutThrowing((s) => formatter.derToJose(s, 'ES256'), sig),
  ).length;
  console.log(`\n| converter | malformed Wycheproof DER accepted (of ${cases.length}) |`);
  console.log('|---|---|');
  console.log(`| kms-jwt-signer derToJose | ${ours} |`);
  console.log(`| ecdsa-sig-formatter derToJose | ${theirs} |`);
}

const signatures = createSignatures();
assertSameOutput(signatures);
printSpeedTable(signatures);
printStrictnessTable();
