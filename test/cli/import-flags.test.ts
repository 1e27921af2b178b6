/**
 * `import` flags that the target's backend does not use: each is a usage error raised before the
 * `.p8` is read or any backend is contacted, so that no key is created under another name than
 * the one requested. The targets below point at nothing (a port with no listener, a missing
 * PKCS#11 module), and the `.p8` path does not exist, so any work past the flag check would
 * fail with a different code.
 */
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale, runCli } from './support.js';

const missingP8 = join(tmpdir(), 'kms-jwt-no-such-dir', 'AuthKey_ABC123DEFG.p8');
const awsTarget =
  'awskms:arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const gcpTarget =
  'gcpkms:projects/p/locations/global/keyRings/r/cryptoKeys/siwa?endpoint=127.0.0.1:9&plaintext=true';
// cloudkms: is the Cloud KMS adapter's second scheme.
const cloudKmsTarget = gcpTarget.replace(/^gcpkms:/, 'cloudkms:');
const pkcs11Target = 'pkcs11:token=none;object=siwa;id=%01?module-path=/nonexistent/libsofthsm2.so';

// Unreachable endpoints on 127.0.0.1, so that a stray backend call fails without leaving the host.
const env = {
  AWS_REGION: 'eu-west-1',
  AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'not-a-secret',
  AWS_ENDPOINT_URL_KMS: 'http://127.0.0.1:9',
};

beforeAll(() => buildIfStale());

const cases = [
  { flags: ['--alias', 'siwa'], target: gcpTarget, reason: 'Cloud KMS has no key aliases' },
  { flags: ['--overwrite'], target: gcpTarget, reason: 'adds a new key version' },
  {
    flags: ['--wrapping-algorithm', 'RSAES_OAEP_SHA_256'],
    target: gcpTarget,
    reason: 'for awskms: targets only',
  },
  { flags: ['--alias', 'siwa'], target: cloudKmsTarget, reason: 'Cloud KMS has no key aliases' },
  { flags: ['--overwrite'], target: cloudKmsTarget, reason: 'adds a new key version' },
  {
    flags: ['--wrapping-algorithm', 'RSAES_OAEP_SHA_256'],
    target: cloudKmsTarget,
    reason: 'for awskms: targets only',
  },
  { flags: ['--alias', 'siwa'], target: pkcs11Target, reason: 'object= in --to' },
  {
    flags: ['--wrapping-algorithm', 'RSAES_OAEP_SHA_256'],
    target: pkcs11Target,
    reason: 'for awskms: targets only',
  },
  { flags: ['--overwrite'], target: awsTarget, reason: 'never replaces imported key material' },
];

describe('import flags per backend', () => {
  for (const { flags, target, reason } of cases) {
    const scheme = target.slice(0, target.indexOf(':') + 1);
    it(`rejects ${flags[0]} for ${scheme}`, async () => {
      const run = await runCli(['import', '--from', missingP8, '--to', target, ...flags], { env });
      expect(run.code).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr.split('\n')).toHaveLength(2);
      expect(run.stderr).toMatch(/^kms-jwt: error: \[ERR_CLI_USAGE\] /);
      expect(run.stderr).toContain(`${flags[0]} does not apply to ${scheme} targets`);
      expect(run.stderr).toContain(reason);
    });
  }

  it('names every flag that does not apply', async () => {
    const args = ['import', '--from', missingP8, '--to', gcpTarget, '--alias', 'a', '--overwrite'];
    const run = await runCli(args, { env });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--alias does not apply to gcpkms: targets');
    expect(run.stderr).toContain('--overwrite does not apply to gcpkms: targets');
  });

  it('passes flags the backend uses', async () => {
    const runs = [
      ['--to', awsTarget, '--alias', 'siwa', '--wrapping-algorithm', 'RSAES_OAEP_SHA_256'],
      ['--to', pkcs11Target, '--overwrite'],
      ['--to', gcpTarget],
    ];
    for (const args of runs) {
      const run = await runCli(['import', '--from', missingP8, ...args], { env });
      // Past the flag check, the missing .p8 is the first failure.
      expect(run.stderr).toMatch(/^kms-jwt: error: \[ERR_KEY_FILE_[A-Z_]+\] /);
      expect(run.code).toBe(3);
    }
  });
});
