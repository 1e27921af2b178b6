// Shared set-up of the AWS KMS benchmarks: the emulator (bundled from its TypeScript source) on
// 127.0.0.1, one P-256 key, one real KMSClient with static fake credentials, and the built
// adapter from dist/. Imported by aws-kms-*.bench.mjs; not a benchmark itself.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { importAwsKmsEmulator } from '../emulators/aws-kms/bundle.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Header and claims of an Apple client secret, with a `jti` so that each token differs. */
export function clientSecretParts(jti) {
  const iat = Math.floor(Date.now() / 1000);
  return {
    header: { alg: 'ES256', kid: 'BENCHKEY01' },
    payload: {
      iss: 'BENCHTEAM1',
      iat,
      exp: iat + 3600,
      aud: 'https://appleid.apple.com',
      sub: 'com.example.bench',
      jti: String(jti),
    },
  };
}

/** Starts the emulator and returns it with a key, a client and the built package. */
export async function setUp() {
  for (const name of Object.keys(process.env))
    if (name.startsWith('AWS_')) delete process.env[name];
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

  const dist = join(root, 'dist');
  if (!existsSync(join(dist, 'aws-kms.js')))
    throw new Error('dist/ is missing: run npm run build.');
  const core = await import(pathToFileURL(join(dist, 'index.js')).href);
  const awsKms = await import(pathToFileURL(join(dist, 'aws-kms.js')).href);
  const sdk = await import('@aws-sdk/client-kms');
  const { AwsKmsEmulator } = await importAwsKmsEmulator();

  const emulator = new AwsKmsEmulator();
  await emulator.start();
  const key = emulator.createKey();
  const client = new sdk.KMSClient({
    endpoint: emulator.endpoint,
    region: emulator.region,
    credentials: { accessKeyId: 'AKIDBENCHMARK', secretAccessKey: 'benchmark-only-secret' },
  });
  return { core, awsKms, sdk, emulator, key, client };
}

/** Returns the value at `fraction` of an ascending list. */
export function percentile(sorted, fraction) {
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
}

/** Describes the machine for the benchmark record. */
export async function machine() {
  const { cpus } = await import('node:os');
  return `${cpus().length} CPUs, ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}`;
}
