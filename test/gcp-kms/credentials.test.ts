/**
 * A library caller with no usable Google credentials must get a rejected promise with a coded
 * error, and its process must survive. Each case runs the built package in a child process, so
 * that an uncaught exception or an unhandled rejection shows as a crash, with a preload that
 * blocks every connection and DNS query outside loopback. Credential discovery fails locally: a
 * missing credentials file, an empty HOME, metadata-server detection off and the metadata host
 * set to a closed loopback port.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale, cliPath } from '../cli/support.js';

let home: string;

beforeAll(() => {
  buildIfStale();
  home = mkdtempSync(join(tmpdir(), 'kms-jwt-gcp-credentials-'));
});

afterAll(() => {
  rmSync(home, { recursive: true, force: true });
});

const versionName =
  'projects/acme/locations/global/keyRings/apple/cryptoKeys/siwa/cryptoKeyVersions/1';
const cryptoKeyName = 'projects/acme/locations/global/keyRings/apple/cryptoKeys/siwa';

/** What one child run printed and how it ended. */
interface ChildRun {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** The child's report: the error it caught, and the network attempts the preload blocked. */
interface ChildReport {
  outcome: 'resolved' | 'rejected';
  code?: string;
  message?: string;
  causeCode?: string;
  blocked: string[];
}

/**
 * Environment of a child: nothing inherited but PATH, so no developer credentials, gcloud
 * configuration or proxy settings leak in, and every credential source fails on this machine.
 */
function childEnvironment(credentials: 'missing-file' | 'none' | 'invalid-json') {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: home,
    METADATA_SERVER_DETECTION: 'none',
    GCE_METADATA_HOST: '127.0.0.1:9',
    GCE_METADATA_IP: '127.0.0.1:9',
  };
  if (credentials === 'missing-file') {
    env.GOOGLE_APPLICATION_CREDENTIALS = join(home, 'missing', 'credentials.json');
  }
  if (credentials === 'invalid-json') {
    const path = join(home, 'broken-credentials.json');
    writeFileSync(path, '{"type": "service_account", "private_key": "-----BEGIN PRIV');
    env.GOOGLE_APPLICATION_CREDENTIALS = path;
  }
  return env;
}

function runNode(args: string[], env: Record<string, string>): Promise<ChildRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { env, timeout: 60_000 }, (error, stdout, stderr) => {
      const exitCode = error ? ((error as { code?: unknown }).code as number | null) : 0;
      const signal = error ? ((error as { signal?: string | null }).signal ?? null) : null;
      resolve({ exitCode: typeof exitCode === 'number' ? exitCode : null, signal, stdout, stderr });
    });
  });
}

/**
 * Runs `body` (ES module code that awaits the call under test) in a child. The child prints one
 * JSON report once the call has settled and a few turns of the event loop have passed. A crash
 * before or after that line gives a non-zero exit code and a stack trace on stderr.
 */
async function runLibraryCall(
  body: string,
  credentials: 'missing-file' | 'none' | 'invalid-json',
): Promise<{ run: ChildRun; report: ChildReport | undefined }> {
  const script = `
    let report;
    try {
      ${body}
      report = { outcome: 'resolved' };
    } catch (error) {
      report = {
        outcome: 'rejected',
        code: error?.code,
        message: error?.message,
        causeCode: error?.details?.causeCode,
      };
    }
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
    report.blocked = globalThis.blockedNetworkAttempts;
    console.log(JSON.stringify(report));`;
  const args = ['--import', './test/gcp-kms/loopback-only.mjs', '--input-type=module', '-e'];
  const run = await runNode([...args, script], childEnvironment(credentials));
  const line = run.stdout.trim().split('\n').at(-1) ?? '';
  const report = line.startsWith('{') ? (JSON.parse(line) as ChildReport) : undefined;
  return { run, report };
}

/** Checks that the child ended normally and reported a coded credentials error. */
function expectCredentialsError(run: ChildRun, report: ChildReport | undefined): ChildReport {
  expect(run.stderr).toBe('');
  expect(run.signal).toBeNull();
  expect(run.exitCode).toBe(0);
  expect(report?.outcome).toBe('rejected');
  expect(report!.blocked).toEqual([]);
  return report!;
}

const signerImport = `const { createGcpKmsSigner } = await import('./dist/gcp-kms.js');`;

describe('Cloud KMS without credentials', () => {
  for (const credentials of ['missing-file', 'none'] as const) {
    it(`rejects signer creation (${credentials})`, async () => {
      const body = `${signerImport}
        await createGcpKmsSigner('gcpkms:${versionName}');`;
      const { run, report } = await runLibraryCall(body, credentials);
      const error = expectCredentialsError(run, report);

      expect(error.code).toBe('ERR_GCP_KMS_CREDENTIALS');
      expect(error.message).toContain('GOOGLE_APPLICATION_CREDENTIALS');
      expect(error.message).toContain('gcloud auth application-default login');
      expect(error.message).toContain('client option');
    });
  }

  it('names the missing credentials file', async () => {
    const body = `${signerImport}
      await createGcpKmsSigner('gcpkms:${versionName}');`;
    const { run, report } = await runLibraryCall(body, 'missing-file');
    const error = expectCredentialsError(run, report);

    expect(error.message).toContain(join(home, 'missing', 'credentials.json'));
  });

  it('hides a broken credentials file', async () => {
    const body = `${signerImport}
      await createGcpKmsSigner('gcpkms:${versionName}');`;
    const { run, report } = await runLibraryCall(body, 'invalid-json');
    const error = expectCredentialsError(run, report);

    expect(error.code).toBe('ERR_GCP_KMS_CREDENTIALS');
    expect(error.message).toContain('not valid JSON');
    expect(error.message).not.toContain('BEGIN PRIV');
  });

  it('rejects through the key-reference registry', async () => {
    const body = `const { createSigner } = await import('./dist/index.js');
      await createSigner('cloudkms:${versionName}');`;
    const { run, report } = await runLibraryCall(body, 'none');
    const error = expectCredentialsError(run, report);

    expect(error.code).toBe('ERR_GCP_KMS_CREDENTIALS');
  });

  it("rejects a caller's client without credentials", async () => {
    const body = `${signerImport}
      const { KeyManagementServiceClient } = await import('@google-cloud/kms');
      const client = new KeyManagementServiceClient();
      try {
        await createGcpKmsSigner('gcpkms:${versionName}', { client });
      } finally {
        await client.close().catch(() => undefined);
      }`;
    const { run, report } = await runLibraryCall(body, 'none');
    const error = expectCredentialsError(run, report);

    expect(error.code).toBe('ERR_GCP_KMS_CREDENTIALS');
  });

  it('rejects an import', async () => {
    const body = `${signerImport.replace('createGcpKmsSigner', 'importP8ToGcpKms')}
      const { generateKeyPairSync } = await import('node:crypto');
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      await importP8ToGcpKms(privateKey, 'gcpkms:${cryptoKeyName}');`;
    const { run, report } = await runLibraryCall(body, 'missing-file');
    const error = expectCredentialsError(run, report);

    expect(error.code).toBe('ERR_GCP_KMS_CREDENTIALS');
  });

  it('reports one coded line from the CLI', async () => {
    const preload = ['--import', './test/gcp-kms/loopback-only.mjs'];
    const command = ['public-key', '--key', `gcpkms:${versionName}`];
    const run = await runNode([...preload, cliPath, ...command], childEnvironment('none'));

    expect(run.exitCode).toBe(3);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^kms-jwt: error: \[ERR_GCP_KMS_CREDENTIALS\] [^\n]+\n$/);
  });
});
