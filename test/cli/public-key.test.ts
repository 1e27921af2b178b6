import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { chmodSync, closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale, cliPath, createTestKey, runCli, type TestKey } from './support.js';

let key: TestKey;
let thumbprint: string;

beforeAll(async () => {
  buildIfStale();
  key = createTestKey();
  thumbprint = await calculateJwkThumbprint(await exportJWK(key.publicKey), 'sha256');
});

afterAll(() => key.remove());

describe('public-key', () => {
  it('prints the SPKI PEM, thumbprint on stderr', async () => {
    const run = await runCli(['public-key', '--key', key.path]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(key.publicPem);
    expect(run.stderr).toBe(`kms-jwt: thumbprint: ${thumbprint}\n`);
  });

  it('prints a one-line JWK with --format jwk', async () => {
    const run = await runCli(['public-key', '--key', key.path, '--format', 'jwk']);
    expect(run.code).toBe(0);
    expect(run.stdout.endsWith('\n')).toBe(true);
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
    const jwk = JSON.parse(run.stdout) as Record<string, string>;
    expect(jwk).toEqual(await exportJWK(key.publicKey));
    expect(jwk).not.toHaveProperty('d');
    expect(createPublicKey({ key: jwk, format: 'jwk' }).equals(key.publicKey)).toBe(true);
    expect(run.stderr).toBe(`kms-jwt: thumbprint: ${thumbprint}\n`);
  });

  it('prints the thumbprint alone with --format thumbprint', async () => {
    const run = await runCli(['public-key', '--key', key.path, '--format', 'thumbprint']);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`${thumbprint}\n`);
    expect(run.stderr).toBe('');
  });

  it('reads an env: reference', async () => {
    const run = await runCli(['public-key', '--key', 'env:THE_KEY', '--format', 'thumbprint'], {
      env: { THE_KEY: key.pem },
    });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`${thumbprint}\n`);
  });
});

