import { sign, X509Certificate } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildIfStale,
  cliPath,
  createTestKey,
  expectOneErrorLine,
  nowSeconds,
  runCli,
  type TestKey,
} from './support.js';

let key: TestKey;
let otherKey: TestKey;

/** Signs a JWS with node:crypto, in the JOSE r||s form or, to test rejection, in DER. */
function signToken(
  claims: Record<string, unknown>,
  options: { der?: boolean; header?: Record<string, unknown>; signer?: TestKey } = {},
): string {
  const header = options.header ?? { alg: 'ES256', kid: 'ABC123DEFG' };
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = `${encode(header)}.${encode(claims)}`;
  const dsaEncoding = options.der ? 'der' : 'ieee-p1363';
  const privateKey = (options.signer ?? key).privateKey;
  const signature = sign('sha256', Buffer.from(signingInput), { key: privateKey, dsaEncoding });
  return `${signingInput}.${signature.toString('base64url')}`;
}

function clientSecretClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSeconds();
  return {
    iss: 'DEF123GHIJ',
    iat: now - 30,
    exp: now + 3600,
    aud: 'https://appleid.apple.com',
    sub: 'com.example.web',
    ...overrides,
  };
}

function expectInvalid(
  run: { code: number | null; stdout: string; stderr: string },
  reason: RegExp,
) {
  expect(run.code).toBe(1);
  expect(run.stdout).toBe('');
  const lines = run.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^kms-jwt: invalid: /);
  expect(lines[0]).toMatch(reason);
}

beforeAll(() => {
  buildIfStale();
  key = createTestKey('ABC123DEFG');
  otherKey = createTestKey('OTHER12345');
});

afterAll(() => {
  key.remove();
  otherKey.remove();
});

