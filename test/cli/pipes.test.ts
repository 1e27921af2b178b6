/**
 * The CLI at the end of a pipe whose reader stops early, as `kms-jwt ... | head -1` does. The
 * command must end with its own exit code, without an error line and without writing forever.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale, cliPath, createTestKey, type TestKey } from './support.js';

let key: TestKey;

beforeAll(() => {
  buildIfStale();
  key = createTestKey();
});

afterAll(() => key.remove());

interface ClosedRun {
  code: number | null;
  output: string;
}

/** Runs the CLI with one of its output pipes closed by the reader before anything is written. */
function runWithClosed(stream: 'stdout' | 'stderr', args: string[]): Promise<ClosedRun> {
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };
  const child = spawn(process.execPath, [cliPath, ...args], { env, stdio: 'pipe' });
  const open = stream === 'stdout' ? child.stderr : child.stdout;
  child[stream].destroy();
  child.stdin.end();

  let output = '';
  open.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  // A CLI that keeps writing never exits, so the kill turns that hang into a failed assertion.
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  return new Promise((done, fail) => {
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, output });
    });
  });
}

describe('kms-jwt with a closed stdout', () => {
  it.each([[['--help']], [['mint', '--help']], [['verify', '--help']]])(
    'exits quietly for %j',
    async (args) => {
      const run = await runWithClosed('stdout', args);

      expect(run.output).toBe('');
      expect(run.code).toBe(0);
    },
  );

  it('exits quietly after minting', async () => {
    const run = await runWithClosed('stdout', [
      'client-secret',
      ...['--team-id', 'DEF123GHIJ', '--client-id', 'com.example.web', '--key', key.path],
    ]);

    expect(run.output).toBe('');
    expect(run.code).toBe(0);
  });
});

describe('kms-jwt with a closed stderr', () => {
  it('keeps the exit code of an error', async () => {
    const run = await runWithClosed('stderr', ['client-secret', '--no-such-flag']);

    expect(run.output).toBe('');
    expect(run.code).toBe(2);
  });
});
