/**
 * What the CLI loads at start-up. The CLI is one CommonJS file, dist/cli.cjs, in which commands
 * and the local key adapter initialise on first use. A command must load no package from
 * node_modules it does not need (no cloud SDK, no native binding, no asn1js for a good key) and
 * none of the remote adapters' files. test/support/record-loads.mjs records every CommonJS
 * require, ES module resolution and native addon of the child process.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale, cliPath, createTestKey, type TestKey } from './support.js';

let key: TestKey;
let traces = 0;

/** Runs the built CLI with the load recorder and returns each loaded file or module. */
function tracedLoads(args: string[]): string[] {
  const log = join(key.folder, `loads-${(traces += 1)}.log`);
  const result = spawnSync(
    process.execPath,
    ['--import', resolve('test/support/record-loads.mjs'), cliPath, ...args],
    {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', KMS_JWT_LOAD_LOG: log },
    },
  );
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  return readFileSync(log, 'utf8').trim().split('\n');
}

/** Loads other than Node's built-in modules and the CLI file itself. */
function extraLoads(loads: string[]): string[] {
  const cliFile = resolve(cliPath);
  return loads.filter((line) => {
    const what = line.slice(line.indexOf(' ') + 1).replace(/^file:\/\//, '');
    if (what === cliFile) return false;
    if (line.startsWith('native ')) return true;
    return what.startsWith('/') && !what.includes('/test/support/');
  });
}

function mintArgs(): string[] {
  return ['client-secret', '--team-id', 'DEF123GHIJ', '--client-id', 'com.example.web'];
}

beforeAll(() => {
  buildIfStale();
  key = createTestKey();
});

afterAll(() => key.remove());

describe('CLI start-up', () => {
  it('the recorder sees the CLI file', () => {
    const loads = tracedLoads(['--help']);
    expect(loads).toContain(`cjs ${resolve(cliPath)}`);
  });

  it('client-secret loads nothing else', () => {
    expect(extraLoads(tracedLoads([...mintArgs(), '--key', key.path]))).toEqual([]);
  });

  it('verify and inspect load nothing else', () => {
    const minted = spawnSync(process.execPath, [cliPath, ...mintArgs(), '--key', key.path], {
      encoding: 'utf8',
    });
    const token = minted.stdout.trim();

    expect(extraLoads(tracedLoads(['verify', token, '--key', key.path]))).toEqual([]);
    expect(extraLoads(tracedLoads(['inspect', token]))).toEqual([]);
    expect(
      extraLoads(tracedLoads(['public-key', '--key', key.path, '--format', 'thumbprint'])),
    ).toEqual([]);
  });

  it('help loads nothing else', () => {
    expect(extraLoads(tracedLoads(['--help']))).toEqual([]);
  });

  it('a corrupt key loads asn1js', () => {
    // The canary: a key that node:crypto rejects makes the loader name the failing check with
    // asn1js, so the recorder must see a package from node_modules here.
    const corrupt = join(key.folder, 'corrupt.p8');
    const firstLine = key.pem.split('\n')[1]!;
    const damaged = `${firstLine.slice(0, 10)}AAAAAAAAAA${firstLine.slice(20)}`;
    writeFileSync(corrupt, key.pem.replace(firstLine, damaged), { mode: 0o600 });

    const log = join(key.folder, 'loads-corrupt.log');
    const result = spawnSync(
      process.execPath,
      [
        '--import',
        resolve('test/support/record-loads.mjs'),
        cliPath,
        'public-key',
        '--key',
        corrupt,
      ],
      { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', KMS_JWT_LOAD_LOG: log } },
    );
    expect(result.status).toBe(3);

    const loads = extraLoads(readFileSync(log, 'utf8').trim().split('\n'));
    expect(loads.some((line) => line.includes('/node_modules/asn1js/'))).toBe(true);
  });
});