describe('verify', () => {
  it('accepts a valid token with the private key file', async () => {
    const run = await runCli(['verify', signToken(clientSecretClaims()), '--key', key.path]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('valid\n');
    expect(run.stderr).toBe('');
  });

  it('verifies a token the CLI minted', async () => {
    const minted = await runCli([
      'client-secret',
      '--team-id',
      'DEF123GHIJ',
      '--client-id',
      'com.example.web',
      '--key',
      key.path,
    ]);
    expect(minted.code).toBe(0);
    const run = await runCli(
      ['verify', '-', '--key', key.path, '--aud', 'https://appleid.apple.com'],
      {
        input: minted.stdout,
      },
    );
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('valid\n');
  });

  it('warns once for an exposed private key file', async () => {
    const exposed = join(key.folder, 'exposed-private.p8');
    writeFileSync(exposed, key.pem);
    chmodSync(exposed, 0o644);
    const run = await runCli(['verify', signToken(clientSecretClaims()), '--key', exposed]);
    expect(run.code).toBe(0);
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^kms-jwt: warning: Key file .* readable by group and others/);
  });

  it('stays quiet for a public key file', async () => {
    const publicFile = join(key.folder, 'public-0644.pem');
    writeFileSync(publicFile, key.publicPem);
    chmodSync(publicFile, 0o644);
    const run = await runCli(['verify', signToken(clientSecretClaims()), '--key', publicFile]);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
  });

  it('reads the token from stdin with -', async () => {
    const token = signToken(clientSecretClaims());
    const run = await runCli(['verify', '-', '--key', key.path], { input: `${token}\n` });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('valid\n');
  });

  it('rejects empty stdin as a usage error', async () => {
    const run = await runCli(['verify', '-', '--key', key.path], { input: '\n' });
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('stdin is empty');
  });

  it('rejects a missing TOKEN as a usage error', async () => {
    const run = await runCli(['verify', '--key', key.path]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('TOKEN is missing');
  });

  it('accepts public key PEM, JWK and certificate files', async () => {
    const token = signToken(clientSecretClaims());
    const pemPath = join(key.folder, 'public.pem');
    writeFileSync(pemPath, key.publicPem);
    const jwkPath = join(key.folder, 'public.jwk');
    writeFileSync(jwkPath, JSON.stringify(await exportJWK(key.publicKey)));

    for (const path of [pemPath, jwkPath]) {
      const run = await runCli(['verify', token, '--key', path]);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
    }

    const certPath = join(key.folder, 'cert.pem');
    execFileSync('openssl', [
      'req',
      '-new',
      '-x509',
      '-key',
      key.path,
      '-subj',
      '/CN=kms-jwt test',
      '-days',
      '1',
      '-out',
      certPath,
    ]);
    expect(
      new X509Certificate(execFileSync('cat', [certPath])).publicKey.equals(key.publicKey),
    ).toBe(true);
    const run = await runCli(['verify', token, '--key', certPath]);
    expect(run.code).toBe(0);
  });

  it('accepts an env: key reference', async () => {
    const run = await runCli(['verify', signToken(clientSecretClaims()), '--key', 'env:K'], {
      env: { K: key.pem },
    });
    expect(run.code).toBe(0);
  });

  it('reads a public key from a pipe', () => {
    // bash's <(...) hands the CLI a pipe such as /dev/fd/63, which can be read only once.
    const publicPath = join(key.folder, 'piped.pub.pem');
    writeFileSync(publicPath, key.publicPem);
    const command = `"$NODE" "$CLI" verify "$TOKEN" --key <(cat "$KEY_FILE")`;
    const run = spawnSync('bash', ['-c', command], {
      env: {
        PATH: process.env.PATH ?? '',
        NODE: process.execPath,
        CLI: cliPath,
        KEY_FILE: publicPath,
        TOKEN: signToken(clientSecretClaims()),
      },
      encoding: 'utf8',
      // With stdin a socket, bash acts as a remote shell and reads ~/.bashrc.
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toBe('valid\n');
  });

  it('accepts a public key in an env: reference', async () => {
    const run = await runCli(['verify', signToken(clientSecretClaims()), '--key', 'env:PUB'], {
      env: { PUB: key.publicPem },
    });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
  });

  it('rejects a signature from another key', async () => {
    const token = signToken(clientSecretClaims(), { signer: otherKey });
    expectInvalid(await runCli(['verify', token, '--key', key.path]), /does not verify/);
  });

  it('says how to check a key that does not match', async () => {
    const token = signToken(clientSecretClaims(), { signer: otherKey });
    const run = await runCli(['verify', token, '--key', key.path]);
    expectInvalid(run, /does not verify/);
    expect(run.stderr).toContain('kms-jwt public-key --key REF --format thumbprint');
  });

  it('rejects a tampered payload', async () => {
    const token = signToken(clientSecretClaims());
    const [header, , signature] = token.split('.');
    const forged = Buffer.from(JSON.stringify(clientSecretClaims({ sub: 'com.evil' }))).toString(
      'base64url',
    );
    const run = await runCli(['verify', `${header}.${forged}.${signature}`, '--key', key.path]);
    expectInvalid(run, /does not verify/);
  });

  it('names a DER signature as DER', async () => {
    const token = signToken(clientSecretClaims(), { der: true });
    const run = await runCli(['verify', token, '--key', key.path]);
    expectInvalid(run, /bytes of ASN\.1 DER, but ES256 needs the 64-byte r\|\|s form/);
    expect(run.stderr).toContain('invalid_client');
  });

  it('rejects a signature of another length', async () => {
    const token = signToken(clientSecretClaims());
    const short = `${token.slice(0, token.lastIndexOf('.'))}.${Buffer.alloc(63, 7).toString('base64url')}`;
    expectInvalid(
      await runCli(['verify', short, '--key', key.path]),
      /63 bytes, but ES256 needs exactly 64/,
    );
  });

  it('rejects another alg', async () => {
    const token = signToken(clientSecretClaims(), { header: { alg: 'HS256' } });
    expectInvalid(await runCli(['verify', token, '--key', key.path]), /alg is "HS256"/);
  });

  it('rejects an expired token', async () => {
    const token = signToken(
      clientSecretClaims({ iat: nowSeconds() - 7200, exp: nowSeconds() - 3600 }),
    );
    expectInvalid(await runCli(['verify', token, '--key', key.path]), /expired 1 hour ago/);
  });

  it('rejects a token before nbf', async () => {
    const token = signToken(clientSecretClaims({ nbf: nowSeconds() + 600 }));
    expectInvalid(await runCli(['verify', token, '--key', key.path]), /not valid yet/);
  });

  it.each([
    ['--aud', 'https://example.com', /aud is "https:\/\/appleid.apple.com", but --aud expects/],
    ['--iss', 'OTHER12345', /iss is "DEF123GHIJ", but --iss expects "OTHER12345"/],
    ['--sub', 'com.example.Web', /sub is "com.example.web", but --sub expects/],
  ])('rejects a wrong %s', async (flag, value, reason) => {
    const token = signToken(clientSecretClaims());
    expectInvalid(await runCli(['verify', token, '--key', key.path, flag, value]), reason);
  });

  it('accepts matching --aud, --iss and --sub', async () => {
    const token = signToken(clientSecretClaims({ aud: ['x', 'https://appleid.apple.com'] }));
    const run = await runCli([
      'verify',
      token,
      '--key',
      key.path,
      '--aud',
      'https://appleid.apple.com',
      '--iss',
      'DEF123GHIJ',
      '--sub',
      'com.example.web',
    ]);
    expect(run.code).toBe(0);
  });

  it.each([
    ['one part', 'eyJhbGciOiJFUzI1NiJ9', /the token has 1 dot-separated part,/],
    ['two parts', 'eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0', /2 dot-separated parts/],
    ['bad base64url', 'eyJhbGciOiJFUzI1NiJ9.eyJ*c3MiOiJ4In0.AAAA', /payload part is not base64url/],
    [
      'non-JSON header',
      `${Buffer.from('{alg:ES256 secretvalue').toString('base64url')}.e30.AAAA`,
      /header part is not valid JSON/,
    ],
  ])('rejects a malformed token: %s', async (_name, token, reason) => {
    const run = await runCli(['verify', token, '--key', key.path]);
    expectInvalid(run, reason);
    expect(run.stderr).not.toContain(token.split('.')[0]);
    expect(run.stderr).not.toContain('secretvalue');
  });

  it('never prints the token in an error', async () => {
    const token = signToken(clientSecretClaims(), { signer: otherKey });
    const run = await runCli(['verify', token, '--key', `${key.folder}/none.p8`], {
      env: { KMS_JWT_DEBUG: '1' },
    });
    expect(run.code).toBe(3);
    for (const part of token.split('.')) expect(run.stderr).not.toContain(part);
  });
});
