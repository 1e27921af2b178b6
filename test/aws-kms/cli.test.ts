/**
 * The built `kms-jwt` CLI with `awskms:` references, in a child process that reaches the
 * emulator over a socket with credentials and region from the environment, as a user's shell
 * would give them. Also checks that `kms-jwt import` writes no key material to any file.
 */
import { spawnSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AwsKmsEmulator, EmulatorKey } from '../emulators/aws-kms/index.js';
import {
  buildIfStale,
  createTestKey,
  decodePart,
  expectOneErrorLine,
  runCli,
  verifyIndependently,
  type TestKey,
} from '../cli/support.js';
import {
  fakeCredentials,
  fakeSessionCredentials,
  signatureMismatchMessage,
  startEmulator,
} from './support.js';

const guardPath = resolve('test/aws-kms/fs-write-guard.mjs');

let kms: AwsKmsEmulator;
let home: string;

beforeAll(async () => {
  buildIfStale();
  kms = await startEmulator();
  home = mkdtempSync(join(tmpdir(), 'kms-jwt-aws-cli-home-'));
});

afterAll(async () => {
  await kms.stop();
  rmSync(home, { recursive: true, force: true });
});

beforeEach(() => {
  kms.reset();
});

/** Returns the AWS environment a user would set, pointed at the emulator. */
function awsEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    HOME: home,
    AWS_ACCESS_KEY_ID: fakeCredentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: fakeCredentials.secretAccessKey,
    AWS_REGION: kms.region,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    AWS_CONFIG_FILE: '/nonexistent/aws-config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
    ...extra,
  };
}

function at(keyId: string): string {
  return `awskms://127.0.0.1:${kms.port}/${keyId}`;
}

function publicPemOf(key: EmulatorKey): string {
  return createPublicKey(key.privateKey!).export({ type: 'spki', format: 'pem' }).toString();
}

async function thumbprintOf(publicKey: ReturnType<typeof createPublicKey>): Promise<string> {
  return calculateJwkThumbprint(await exportJWK(publicKey), 'sha256');
}

const secretArgs = ['--team-id', 'TEAMAAAA11', '--client-id', 'com.example.web'];

