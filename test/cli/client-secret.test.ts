import {
  chmodSync,
  copyFileSync,
  existsSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildIfStale,
  createTestKey,
  decodePart,
  expectOneErrorLine,
  nowSeconds,
  runCli,
  verifyIndependently,
  type TestKey,
} from './support.js';

const teamId = 'DEF123GHIJ';
const clientId = 'com.example.Web';
let key: TestKey;

function baseArgs(keyPath = key.path): string[] {
  return ['client-secret', '--team-id', teamId, '--client-id', clientId, '--key', keyPath];
}

beforeAll(() => {
  buildIfStale();
  key = createTestKey('ABC123DEFG');
});

afterAll(() => key.remove());

describe('client-secret', () => {
  it('prints the token alone on stdout', async () => {
    const before = nowSeconds();
    const run = await runCli([...baseArgs(), '--lifetime', '1d']);
    const after = nowSeconds();

    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const token = run.stdout.trim();

    const claims = await verifyIndependently(token, key.publicPem);
    expect(decodePart(token, 0)).toEqual({ alg: 'ES256', kid: 'ABC123DEFG' });
    expect(Object.keys(claims).sort()).toEqual(['aud', 'exp', 'iat', 'iss', 'sub']);
    expect(claims.iss).toBe(teamId);
    expect(claims.sub).toBe(clientId);
    expect(claims.aud).toBe('https://appleid.apple.com');
    // exp counts the lifetime from now, and iat is backdated 30 s for clock skew.
    expect(claims.exp).toBe((claims.iat as number) + 30 + 86_400);
    expect(claims.iat).toBeGreaterThanOrEqual(before - 60);
    expect(claims.iat).toBeLessThanOrEqual(after);
  });

  it('defaults to a lifetime of at most 180 days', async () => {
    const run = await runCli(baseArgs());
    const claims = await verifyIndependently(run.stdout.trim(), key.publicPem);
    const lifetime = (claims.exp as number) - (claims.iat as number);
    expect(lifetime).toBeGreaterThan(86_400);
    expect(lifetime).toBeLessThanOrEqual(180 * 86_400 + 60);
  });

  it('prints token, expiry, header and claims with --json', async () => {
    const run = await runCli([...baseArgs(), '--lifetime', '12h', '--json']);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');

    const output = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(Object.keys(output).sort()).toEqual(
      ['claims', 'expiresAt', 'header', 'issuedAt', 'kind', 'token'].sort(),
    );
    const token = output.token as string;
    const claims = await verifyIndependently(token, key.publicPem);
    expect(output.kind).toBe('client-secret');
    expect(output.header).toEqual(decodePart(token, 0));
    expect(output.claims).toEqual(claims);
    expect(output.expiresAt).toBe(new Date((claims.exp as number) * 1000).toISOString());
    expect(output.issuedAt).toBe(new Date((claims.iat as number) * 1000).toISOString());
    expect(output.expiresAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('takes the key ID from the AuthKey file name', async () => {
    const run = await runCli(baseArgs());
    expect(decodePart(run.stdout.trim(), 0).kid).toBe('ABC123DEFG');
  });

  it('warns when --key-id disagrees with the file name', async () => {
    const run = await runCli([...baseArgs(), '--key-id', 'ZZZ999YYYY']);
    expect(run.code).toBe(0);
    expect(decodePart(run.stdout.trim(), 0).kid).toBe('ZZZ999YYYY');
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^kms-jwt: warning: --key-id ZZZ999YYYY differs from .*ABC123DEFG/);
  });

  it('escapes control characters in a warning', async () => {
    const keyId = 'ZZZ\u001b[2J\r\nkms-jwt: error: forged\u202eY';
    const run = await runCli([...baseArgs(), '--key-id', keyId]);
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^kms-jwt: warning: --key-id ZZZ\\u001b\[2J\\u000d\\u000akms-jwt/);
    expect(lines[0]).toContain('forged\\u202eY');
    expect(run.stderr).not.toContain('\u001b');
    expect(run.stderr).not.toContain('\u202e');
    expect(lines.filter((line) => line.startsWith('kms-jwt: error: forged'))).toEqual([]);
  });

  it('reads the key ID from a second download name', async () => {
    const copy = join(key.folder, 'AuthKey_ABC123DEFG (1).p8');
    copyFileSync(key.path, copy);
    chmodSync(copy, 0o600);
    const run = await runCli(baseArgs(copy));
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    expect(decodePart(run.stdout.trim(), 0).kid).toBe('ABC123DEFG');
  });

  it('requires --key-id for other file names', async () => {
    const other = join(key.folder, 'apple-key.p8');
    copyFileSync(key.path, other);
    chmodSync(other, 0o600);

    const missing = await runCli(baseArgs(other));
    expect(missing.code).toBe(2);
    expectOneErrorLine(missing, 'ERR_CLI_USAGE');
    expect(missing.stderr).toContain('--key-id');
    expect(missing.stderr).toContain('AuthKey_<KEYID>.p8');

    const given = await runCli([...baseArgs(other), '--key-id', 'KEY1234567']);
    expect(given.code).toBe(0);
    expect(decodePart(given.stdout.trim(), 0).kid).toBe('KEY1234567');
  });

  it('states its key ID default in --help', async () => {
    const help = await runCli(['client-secret', '--help']);
    expect(help.code).toBe(0);
    // Long rows wrap onto indented lines, so joining those gives back one line per row.
    const rows = help.stdout.replace(/\n {3,}/g, ' ').split('\n');
    const keyIdRow = rows.find((row) => row.startsWith('  --key-id '));
    expect(keyIdRow).toContain('(required, except when --key is a file named AuthKey_<KEYID>.p8)');
  });

  it('enforces the lifetime limit its --help states', async () => {
    const help = await runCli(['client-secret', '--help']);
    const limit = /Lifetimes over (\d+) s are rejected/.exec(help.stdout)?.[1];
    expect(limit).toBeDefined();

    const atLimit = await runCli([...baseArgs(), '--lifetime', String(limit)]);
    expect(atLimit.code).toBe(0);
    expect(atLimit.stderr).toBe('');
    const overLimit = await runCli([...baseArgs(), '--lifetime', String(Number(limit) + 1)]);
    expect(overLimit.code).toBe(4);
    expectOneErrorLine(overLimit, 'ERR_APPLE_LIFETIME_TOO_LONG');
  });

  it('warns when the key file is readable by others', async () => {
    const exposed = createTestKey('OPEN123456');
    try {
      chmodSync(exposed.path, 0o644);
      const run = await runCli(baseArgs(exposed.path));
      expect(run.code).toBe(0);
      await verifyIndependently(run.stdout.trim(), exposed.publicPem);
      const lines = run.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^kms-jwt: warning: Key file .* is readable by group and others/);
      expect(lines[0]).toContain('(mode 0644)');
      expect(lines[0]).toContain('chmod 600');
    } finally {
      exposed.remove();
    }
  });

  it('reads a key from an env: reference', async () => {
    const run = await runCli([...baseArgs('env:APPLE_KEY'), '--key-id', 'ENV1234567'], {
      env: { APPLE_KEY: key.pem },
    });
    expect(run.code).toBe(0);
    await verifyIndependently(run.stdout.trim(), key.publicPem);
  });

  it('reads an encrypted key with --passphrase-env', async () => {
    const encrypted = join(key.folder, 'AuthKey_ENC1234567.p8');
    const pem = createPrivateKey(key.pem).export({
      type: 'pkcs8',
      format: 'pem',
      cipher: 'aes-256-cbc',
      passphrase: 'correct horse battery',
    });
    writeFileSync(encrypted, pem, { mode: 0o600 });

    const run = await runCli([...baseArgs(encrypted), '--passphrase-env', 'KEY_PASS'], {
      env: { KEY_PASS: 'correct horse battery' },
    });
    expect(run.code).toBe(0);
    await verifyIndependently(run.stdout.trim(), key.publicPem);

    const without = await runCli(baseArgs(encrypted));
    expect(without.code).toBe(3);
    expectOneErrorLine(without, 'ERR_KEY_[A-Z_]+');
    expect(without.stderr).toMatch(/encrypted/i);

    const wrong = await runCli([...baseArgs(encrypted), '--passphrase-env', 'KEY_PASS'], {
      env: { KEY_PASS: 'wrong passphrase here' },
    });
    expect(wrong.code).toBe(3);
    expect(wrong.stderr).not.toContain('wrong passphrase here');
  });

  it('rejects an invalid team ID before signing', async () => {
    const run = await runCli([
      'client-secret',
      '--team-id',
      'not-a-team',
      '--client-id',
      clientId,
      '--key',
      key.path,
    ]);
    expect(run.code).toBe(4);
    expectOneErrorLine(run, 'ERR_[A-Z_]+');
    expect(run.stderr).toMatch(/team/i);
  });

  it('rejects a lifetime beyond the Apple limit', async () => {
    const run = await runCli([...baseArgs(), '--lifetime', '183d']);
    expect(run.code).toBe(4);
    expectOneErrorLine(run, 'ERR_[A-Z_]+');
  });

  it('rejects a malformed lifetime', async () => {
    const run = await runCli([...baseArgs(), '--lifetime', '10 days']);
    expect(run.code).toBe(4);
    expectOneErrorLine(run, 'ERR_DURATION_INVALID');
  });

  it('names every missing required option', async () => {
    const run = await runCli(['client-secret', '--key', key.path]);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('--team-id');
    expect(run.stderr).toContain('--client-id');
  });

  it('reports a missing key file with exit code 3', async () => {
    const run = await runCli(baseArgs(join(key.folder, 'AuthKey_NOPE123456.p8')));
    expect(run.code).toBe(3);
    expectOneErrorLine(run, 'ERR_KEY_[A-Z_]+');
  });

  it('matches "mint client-secret" exactly in shape', async () => {
    const run = await runCli(['mint', ...baseArgs(), '--json']);
    expect(run.code).toBe(0);
    const output = JSON.parse(run.stdout) as { kind: string; token: string };
    expect(output.kind).toBe('client-secret');
    await verifyIndependently(output.token, key.publicPem);
  });
});

describe('client-secret --cache', () => {
  it('reuses a still-valid token from a 0600 file', async () => {
    const cache = join(key.folder, 'secret-cache.json');
    const first = await runCli([...baseArgs(), '--cache', cache, '--json']);
    expect(first.code).toBe(0);
    const firstOutput = JSON.parse(first.stdout) as { token: string; cache: string };
    expect(firstOutput.cache).toBe('miss');
    expect(statSync(cache).mode & 0o777).toBe(0o600);
    await verifyIndependently(firstOutput.token, key.publicPem);

    const second = await runCli([...baseArgs(), '--cache', cache]);
    expect(second.code).toBe(0);
    expect(second.stdout.trim()).toBe(firstOutput.token);

    const secondJson = await runCli([...baseArgs(), '--cache', cache, '--json']);
    const secondOutput = JSON.parse(secondJson.stdout) as Record<string, unknown>;
    expect(secondOutput.cache).toBe('hit');
    expect(secondOutput.token).toBe(firstOutput.token);
    expect(secondOutput.claims).toEqual(decodePart(firstOutput.token, 1));
  });

  it('mints a new token when a flag changes', async () => {
    const cache = join(key.folder, 'changing-cache.json');
    const first = await runCli([...baseArgs(), '--cache', cache]);
    const other = await runCli([...baseArgs(), '--cache', cache, '--lifetime', '2d']);
    expect(other.code).toBe(0);
    expect(other.stdout).not.toBe(first.stdout);
    const claims = await verifyIndependently(other.stdout.trim(), key.publicPem);
    expect((claims.exp as number) - (claims.iat as number)).toBe(30 + 2 * 86_400);
  });

  it('does not open the key on a cache hit', async () => {
    const moved = createTestKey('MOVE123456');
    const cache = join(moved.folder, 'cache.json');
    try {
      const first = await runCli([...baseArgs(moved.path), '--cache', cache]);
      expect(first.code).toBe(0);
      writeFileSync(moved.path, 'not a key any more', { mode: 0o600 });
      const second = await runCli([...baseArgs(moved.path), '--cache', cache]);
      expect(second.code).toBe(0);
      expect(second.stdout).toBe(first.stdout);
    } finally {
      moved.remove();
    }
  });

  it('never writes the token to stderr', async () => {
    const cache = join(key.folder, 'quiet-cache.json');
    const run = await runCli([...baseArgs(), '--cache', cache]);
    expect(run.stderr).toBe('');
    expect(existsSync(cache)).toBe(true);
    expect(readFileSync(cache, 'utf8')).toContain(run.stdout.trim());
  });
});
