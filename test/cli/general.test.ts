import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildIfStale,
  cliPath,
  createTestKey,
  expectOneErrorLine,
  runCli,
  type TestKey,
} from './support.js';

let key: TestKey;

beforeAll(() => {
  buildIfStale();
  key = createTestKey();
});

afterAll(() => key.remove());

describe('kms-jwt help', () => {
  it.each([[[]], [['--help']], [['-h']], [['help']]])('prints tool help for %j', async (args) => {
    const run = await runCli(args);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    for (const command of [
      'client-secret',
      'mint KIND',
      'verify',
      'inspect',
      'public-key',
      'import',
    ]) {
      expect(run.stdout).toContain(`  ${command}`);
    }
    expect(run.stdout).toMatch(/Exit codes: 0 ok, 1 .*2 usage error, 3 key or backend error/s);
  });

  it.each(['client-secret', 'verify', 'inspect', 'public-key', 'import'])(
    'prints help for %s',
    async (command) => {
      const run = await runCli([command, '--help']);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`^Usage: kms-jwt ${command} `));
      expect(run.stderr).toBe('');

      const viaHelp = await runCli(['help', command]);
      expect(viaHelp.stdout).toBe(run.stdout);
    },
  );

  it('prints the package version', async () => {
    const run = await runCli(['--version']);
    const manifest = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`${manifest.version}\n`);
  });
});

