import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { jwkThumbprint } from '../../src/jwk.js';
import {
  buildIfStale,
  createTestKey,
  decodePart,
  expectOneErrorLine,
  runCli,
  verifyIndependently,
  type TestKey,
} from '../cli/support.js';
import type { EmulatedKey, GcpKmsEmulator } from '../emulators/gcp-kms/index.js';
import { keyRing, spkiPem, startEmulator } from './support.js';

const env = { METADATA_SERVER_DETECTION: 'none' };
const teamId = 'DEF123GHIJ';
const clientId = 'com.example.Web';
let kms: GcpKmsEmulator;
let key: EmulatedKey;
let p8: TestKey;

beforeAll(async () => {
  buildIfStale();
  kms = await startEmulator();
  key = kms.createKey({ keyRing, cryptoKeyId: 'cli' });
  p8 = createTestKey('ABC123DEFG');
});

afterAll(async () => {
  p8.remove();
  await kms.stop();
});

beforeEach(() => {
  kms.reset();
  kms.importJobPendingPolls = 0;
  kms.importPendingPolls = 0;
});

function clientSecret(reference: string) {
  return runCli(
    [
      'client-secret',
      '--team-id',
      teamId,
      '--client-id',
      clientId,
      '--key-id',
      'KEYBBBB222',
      '--key',
      reference,
    ],
    { env },
  );
}

describe('kms-jwt with gcpkms keys', () => {
  it('client-secret signs through Cloud KMS', async () => {
    const run = await clientSecret(kms.reference(key.versionName));
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);

    const token = run.stdout.trim();
    const claims = await verifyIndependently(token, spkiPem(key.publicKey));
    expect(claims.iss).toBe(teamId);
    expect(claims.sub).toBe(clientId);
    expect(decodePart(token, 0)).toEqual({ alg: 'ES256', kid: 'KEYBBBB222' });
    expect(kms.count('AsymmetricSign')).toBe(1);
  });

  it('public-key prints the version key', async () => {
    const reference = `cloudkms:resource=${key.versionName}?endpoint=${kms.host}:${kms.port}&plaintext=true`;
    const pem = await runCli(['public-key', '--key', reference], { env });
    expect(pem.code).toBe(0);
    expect(pem.stdout).toBe(spkiPem(key.publicKey));
    expect(pem.stderr).toContain(jwkThumbprint(key.publicKey));

    const thumbprint = await runCli(['public-key', '--key', reference, '--format', 'thumbprint'], {
      env,
    });
    expect(thumbprint.stdout.trim()).toBe(jwkThumbprint(key.publicKey));
  });

  it('verify checks a token against the version', async () => {
    const reference = kms.reference(key.versionName);
    const token = (await clientSecret(reference)).stdout.trim();
    const valid = await runCli(['verify', '-', '--key', reference, '--iss', teamId], {
      env,
      input: token,
    });
    expect(valid.code).toBe(0);
    expect(valid.stdout.trim()).toBe('valid');

    const other = kms.createKey({ keyRing });
    const invalid = await runCli(['verify', '-', '--key', kms.reference(other.versionName)], {
      env,
      input: token,
    });
    expect(invalid.code).toBe(1);
  });

  it('refuses a key without a version', async () => {
    const run = await clientSecret(kms.reference(key.cryptoKeyName));
    expect(run.code).toBe(3);
    expectOneErrorLine(run, 'ERR_GCP_KMS_VERSION_REQUIRED');
    expect(run.stderr).toContain(`${key.cryptoKeyName}/cryptoKeyVersions/1`);
  });

  it('reports a permission failure', async () => {
    kms.faults.permissionDenied = 1;
    const run = await clientSecret(kms.reference(key.versionName));
    expect(run.code).toBe(3);
    expectOneErrorLine(run, 'ERR_GCP_KMS_PERMISSION_DENIED');
    expect(run.stderr).toContain('cloudkms.cryptoKeyVersions.useToSign');
  });
});

describe('kms-jwt import --to gcpkms', () => {
  for (const method of ['RSA_OAEP_3072_SHA256_AES_256', 'RSA_OAEP_3072_SHA256']) {
    it(`imports a .p8 with ${method}`, async () => {
      const target = `${keyRing}/cryptoKeys/cli-import-${method.toLowerCase()}`;
      const run = await runCli(
        ['import', '--from', p8.path, '--to', `${kms.reference(target)}&import-method=${method}`],
        { env },
      );
      expect(run.code).toBe(0);

      const versionName = `${target}/cryptoKeyVersions/1`;
      expect(run.stdout).toBe(`${kms.reference(versionName)}\n`);
      expect(run.stderr).toContain(`kms-jwt: thumbprint: ${jwkThumbprint(p8.publicKey)}`);
      expect(run.stderr).toContain(`kms-jwt: cryptoKeyVersion: ${versionName}`);
      expect(run.stderr).toContain(`kms-jwt: importMethod: ${method}`);
      expect(run.stderr).not.toContain('PRIVATE KEY');

      const token = (await clientSecret(run.stdout.trim())).stdout.trim();
      expect((await verifyIndependently(token, p8.publicPem)).iss).toBe(teamId);
    });
  }

  it('rejects --alias before any call', async () => {
    const target = `${keyRing}/cryptoKeys/cli-import-alias`;
    const run = await runCli(
      ['import', '--from', p8.path, '--to', kms.reference(target), '--alias', 'alias/siwa'],
      { env },
    );
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('Cloud KMS has no key aliases');
    expect(run.stdout).toBe('');
    expect(kms.calls).toEqual([]);
  });

  it('rejects --overwrite before any call', async () => {
    const target = `${keyRing}/cryptoKeys/cli-import-overwrite`;
    const run = await runCli(
      ['import', '--from', p8.path, '--to', kms.reference(target), '--overwrite'],
      { env },
    );
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('never replaces one');
    expect(kms.calls).toEqual([]);
  });

  it('names the failed step', async () => {
    kms.faults.deniedMethods = ['ImportCryptoKeyVersion'];
    const target = `${keyRing}/cryptoKeys/cli-import-denied`;
    const run = await runCli(['import', '--from', p8.path, '--to', kms.reference(target)], {
      env,
    });
    expect(run.code).toBe(3);
    expectOneErrorLine(run, 'ERR_GCP_KMS_IMPORT_FAILED');
    expect(run.stderr).toContain('step "import-version"');
    expect(run.stderr).toContain('cloudkms.importJobs.useToImport');
    expect(run.stderr).toContain('is ACTIVE');
  });
});
