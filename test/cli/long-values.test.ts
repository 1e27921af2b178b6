// A script that passes the wrong value can hand the CLI a 100 KB path or name. Each error names
// the value, cut to its start and end, in one line of reasonable length.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildIfStale,
  createTestKey,
  expectOneErrorLine,
  runCli,
  type TestKey,
} from './support.js';

const longName = 'a'.repeat(100_000);
// Long enough for a message with a cut value, short enough to catch a value printed whole.
const maxLineLength = 1_000;
let key: TestKey;

beforeAll(() => {
  buildIfStale();
  key = createTestKey('ABC123DEFG');
});

afterAll(() => key.remove());

function clientSecretArgs(keyPath: string): string[] {
  return ['client-secret', '--key', keyPath, '--team-id', 'DEF123GHIJ', '--client-id', 'x'];
}

describe('long values in errors', () => {
  it('cuts a 100 KB key path', async () => {
    const path = `/tmp/${longName}/AuthKey_ABC123DEFG.p8`;
    const run = await runCli(clientSecretArgs(path));
    expect(run.code).toBe(3);
    expectOneErrorLine(run, 'ERR_KEY_FILE_UNREADABLE');
    expect(run.stderr.length).toBeLessThan(maxLineLength);
    expect(run.stderr).toContain('characters cut');
    expect(run.stderr).toContain('aaa/AuthKey_ABC123DEFG.p8');
  });

  it('cuts a 100 KB cache path', async () => {
    const cache = join(key.folder, longName, 'cache.json');
    const run = await runCli([...clientSecretArgs(key.path), '--cache', cache]);
    expect(run.code).toBe(5);
    expectOneErrorLine(run, 'ERR_CACHE_FILE_IO');
    expect(run.stderr.length).toBeLessThan(maxLineLength);
    expect(run.stderr).toContain('characters cut');
    expect(run.stderr).toContain('aaa/cache.json');
  });

  it('cuts a 100 KB command name', async () => {
    const run = await runCli([longName]);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr.length).toBeLessThan(maxLineLength);
    expect(run.stderr).toContain('characters cut');
  });

  it('cuts a 100 KB option name', async () => {
    const run = await runCli(['verify', `--${longName}`, '--key', key.path]);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr.length).toBeLessThan(maxLineLength);
    expect(run.stderr).toContain('characters cut');
  });

  it('cuts a 100 KB variable name', async () => {
    const runs = [
      await runCli([...clientSecretArgs(key.path), '--passphrase-env', longName.toUpperCase()]),
      await runCli(['public-key', '--key', `env:${longName}`]),
    ];
    expectOneErrorLine(runs[0]!, 'ERR_CLI_ENV_NOT_SET');
    expectOneErrorLine(runs[1]!, 'ERR_KEY_ENV_UNSET');
    for (const run of runs) {
      expect(run.stderr.length).toBeLessThan(maxLineLength);
      expect(run.stderr).toContain('characters cut');
    }
  });

  it('cuts a 100 KB passphrase variable name', async () => {
    const run = await runCli(['public-key', '--key', key.path, '--passphrase-env', longName], {
      env: { [longName]: 'unused passphrase' },
    });
    expect(run.code).toBe(0);
    // The key is not encrypted, so the variable draws the passphrase-unused warning.
    const warning = run.stderr.split('\n').find((line) => line.includes('warning'));
    expect(warning).toBeDefined();
    expect(warning!.length).toBeLessThan(maxLineLength);
    expect(warning).toContain('characters cut');
  });

  it('cuts a 100 KB --key-id in its warning', async () => {
    const run = await runCli([...clientSecretArgs(key.path), '--key-id', longName]);
    const warning = run.stderr.split('\n').find((line) => line.includes('warning'));
    expect(warning).toBeDefined();
    expect(warning!.length).toBeLessThan(maxLineLength);
    expect(warning).toContain('characters cut');
  });

  it('cuts a 100 KB token kind', async () => {
    const run = await runCli(['mint', longName, '--key', key.path]);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr.length).toBeLessThan(maxLineLength);
    expect(run.stderr).toContain('characters cut');
  });

  it('hides a token kind that is no word', async () => {
    const run = await runCli(['mint', 'pkcs11:token=apple?pin-value=731954']);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('not shown, because it is not a kind name');
    expect(run.stderr).not.toContain('731954');
  });

  it('cuts a 100 KB --format or --kind', async () => {
    const runs = [
      await runCli(['public-key', '--key', key.path, '--format', longName]),
      await runCli(['inspect', 'a.b.c', '--kind', longName]),
    ];
    for (const run of runs) {
      expectOneErrorLine(run, 'ERR_CLI_USAGE');
      expect(run.stderr.length).toBeLessThan(maxLineLength);
      expect(run.stderr).toContain('characters cut');
    }
  });

  it('hides a --format or --kind that is no word', async () => {
    const value = 'pkcs11:token=apple?pin-value=731954';
    const runs = [
      await runCli(['public-key', '--key', key.path, '--format', value]),
      await runCli(['inspect', 'a.b.c', '--kind', value]),
    ];
    for (const run of runs) {
      expectOneErrorLine(run, 'ERR_CLI_USAGE');
      expect(run.stderr).toContain('not shown');
      expect(run.stderr).not.toContain('731954');
    }
  });

  it('cuts a 100 KB expected claim in verify', async () => {
    const token = (await runCli([...clientSecretArgs(key.path), '--key-id', 'ABC123DEFG'])).stdout;
    for (const flag of ['--aud', '--iss', '--sub']) {
      const run = await runCli(['verify', '--key', key.path, flag, longName, token.trim()]);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`but ${flag} expects "aaa`);
      expect(run.stderr.length).toBeLessThan(maxLineLength);
    }
  });

  it('keeps surrogate pairs whole in verify', async () => {
    const token = (await runCli([...clientSecretArgs(key.path), '--key-id', 'ABC123DEFG'])).stdout;
    // One ASCII character first, so that the cut at 117 UTF-16 units falls inside a pair.
    const expected = `a${'\u{1F600}'.repeat(200)}`;
    const run = await runCli(['verify', '--key', key.path, '--aud', expected, token.trim()]);
    expect(run.code).toBe(1);
    expect(run.stderr).not.toContain('\uFFFD');
    expect(run.stderr).toContain('\u{1F600}...');
  });

  it.each([
    ['a scheme', `${longName}:x`],
    // Linux caps one argument at 128 KiB, so the name that occurs twice is half as long.
    ['a repeated attribute', `pkcs11:${longName.slice(50_000)}=1;${longName.slice(50_000)}=2`],
    ['a pkcs11 query attribute', `pkcs11:token=a?${longName}=1`],
    ['a pkcs11 type', `pkcs11:token=a;type=${longName}`],
    ['a pkcs11 slot-id', `pkcs11:token=a;slot-id=${longName}`],
    ['a pkcs11 library-version', `pkcs11:token=a;library-version=${longName}`],
    ['a pkcs11 module path', `pkcs11:token=a;object=b?module-path=/nonexistent/${longName}.so`],
    ['an awskms attribute', `awskms:key-id=alias/x;${longName}=1`],
    [
      'a pkcs11 pin-source path',
      // Any regular file passes the module check, and the PIN file is read before the module.
      `pkcs11:token=a;object=b?module-path=${process.execPath}&pin-source=file:/${longName}`,
    ],
    [
      'a gcpkms resource',
      `gcpkms:projects/${longName}/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1` +
        '?endpoint=127.0.0.1:9&plaintext=true',
    ],
  ])('cuts %s in a key reference', async (_name, reference) => {
    const run = await runCli(['public-key', '--key', reference]);
    expect(run.stderr).toMatch(/^kms-jwt: error: \[ERR_(KEY|PKCS11|AWS|GCP)_[A-Z0-9_]+\] /);
    expect(run.stderr.length).toBeLessThan(maxLineLength);
    expect(run.stderr).toContain('characters cut');
  });
});
