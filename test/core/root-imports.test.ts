/**
 * Importing the package root must load no cloud SDK, native binding or asn1js, so that the
 * signing hot path and the CLI start quickly and work without optional peers. A child node
 * process loads the built dist/ entry (ESM by import, CJS by require) with
 * test/support/record-loads.mjs preloaded, which records every module it loads.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const forbiddenPackages = [
  /\/node_modules\/@aws-sdk\//,
  /\/node_modules\/@smithy\//,
  /\/node_modules\/@google-cloud\//,
  /\/node_modules\/google-gax\//,
  /\/node_modules\/@grpc\//,
  /\/node_modules\/pkcs11js\//,
  /\/node_modules\/redis\//,
  /\/node_modules\/@redis\//,
  /\/node_modules\/asn1js\//,
];

const folder = mkdtempSync(join(tmpdir(), 'kms-jwt-root-imports-'));
let runs = 0;

afterAll(() => {
  rmSync(folder, { recursive: true, force: true });
});

interface LoadRecord {
  kind: string;
  what: string;
}

/**
 * Runs `script` in a child node with the recorder preloaded. The script loads the root, calls
 * `recordLoadMarker('root-loaded')`, then loads asn1js as a canary, so that the test can prove
 * the recorder sees a forbidden package when one really is loaded.
 */
function recordLoads(args: string[]): { before: LoadRecord[]; after: LoadRecord[] } {
  const log = join(folder, `loads-${(runs += 1)}.log`);
  execFileSync(process.execPath, ['--import', './test/support/record-loads.mjs', ...args], {
    env: { ...process.env, KMS_JWT_LOAD_LOG: log },
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  const records = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const space = line.indexOf(' ');
      return { kind: line.slice(0, space), what: line.slice(space + 1) };
    });
  const marker = records.findIndex((r) => r.kind === 'marker' && r.what === 'root-loaded');
  expect(marker).toBeGreaterThan(0);
  return { before: records.slice(0, marker), after: records.slice(marker + 1) };
}

function forbiddenIn(records: LoadRecord[]): string[] {
  return records
    .filter((r) => r.kind === 'native' || forbiddenPackages.some((p) => p.test(r.what)))
    .map((r) => `${r.kind} ${r.what}`);
}

function loadedFiles(records: LoadRecord[]): string[] {
  return records.map((r) => r.what.replace(/^file:\/\//, ''));
}

describe('root entry imports', () => {
  it('ESM import loads no SDK', () => {
    const script = [
      "await import('./dist/index.js');",
      "globalThis.recordLoadMarker('root-loaded');",
      "await import('asn1js');",
    ].join('\n');
    const { before, after } = recordLoads(['--input-type=module', '-e', script]);

    expect(loadedFiles(before)).toContain(`${process.cwd()}/dist/index.js`);
    expect(forbiddenIn(before)).toEqual([]);
    expect(forbiddenIn(after).some((line) => line.includes('/node_modules/asn1js/'))).toBe(true);
  });

  it('CJS require loads no SDK', () => {
    const script = [
      "require('./dist/index.cjs');",
      "globalThis.recordLoadMarker('root-loaded');",
      "require('asn1js');",
    ].join('\n');
    const { before, after } = recordLoads(['--input-type=commonjs', '-e', script]);

    expect(loadedFiles(before)).toContain(`${process.cwd()}/dist/index.cjs`);
    expect(forbiddenIn(before)).toEqual([]);
    expect(forbiddenIn(after).some((line) => line.includes('/node_modules/asn1js/'))).toBe(true);
  });

  it('CJS require cache stays clean', () => {
    // A second method for CommonJS: the loader's own cache, read after the root is loaded.
    const script = [
      "require('./dist/index.cjs');",
      'console.log(JSON.stringify(Object.keys(require.cache)));',
    ].join('\n');
    const output = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    const cached = JSON.parse(output) as string[];

    expect(cached).toContain(`${process.cwd()}/dist/index.cjs`);
    expect(cached.filter((path) => forbiddenPackages.some((p) => p.test(path)))).toEqual([]);
    expect(cached.filter((path) => path.endsWith('.node'))).toEqual([]);
  });
});
