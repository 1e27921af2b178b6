/**
 * `kms-jwt import` failures that no backend test reaches: a local key as the target, an adapter
 * that cannot import, and an adapter whose imported key has another thumbprint than the `.p8`.
 * The last two use schemes registered with `registerKeyScheme` by a preloaded module, because
 * every built-in remote adapter imports keys and proves the import itself.
 */
import { createPublicKey } from 'node:crypto';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jwkThumbprint } from '../../src/jwk.js';
import {
  buildIfStale,
  createTestKey,
  expectOneErrorLine,
  runCli,
  type CliRun,
  type TestKey,
} from './support.js';

const preload = resolve('test/cli/fixtures/register-schemes.mjs');
let key: TestKey;

beforeAll(() => {
  buildIfStale();
  key = createTestKey('IMP123DEFG');
});

afterAll(() => key.remove());

function runImport(target: string): Promise<CliRun> {
  return runCli(['import', '--from', key.path, '--to', target], {
    env: { NODE_OPTIONS: `--import=${preload}` },
  });
}

/** Asserts that no key text, key bytes or PEM armour of the `.p8` reached the output. */
function expectNoKeyMaterial(run: CliRun): void {
  const output = run.stdout + run.stderr;
  const body = key.pem.split('\n').slice(1, -2).join('');
  expect(output).not.toContain('-----BEGIN');
  expect(output).not.toContain(body.slice(0, 40));
  const scalar = key.privateKey.export({ format: 'jwk' }).d!;
  expect(output).not.toContain(scalar);
}

describe('import --to a local key', () => {
  for (const target of ['file:/tmp/AuthKey_TARGET.p8', 'env:APPLE_KEY']) {
    const scheme = target.slice(0, target.indexOf(':'));

    it(`rejects ${scheme}: with exit code 2`, async () => {
      const run = await runImport(target);

      expect(run.code).toBe(2);
      expectOneErrorLine(run, 'ERR_CLI_IMPORT_TARGET');
      expect(run.stderr).toContain(`import --to ${scheme}: is a local key`);
      expect(run.stderr).toContain('import into an awskms:, gcpkms: or pkcs11: reference');
      expectNoKeyMaterial(run);
    });
  }
});

describe('import --to a scheme without importKey', () => {
  it('rejects with exit code 2', async () => {
    const run = await runImport('noimport:apple-siwa');

    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_IMPORT_TARGET');
    expect(run.stderr).toContain('The no-import adapter behind noimport: cannot import keys');
    expect(run.stderr).toContain('Import into an awskms:, gcpkms: or pkcs11: reference instead');
    expectNoKeyMaterial(run);
  });
});

describe('import whose backend returns another key', () => {
  it('fails and prints no reference', async () => {
    const run = await runImport('otherkey:apple-siwa');
    const expected = jwkThumbprint(createPublicKey(key.privateKey));

    expect(run.code).toBe(5);
    expectOneErrorLine(run, 'ERR_CLI_IMPORT_MISMATCH');
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('The key at otherkey:apple-siwa has thumbprint ');
    expect(run.stderr).toContain(`but the .p8 has ${expected}`);
    expect(run.stderr).toContain('Do not use the reference; delete the imported key');
    expectNoKeyMaterial(run);
  });
});
