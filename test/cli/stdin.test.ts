/**
 * TOKEN given as `-` on stdin: surrounding whitespace is removed, but input that is not one token
 * (several lines, a token broken across lines, or megabytes of data) is a usage error that names
 * the cause, and the CLI stops reading a stdin far larger than any token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildIfStale,
  createTestKey,
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

const commands: Array<[string, () => string[]]> = [
  ['verify', () => ['verify', '-', '--key', key.path]],
  ['inspect', () => ['inspect', '-']],
];

describe('TOKEN on stdin', () => {
  it.each(commands)('%s accepts surrounding whitespace', async (name, args) => {
    const run = await runCli(args(), { input: `\n  ${token} \r\n\n` });

    expect(run.code).toBe(0);
    if (name === 'verify') expect(run.stdout).toBe('valid\n');
  });

  it.each(commands)('%s rejects two tokens', async (_name, args) => {
    const run = await runCli(args(), { input: `${token}\n${token}\n` });

    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toMatch(/2 lines/);
    expect(run.stderr).not.toContain(token.split('.')[2]!);
  });

  it.each(commands)('%s rejects a wrapped token', async (_name, args) => {
    const wrapped = token.match(/.{1,76}/g)!.join('\n');
    const run = await runCli(args(), { input: `${wrapped}\n` });

    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toMatch(/lines/);
  });

  it.each(commands)('%s rejects a token with a space', async (_name, args) => {
    const [header, rest] = [token.slice(0, 20), token.slice(20)];
    const run = await runCli(args(), { input: `${header} ${rest}\n` });

    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toMatch(/whitespace/);
  });

  it.each(commands)('%s names a Bearer prefix', async (_name, args) => {
    const run = await runCli(args(), { input: `Bearer ${token}\n` });

    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('Remove the "Bearer " prefix');
    expect(run.stderr).not.toContain(token.split('.')[1]!);
  });

  it.each(commands)('%s stops reading a huge stdin', async (_name, args) => {
    const run = await runCli(args(), { input: 'A'.repeat(8 * 1024 * 1024) });

    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toMatch(/larger than 65536 bytes/);
  });
});
