/**
 * Argument forms a careless user types: `--flag=value`, `--` before arguments, repeated flags on
 * every command, a stdin that is closed or not UTF-8. Each is either understood or rejected with
 * one coded line and the documented exit code.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildIfStale,
  cliPath,
  createTestKey,
  decodePart,
  expectOneErrorLine,
  mintTestToken,
  runCli,
  type TestKey,
} from './support.js';

let key: TestKey;
let token: string;

beforeAll(async () => {
  buildIfStale();
  key = createTestKey();
  token = await mintTestToken(key);
});

afterAll(() => key.remove());

/** Runs the CLI with raw bytes, or nothing at all, on stdin. */
function runWithStdin(args: string[], input: Buffer | 'closed') {
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };
  const stdin = input === 'closed' ? 'ignore' : 'pipe';
  const child = spawn(process.execPath, [cliPath, ...args], {
    env,
    stdio: [stdin, 'pipe', 'pipe'],
  });
  if (input !== 'closed') child.stdin!.end(input);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((done, fail) => {
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

describe('kms-jwt argument forms', () => {
  it('takes --flag=value everywhere', async () => {
    const run = await runCli([
      'client-secret',
      '--team-id=DEF123GHIJ',
      '--client-id=com.example.web',
      `--key=${key.path}`,
      '--lifetime=1d',
    ]);

    expect(run.code).toBe(0);
    expect(decodePart(run.stdout.trim(), 1).iss).toBe('DEF123GHIJ');
  });

  it('takes a value that starts with a dash after =', async () => {
    const run = await runCli([
      'client-secret',
      ...['--team-id', 'DEF123GHIJ', '--client-id=-web', '--key', key.path],
    ]);

    expect(run.code).toBe(0);
    expect(decodePart(run.stdout.trim(), 1).sub).toBe('-web');
  });

  it('reads TOKEN after --', async () => {
    const run = await runCli(['verify', '--key', key.path, '--', token]);

    expect(run.code).toBe(0);
    expect(run.stdout).toBe('valid\n');
  });

  it('treats options after -- as arguments', async () => {
    const run = await runCli(['verify', '--key', key.path, '--', token, '--aud']);

    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
  });

  it.each([
    ['verify', ['verify', '-', '--key', 'KEY', '--key', 'other.p8']],
    ['inspect', ['inspect', '-', '--kind', 'client-secret', '--kind', 'apns']],
    ['public-key', ['public-key', '--format', 'pem', '--format=jwk', '--key', 'x.p8']],
  ])('rejects a repeated option for %s', async (_name, args) => {
    // KEY stands for the key path, which exists only once beforeAll has run.
    const run = await runCli(args.map((arg) => (arg === 'KEY' ? key.path : arg)));

    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toMatch(/more than once/);
  });

  it.each(['verify', 'inspect'])('%s - with a closed stdin', async (command) => {
    const args = command === 'verify' ? ['verify', '-', '--key', key.path] : ['inspect', '-'];
    const run = await runWithStdin(args, 'closed');

    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toMatch(/stdin is empty/);
  });

  it('verify - with bytes that are not UTF-8', async () => {
    const input = Buffer.concat([Buffer.from(token), Buffer.from([0xff, 0xfe, 0x80])]);
    const run = await runWithStdin(['verify', '-', '--key', key.path], input);

    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^kms-jwt: invalid: the signature part is not base64url/);
  });
});
