import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale, cliPath, createTestKey, type TestKey } from './support.js';

let key: TestKey;

/** Runs the built CLI with the load tracer and returns the resolved module URLs. */
function tracedModules(args: string[], env: Record<string, string> = {}): string[] {
  const traceFile = join(key.folder, `trace-${Math.random().toString(36).slice(2)}.txt`);
  const result = spawnSync(
    process.execPath,
    ['--import', resolve('test/cli/load-trace.mjs'), cliPath, ...args],
    { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', LOAD_TRACE_FILE: traceFile, ...env } },
  );
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  return readFileSync(traceFile, 'utf8').trim().split('\n');
}

function expectNoHeavyModules(modules: string[]): void {
  expect(modules.length).toBeGreaterThan(1);
  expect(modules.filter((url) => url.includes('/node_modules/'))).toEqual([]);
  for (const entry of ['aws-kms.js', 'gcp-kms.js', 'pkcs11.js', 'redis-store.js', 'index.js']) {
    expect(modules.filter((url) => url.endsWith(`/dist/${entry}`))).toEqual([]);
  }
}

beforeAll(() => {
  buildIfStale();
  key = createTestKey();
});

afterAll(() => key.remove());

describe('CLI start-up', () => {
  it('client-secret loads no SDK or other adapter', () => {
    const modules = tracedModules([
      'client-secret',
      '--team-id',
      'DEF123GHIJ',
      '--client-id',
      'com.example.web',
      '--key',
      key.path,
    ]);
    expectNoHeavyModules(modules);
  });

  it('verify and inspect load no SDK', async () => {
    const minted = spawnSync(
      process.execPath,
      [
        cliPath,
        'client-secret',
        '--team-id',
        'DEF123GHIJ',
        '--client-id',
        'com.example.web',
        '--key',
        key.path,
      ],
      { encoding: 'utf8' },
    );
    const token = minted.stdout.trim();
    expectNoHeavyModules(tracedModules(['verify', token, '--key', key.path]));
    expectNoHeavyModules(tracedModules(['inspect', token]));
  });

  it('help loads no command module', () => {
    const modules = tracedModules(['--help']);
    expectNoHeavyModules(modules);
    const chunks = new Set(modules.filter((url) => url.includes('/dist/')));
    // dist/cli.js, the CLI error chunk, the core error chunk, the bundler's runtime helpers and
    // the help text: nothing a command needs.
    expect(chunks.size).toBeLessThanOrEqual(5);
    expect([...chunks].some((url) => /\/help-[\w-]+\.js$/.test(url))).toBe(true);
  });
});
