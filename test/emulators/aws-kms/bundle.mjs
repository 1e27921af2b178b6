// Bundles the AWS KMS emulator (TypeScript) into one ES module in a temporary folder, so that
// plain Node scripts such as the benchmarks, and child processes of the tests, can run it
// without a TypeScript loader.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const entry = join(dirname(fileURLToPath(import.meta.url)), 'index.ts');

/**
 * Writes the bundle and returns its path. `@noble/curves` is bundled in; Node built-ins stay
 * imports.
 *
 * @example
 * const path = await bundleAwsKmsEmulator();
 * const { AwsKmsEmulator } = await import(pathToFileURL(path).href);
 */
export async function bundleAwsKmsEmulator() {
  const outfile = join(mkdtempSync(join(tmpdir(), 'aws-kms-emulator-')), 'emulator.mjs');
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'error',
  });
  return outfile;
}

/** Bundles the emulator and imports it. */
export async function importAwsKmsEmulator() {
  return import(pathToFileURL(await bundleAwsKmsEmulator()).href);
}