describe('public-key from public material', () => {
  it('reads PUBLIC KEY PEM and JWK files', async () => {
    const pemPath = join(key.folder, 'public-only.pem');
    writeFileSync(pemPath, key.publicPem, { mode: 0o644 });
    const jwkPath = join(key.folder, 'public-only.jwk');
    writeFileSync(jwkPath, JSON.stringify(await exportJWK(key.publicKey)), { mode: 0o644 });

    for (const path of [pemPath, jwkPath]) {
      const run = await runCli(['public-key', '--key', path]);
      expect(run.code).toBe(0);
      expect(run.stdout).toBe(key.publicPem);
      // A public file is not a secret, so mode 0644 draws no permission warning.
      expect(run.stderr).toBe(`kms-jwt: thumbprint: ${thumbprint}\n`);
    }
  });

  it('reads an X.509 certificate file', async () => {
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
    const run = await runCli(['public-key', '--key', certPath, '--format', 'jwk']);
    expect(run.code).toBe(0);
    const jwk = JSON.parse(run.stdout) as Record<string, string>;
    expect(createPublicKey({ key: jwk, format: 'jwk' }).equals(key.publicKey)).toBe(true);
    expect(run.stderr).toBe(`kms-jwt: thumbprint: ${thumbprint}\n`);
  });

  it('reads a public key from an env: reference', async () => {
    const run = await runCli(['public-key', '--key', 'env:PUB', '--format', 'thumbprint'], {
      env: { PUB: key.publicPem },
    });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`${thumbprint}\n`);
  });

  it('still warns about a private key file others can read', async () => {
    const loose = join(key.folder, 'loose.p8');
    writeFileSync(loose, key.pem, { mode: 0o644 });
    chmodSync(loose, 0o644);
    const run = await runCli(['public-key', '--key', loose, '--format', 'thumbprint']);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`${thumbprint}\n`);
    expect(run.stderr).toMatch(/^kms-jwt: warning: .*loose\.p8/);
  });

  it('warns about private keys without PEM text', async () => {
    const jwk = await exportJWK(key.privateKey);
    // JSON lets a member name be written with \u escapes, so this text contains no '"d"'.
    const escapedJwk = JSON.stringify(jwk).replace('"d":', '"\\u0064":');
    const der = key.privateKey.export({ type: 'pkcs8', format: 'der' });
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(key.pem, 'utf16le')]);
    const files: Array<[string, string | Buffer]> = [
      ['loose.der', der],
      ['loose-utf16.pem', utf16],
      ['loose-escaped.jwk', escapedJwk],
    ];

    for (const [name, content] of files) {
      const loose = join(key.folder, name);
      writeFileSync(loose, content, { mode: 0o644 });
      chmodSync(loose, 0o644);
      const run = await runCli(['public-key', '--key', loose, '--format', 'thumbprint']);
      expect(run.code).toBe(0);
      expect(run.stdout).toBe(`${thumbprint}\n`);
      expect(run.stderr).toMatch(new RegExp(`^kms-jwt: warning: Key file .*${name}.*mode 0644`));
    }
  });

  it('names the real file behind /dev/stdin', () => {
    const loose = join(key.folder, 'redirected.p8');
    writeFileSync(loose, key.pem, { mode: 0o644 });
    chmodSync(loose, 0o644);
    const input = openSync(loose, 'r');
    // As after `kms-jwt public-key --key /dev/stdin < redirected.p8`.
    const run = spawnSync(process.execPath, [cliPath, 'public-key', '--key', '/dev/stdin'], {
      encoding: 'utf8',
      stdio: [input, 'pipe', 'pipe'],
    });
    closeSync(input);

    expect(run.status).toBe(0);
    expect(run.stdout).toBe(key.publicPem);
    const warning = run.stderr.split('\n')[0]!;
    expect(warning).toMatch(/^kms-jwt: warning: Key file \/dev\/stdin \(.*redirected\.p8\) /);
    expect(warning).toContain(`chmod 600 ${loose}`);
    expect(warning).not.toContain('chmod 600 /dev/stdin');
  });

  it('does not warn about a public DER file', async () => {
    const loose = join(key.folder, 'public.der');
    writeFileSync(loose, key.publicKey.export({ type: 'spki', format: 'der' }), { mode: 0o644 });
    chmodSync(loose, 0o644);
    const run = await runCli(['public-key', '--key', loose, '--format', 'thumbprint']);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`${thumbprint}\n`);
    expect(run.stderr).toBe('');
  });

  it('reads a key from a pipe', () => {
    // bash's <(...) hands the CLI a pipe such as /dev/fd/63, which can be read only once.
    const publicPath = join(key.folder, 'piped.pub.pem');
    writeFileSync(publicPath, key.publicPem);
    for (const path of [publicPath, key.path]) {
      const command = `"$NODE" "$CLI" public-key --key <(cat "$KEY_FILE") --format thumbprint`;
      const run = spawnSync('bash', ['-c', command], {
        env: { PATH: process.env.PATH ?? '', NODE: process.execPath, CLI: cliPath, KEY_FILE: path },
        encoding: 'utf8',
        // With stdin a socket, bash acts as a remote shell and reads ~/.bashrc.
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      expect(run.stdout).toBe(`${thumbprint}\n`);
    }
  });

  it('reads an encrypted key with --passphrase-env', async () => {
    const encrypted = join(key.folder, 'encrypted.p8');
    const pem = createPrivateKey(key.pem).export({
      type: 'pkcs8',
      format: 'pem',
      cipher: 'aes-256-cbc',
      passphrase: 'correct horse battery',
    });
    writeFileSync(encrypted, pem, { mode: 0o600 });
    const args = ['public-key', '--key', encrypted, '--format', 'thumbprint'];

    const run = await runCli([...args, '--passphrase-env', 'KEY_PASS'], {
      env: { KEY_PASS: 'correct horse battery' },
    });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`${thumbprint}\n`);

    const without = await runCli(args);
    expect(without.code).toBe(3);
    expect(without.stderr).toMatch(/^kms-jwt: error: \[ERR_KEY_ENCRYPTED\] /);
  });

  it('reports a file with no key by its code', async () => {
    const empty = join(key.folder, 'not-a-key.pem');
    writeFileSync(empty, 'hello\n');
    const run = await runCli(['public-key', '--key', empty]);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/^kms-jwt: error: \[ERR_KEY_[A-Z0-9_]+\] /);
    expect(run.stdout).toBe('');
  });
});