describe('kms-jwt with awskms references', () => {
  it('client-secret signs through the sigstore form', async () => {
    const key = kms.createKey();
    const run = await runCli(
      ['client-secret', ...secretArgs, '--key-id', 'KEYBBBB222', '--key', at(key.arn)],
      { env: awsEnv() },
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const token = run.stdout.trim();
    const claims = await verifyIndependently(token, publicPemOf(key));
    expect(claims).toMatchObject({ iss: 'TEAMAAAA11', sub: 'com.example.web' });
    expect(decodePart(token, 0)).toMatchObject({ alg: 'ES256', kid: 'KEYBBBB222' });
    expect(kms.calls.Sign).toBe(1);
  });

  it('client-secret takes the endpoint from AWS_ENDPOINT_URL_KMS', async () => {
    const key = kms.createKey({ alias: 'alias/cli-env' });
    const run = await runCli(
      ['client-secret', ...secretArgs, '--key-id', 'KEYBBBB222', '--key', 'awskms:alias/cli-env'],
      { env: awsEnv({ AWS_ENDPOINT_URL_KMS: kms.endpoint }) },
    );
    expect(run.code).toBe(0);
    await verifyIndependently(run.stdout.trim(), publicPemOf(key));
  });

  it('public-key prints PEM, JWK and thumbprint', async () => {
    const key = kms.createKey({ alias: 'alias/cli-public' });
    const publicKey = createPublicKey(key.privateKey!);
    const thumbprint = await thumbprintOf(publicKey);

    const pem = await runCli(['public-key', '--key', at('alias/cli-public')], { env: awsEnv() });
    expect(pem.code).toBe(0);
    expect(pem.stdout).toBe(publicPemOf(key));
    expect(pem.stderr).toBe(`kms-jwt: thumbprint: ${thumbprint}\n`);

    const jwk = await runCli(['public-key', '--key', at(key.keyId), '--format', 'jwk'], {
      env: awsEnv(),
    });
    expect(JSON.parse(jwk.stdout)).toEqual(await exportJWK(publicKey));

    const only = await runCli(['public-key', '--key', at(key.arn), '--format', 'thumbprint'], {
      env: awsEnv(),
    });
    expect(only.stdout).toBe(`${thumbprint}\n`);
  });

  it('verify checks a token against the KMS key', async () => {
    const key = kms.createKey();
    const minted = await runCli(
      ['client-secret', ...secretArgs, '--key-id', 'KEYBBBB222', '--key', at(key.arn)],
      { env: awsEnv() },
    );
    const token = minted.stdout.trim();
    const run = await runCli(['verify', token, '--key', at(key.arn)], { env: awsEnv() });
    expect(run.stdout).toBe('valid\n');
    expect(run.code).toBe(0);

    const other = kms.createKey();
    const wrong = await runCli(['verify', token, '--key', at(other.arn)], { env: awsEnv() });
    expect(wrong.code).toBe(1);
  });

  it('disabled key exits 3 with one coded line', async () => {
    const key = kms.createKey();
    kms.setKeyState(key.arn, 'Disabled');
    const run = await runCli(
      ['client-secret', ...secretArgs, '--key-id', 'KEYBBBB222', '--key', at(key.arn)],
      { env: awsEnv() },
    );
    expect(run.code).toBe(3);
    expectOneErrorLine(run, 'ERR_AWS_KMS_KEY_DISABLED');
    expect(run.stderr).toContain(key.arn);
    expect(run.stderr).not.toContain(fakeCredentials.accessKeyId);
    expect(run.stderr).not.toContain(fakeCredentials.secretAccessKey);
  });

  it('debug trace hides the session token', async () => {
    const key = kms.createKey();
    const credentials = fakeSessionCredentials();
    kms.faults = {
      error: { type: 'InvalidSignatureException', message: signatureMismatchMessage(credentials) },
    };
    const run = await runCli(['public-key', '--key', at(key.arn)], {
      env: awsEnv({
        AWS_ACCESS_KEY_ID: credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
        AWS_SESSION_TOKEN: credentials.sessionToken,
        KMS_JWT_DEBUG: '1',
      }),
    });
    expect(run.code).toBe(3);
    expect(run.stderr).toContain('ERR_AWS_KMS_CREDENTIALS_INVALID');
    expect(run.stderr).toContain('caused by: InvalidSignatureException');
    expect(run.stderr).not.toContain(credentials.sessionToken);
    expect(run.stderr).not.toContain(credentials.accessKeyId);
    expect(run.stderr).not.toContain(credentials.secretAccessKey);
  });

  it('access denied names the IAM action', async () => {
    const key = kms.createKey();
    kms.faults = { accessDenied: ['Sign'] };
    const run = await runCli(
      ['client-secret', ...secretArgs, '--key-id', 'KEYBBBB222', '--key', at(key.arn)],
      { env: awsEnv() },
    );
    expect(run.code).toBe(3);
    expectOneErrorLine(run, 'ERR_AWS_KMS_ACCESS_DENIED');
    expect(run.stderr).toContain('kms:Sign');
  });
});

describe('kms-jwt import --to awskms', () => {
  let p8: TestKey;

  beforeEach(() => {
    p8 = createTestKey('ABC123DEFG');
    return () => p8.remove();
  });

  it('imports, prints the reference and thumbprint, then signs', async () => {
    const run = await runCli(['import', '--from', p8.path, '--to', at('alias/cli-imported')], {
      env: awsEnv(),
    });
    expect(run.code).toBe(0);
    const key = kms.findKey('alias/cli-imported')!;
    expect(run.stdout).toBe(`${at(key.arn)}\n`);
    expect(run.stderr).toContain(`kms-jwt: thumbprint: ${await thumbprintOf(p8.publicKey)}\n`);
    expect(run.stderr).toContain(`kms-jwt: keyArn: ${key.arn}\n`);
    expect(run.stderr).toContain('kms-jwt: wrappingAlgorithm: RSA_AES_KEY_WRAP_SHA_256\n');

    const minted = await runCli(
      ['client-secret', ...secretArgs, '--key-id', 'ABC123DEFG', '--key', run.stdout.trim()],
      { env: awsEnv() },
    );
    expect(minted.code).toBe(0);
    await verifyIndependently(minted.stdout.trim(), p8.publicPem);
  });

  it('prints an alias reference that carries its region', async () => {
    const run = await runCli(['import', '--from', p8.path, '--to', at('alias/cli-regional')], {
      env: awsEnv(),
    });
    expect(run.code).toBe(0);
    const aliasArn = `arn:aws:kms:${kms.region}:${kms.accountId}:alias/cli-regional`;
    expect(run.stderr).toContain(`kms-jwt: aliasReference: ${at(aliasArn)}\n`);

    // Without AWS_REGION, only a reference that names its region can reach the key.
    const { AWS_REGION: _region, ...withoutRegion } = awsEnv();
    const minted = await runCli(
      ['client-secret', ...secretArgs, '--key-id', 'ABC123DEFG', '--key', at(aliasArn)],
      { env: withoutRegion },
    );
    expect(minted.stderr).toBe('');
    expect(minted.code).toBe(0);
    await verifyIndependently(minted.stdout.trim(), p8.publicPem);
  });

  it('imports with --wrapping-algorithm RSAES_OAEP_SHA_256', async () => {
    const run = await runCli(
      [
        'import',
        '--from',
        p8.path,
        '--to',
        at('alias/cli-oaep'),
        '--wrapping-algorithm',
        'RSAES_OAEP_SHA_256',
      ],
      { env: awsEnv() },
    );
    expect(run.code).toBe(0);
    const parameters = kms.requests.find((r) => r.operation === 'GetParametersForImport')!;
    expect(parameters.body.WrappingAlgorithm).toBe('RSAES_OAEP_SHA_256');
    expect(run.stderr).toContain('kms-jwt: wrappingAlgorithm: RSAES_OAEP_SHA_256\n');
  });

  it('imports into a PendingImport key with --alias', async () => {
    const key = kms.createKey({ origin: 'EXTERNAL' });
    const run = await runCli(
      ['import', '--from', p8.path, '--to', at(key.arn), '--alias', 'cli-existing'],
      { env: awsEnv() },
    );
    expect(run.code).toBe(0);
    expect(kms.findKey('alias/cli-existing')?.arn).toBe(key.arn);
    expect(key.state).toBe('Enabled');
  });

  it('failed step exits 3 naming step and state', async () => {
    kms.faults = { accessDenied: ['ImportKeyMaterial'] };
    const run = await runCli(['import', '--from', p8.path, '--to', at('alias/cli-denied')], {
      env: awsEnv(),
    });
    expect(run.code).toBe(3);
    expectOneErrorLine(run, 'ERR_AWS_KMS_IMPORT_FAILED');
    expect(run.stderr).toContain('step 4 (ImportKeyMaterial)');
    expect(run.stderr).toContain('left in state PendingImport');
    expect(run.stderr).toContain('kms:ImportKeyMaterial');
  });

  it('unknown wrapping algorithm is a usage error', async () => {
    const run = await runCli(
      ['import', '--from', p8.path, '--to', at('alias/x'), '--wrapping-algorithm', 'RSA_PKCS1'],
      { env: awsEnv() },
    );
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(kms.requests).toEqual([]);
  });

  it('rejects --overwrite before any request', async () => {
    const run = await runCli(
      ['import', '--from', p8.path, '--to', at('alias/cli-overwrite'), '--overwrite'],
      { env: awsEnv() },
    );
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('never replaces imported key material');
    expect(kms.requests).toEqual([]);
  });

  it('writes no key material to any file', async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'kms-jwt-aws-import-'));
    const report = join(scratch, 'report.json');
    const secrets = keySecrets(p8);
    const run = await runCli(['import', '--from', p8.path, '--to', at('alias/cli-no-disk')], {
      env: awsEnv({
        HOME: scratch,
        TMPDIR: scratch,
        NODE_OPTIONS: `--import=${guardPath}`,
        FS_GUARD_SECRETS: secrets.map((secret) => secret.toString('hex')).join(','),
        FS_GUARD_REPORT: report,
      }),
    });
    expect(run.code).toBe(0);

    const guard = JSON.parse(readFileSync(report, 'utf8')) as { active: boolean; leaks: unknown[] };
    expect(guard.active).toBe(true);
    expect(guard.leaks).toEqual([]);
    for (const file of [...listFiles(scratch), ...listFiles(p8.folder)]) {
      if (file === p8.path || file === report) continue;
      const bytes = readFileSync(file);
      for (const secret of secrets) expect(bytes.includes(secret), file).toBe(false);
    }
    rmSync(scratch, { recursive: true, force: true });
  });

  it('write guard catches a planted leak', () => {
    const scratch = mkdtempSync(join(tmpdir(), 'kms-jwt-aws-guard-'));
    const report = join(scratch, 'report.json');
    const secret = keySecrets(p8)[1]!;
    const script = `require('node:fs').writeFileSync(${JSON.stringify(join(scratch, 'leak'))},
      Buffer.from(${JSON.stringify(secret.toString('hex'))}, 'hex').toString('base64'));`;
    const result = spawnSync(process.execPath, [`--import=${guardPath}`, '-e', script], {
      env: {
        PATH: process.env.PATH,
        FS_GUARD_SECRETS: secret.toString('hex'),
        FS_GUARD_REPORT: report,
      },
    });
    expect(result.status).toBe(0);
    const guard = JSON.parse(readFileSync(report, 'utf8')) as { leaks: { name: string }[] };
    expect(guard.leaks).toEqual([expect.objectContaining({ name: 'writeFileSync' })]);
    rmSync(scratch, { recursive: true, force: true });
  });
});

/** Returns the PKCS#8 DER and the private scalar d of a test key, which an import must not leak. */
function keySecrets(key: TestKey): Buffer[] {
  const pkcs8 = key.privateKey.export({ type: 'pkcs8', format: 'der' });
  const d = Buffer.from(key.privateKey.export({ format: 'jwk' }).d!, 'base64url');
  return [pkcs8, d];
}

function listFiles(folder: string): string[] {
  return readdirSync(folder).flatMap((entry) => {
    const path = join(folder, entry);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}