describe('kms-jwt usage errors', () => {
  it('rejects an unknown command', async () => {
    const run = await runCli(['sign-everything']);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('Unknown command "sign-everything"');
    expect(run.stderr).toContain('Run "kms-jwt --help" for the commands.');
  });

  it('names a missing command before an option', async () => {
    const run = await runCli(['--team-id', 'DEF123GHIJ', '--key', key.path]);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('Missing command before --team-id');
    expect(run.stderr).toContain('such as client-secret');
    expect(run.stderr).toContain('Run "kms-jwt --help" for the commands.');
  });

  it('hides the value of an option before the command', async () => {
    const run = await runCli(['--passphrase=hunter2-secret', 'client-secret']);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('Missing command before --passphrase');
    expect(run.stderr).not.toContain('hunter2');
  });

  it.each([
    ['client-secret', '--team-id', 'DEF123GHIJ', '--client-id', 'com.example.web'],
    ['public-key'],
  ])('suggests --key for a positional key in %s', async (...command) => {
    const run = await runCli([...command, key.path]);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('Too many arguments');
    expect(run.stderr).toContain('. Give the key with --key REF');
  });

  it('suggests no --key when --key is given', async () => {
    const run = await runCli(['public-key', '--key', key.path, 'extra']);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('Too many arguments');
    expect(run.stderr).not.toContain('Give the key with --key');
  });

  it.each([
    [['client-secret', '--clientid', 'com.example.web'], '--client-id'],
    [['client-secret', '--teamId', 'DEF123GHIJ'], '--team-id'],
    [['client-secret', '--passphrase', 'x'], '--passphrase-env'],
    [['client-secret', '--key_id', 'ABC123DEFG'], '--key-id'],
    [['verify', '-', '--audience', 'https://appleid.apple.com'], '--aud'],
    [['public-key', '--formt', 'jwk'], '--format'],
  ])('suggests the nearest option for %j', async (args, nearest) => {
    const run = await runCli(args);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain(`(the nearest option is ${nearest})`);
  });

  it('suggests no option for an unrelated name', async () => {
    const run = await runCli(['client-secret', '--sign-everything']);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('Unknown option --sign-everything.');
    expect(run.stderr).not.toContain('nearest');
  });

  it('points an unknown kind at the kinds', async () => {
    const run = await runCli(['mint', 'apple-pay', '--key', key.path]);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('Run "kms-jwt mint --help" for the kinds.');
  });

  it('rejects an unknown option without echoing its value', async () => {
    const secret = 'eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl';
    const run = await runCli(['verify', `--tokn=${secret}`, '--key', key.path]);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('Unknown option --tokn');
    expect(run.stderr).not.toContain('eyJ');
  });

  it.each([
    ['a pkcs11 PIN', 'pkcs11:token=apple;object=siwa?pin-value=731954', '731954'],
    ['a key body', 'MIGTAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBHkwdwIBAQQgN2Kx', 'MIGTAgEA'],
    ['a bare PIN', '731954', '731954'],
    ['a token', 'eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl', 'c2lnbmF0dXJl'],
  ])('hides %s given as the command', async (_name, argument, secret) => {
    for (const args of [[argument], ['help', argument]]) {
      const run = await runCli(args);
      expect(run.code).toBe(2);
      expectOneErrorLine(run, 'ERR_CLI_USAGE');
      expect(run.stderr).toContain('the first argument is not a command name');
      expect(run.stderr).not.toContain(secret);
    }
  });

  it('hides a PIN in an option before the command', async () => {
    const run = await runCli(['--key=pkcs11:token=apple?pin-value=731954', 'client-secret']);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('Missing command before --key:');
    expect(run.stderr).not.toContain('731954');
  });

  it('rejects extra positionals without echoing them', async () => {
    const run = await runCli(['verify', 'a.b.c', 'eyJsecretsecret', '--key', key.path]);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).not.toContain('secretsecret');
  });

  it('rejects an option that swallows the next option', async () => {
    const run = await runCli(['public-key', '--key', '--format', 'pem']);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('Option --key needs a value');
  });

  it('rejects a value given to a boolean option', async () => {
    const run = await runCli(['client-secret', '--json=yes', '--key', key.path]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('Option --json takes no value');
  });

  it('rejects a repeated single-value option', async () => {
    const run = await runCli(['public-key', '--key', key.path, '--key', key.path]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('Option --key is given more than once');
  });

  it('rejects a missing required option', async () => {
    const run = await runCli(['public-key']);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('Option --key is required');
  });

  it('rejects an unknown public-key format', async () => {
    const run = await runCli(['public-key', '--key', key.path, '--format', 'der']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--format must be pem, jwk or thumbprint');
  });
});

describe('kms-jwt error output', () => {
  it('prints one line without a stack trace by default', async () => {
    const run = await runCli(['public-key', '--key', `${key.folder}/missing.p8`]);
    expect(run.code).toBe(3);
    expectOneErrorLine(run, 'ERR_KEY_[A-Z_]+');
  });

  it('adds the stack trace with KMS_JWT_DEBUG=1', async () => {
    const run = await runCli(['public-key', '--key', `${key.folder}/missing.p8`], {
      env: { KMS_JWT_DEBUG: '1' },
    });
    expect(run.code).toBe(3);
    expect(run.stderr.split('\n')[0]).toMatch(/^kms-jwt: error: \[ERR_KEY_[A-Z_]+\] /);
    expect(run.stderr).toMatch(/\n\s+at /);
  });

  it('keeps key text out of errors and debug traces', async () => {
    const body = key.pem.split('\n')[1]!;
    const broken = key.pem.replace(body, `${body.slice(0, 20)}!!!!${body.slice(24)}`);
    const run = await runCli(['public-key', '--key', 'env:BROKEN_KEY'], {
      env: { BROKEN_KEY: broken, KMS_JWT_DEBUG: '1' },
    });
    expect(run.code).toBe(3);
    expect(run.stdout).toBe('');
    expect(run.stderr).not.toContain(body.slice(0, 20));
    expect(run.stderr).not.toContain(body.slice(24, 44));
  });

  it('reports an unset passphrase variable as a usage error', async () => {
    const run = await runCli(['public-key', '--key', key.path, '--passphrase-env', 'NOT_SET_X']);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_ENV_NOT_SET');
    expect(run.stderr).toContain('NOT_SET_X');
  });

  it.each(['hunter2-passphrase', 'correct horse battery staple', 'hunter2', 'Tr0ub4dor&3'])(
    'hides a passphrase given as --passphrase-env %#',
    async (passphrase) => {
      const run = await runCli(['public-key', '--key', key.path, '--passphrase-env', passphrase]);
      expect(run.code).toBe(2);
      expectOneErrorLine(run, 'ERR_CLI_ENV_NOT_SET');
      expect(run.stderr).not.toContain(passphrase);
      expect(run.stderr).toContain('not the passphrase itself');
    },
  );

  it('names the variable without its $', async () => {
    const run = await runCli(['public-key', '--key', key.path, '--passphrase-env', '$KEY_PASS']);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_ENV_NOT_SET');
    expect(run.stderr).toContain('--passphrase-env KEY_PASS');
  });
});

describe('kms-jwt failures outside a command', () => {
  it('print one line for an uncaught error', async () => {
    // The preload throws from a timer while `verify -` waits on a stdin that stays open, the way
    // an SDK can fail from a background task. Only that error can end this run.
    const preload = `data:text/javascript,setTimeout(() => { throw new Error('late failure'); }, 300);`;
    const child = spawn(
      process.execPath,
      ['--import', preload, cliPath, 'verify', '-', '--key', key.path],
      { env: { PATH: process.env.PATH ?? '' }, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((done) => child.on('close', done));
    child.stdin.destroy();

    expectOneErrorLine({ code, stdout, stderr }, 'ERR_CLI_UNEXPECTED');
    expect(stderr).toContain('Error: late failure');
    expect(code).toBe(5);
  });
});

describe('kms-jwt with a closed stderr', () => {
  it('exits when its error cannot be written', async () => {
    // This is `kms-jwt ... 2>&1 | head -1` after head has exited. Writing the error line fails
    // with EPIPE, and that second failure must end the run with the first one's exit code. The
    // child is killed if it still runs after 15 s, so a CLI that loops shows up as SIGTERM.
    const child = spawn(process.execPath, [cliPath, 'client-secret', '--team-id', 'X'], {
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 15_000,
    });
    child.stderr.destroy();
    const exit = await new Promise<{ code: number | null; signal: string | null }>((done) =>
      child.on('exit', (code, signal) => done({ code, signal })),
    );

    expect(exit.signal).toBeNull();
    expect(exit.code).toBe(2);
  }, 20_000);
});
