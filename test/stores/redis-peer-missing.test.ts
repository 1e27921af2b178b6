/**
 * The built Redis store in a package folder where `redis` is not installed: a copy of dist/ and
 * package.json whose node_modules contains every installed package but `redis` and `@redis/*`.
 * A missing peer dependency is a configuration error, so the provider's get() must reject with
 * ERR_PEER_MISSING instead of minting locally as it does during a Redis outage.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync, symlinkSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale } from '../cli/support.js';
import { findFreePort } from './redis-server.mjs';

const hiddenPackages = new Set(['redis', '@redis']);
let folder: string;

interface Outcome {
  resolved?: boolean;
  code?: string;
  message?: string;
}

interface ChildResult {
  first: Outcome;
  second: Outcome;
  direct: Outcome;
  mints: number;
  eventTypes: string[];
}

/** Lays out a package folder with dist/ and package.json, and node_modules without redis. */
function createPackageFolder(): string {
  const root = mkdtempSync(join(tmpdir(), 'kms-jwt-no-redis-'));
  cpSync('dist', join(root, 'dist'), { recursive: true });
  cpSync('package.json', join(root, 'package.json'));
  mkdirSync(join(root, 'node_modules'));
  for (const name of readdirSync('node_modules')) {
    if (hiddenPackages.has(name) || name.startsWith('.')) continue;
    symlinkSync(resolve('node_modules', name), join(root, 'node_modules', name));
  }
  return root;
}

const body = `
  const outcome = (promise) =>
    promise.then(
      () => ({ resolved: true }),
      (error) => ({ code: error.code, message: error.message }),
    );
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const eventTypes = [];
  let mints = 0;
  const store = createRedisStore({ url: process.env.REDIS_URL, connectTimeoutMs: 500 });
  const provider = createTokenProvider({
    store,
    cacheKey: 'client-secret:TEAM:KEY:client',
    policy: { type: 'before-expiry', refreshAtFraction: 0.5, minRemainingSeconds: 60 },
    backgroundRefresh: false,
    onEvent: (event) => eventTypes.push(event.type),
    mint: async () => {
      mints += 1;
      const iat = Math.floor(Date.now() / 1000);
      const exp = iat + 3600;
      return { token: part({ alg: 'ES256' }) + '.' + part({ iat, exp }) + '.c2ln', iat, exp };
    },
  });
  const first = await outcome(provider.get());
  const second = await outcome(provider.get());
  const direct = await outcome(store.read('k'));
  await provider.close();
  await store.close();
  console.log(JSON.stringify({ first, second, direct, mints, eventTypes }));`;

const scripts = {
  esm: `const { createTokenProvider } = await import('./dist/index.js');
    const { createRedisStore } = await import('./dist/redis-store.js');${body}`,
  cjs: `const { createTokenProvider } = require('./dist/index.cjs');
    const { createRedisStore } = require('./dist/redis-store.cjs');
    (async () => {${body}})();`,
};

async function runBuilt(format: 'esm' | 'cjs'): Promise<ChildResult> {
  const port = await findFreePort();
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [`--input-type=${format === 'esm' ? 'module' : 'commonjs'}`, '-e', scripts[format]],
    {
      cwd: folder,
      env: { PATH: process.env.PATH ?? '', REDIS_URL: `redis://127.0.0.1:${port}` },
    },
  );
  return JSON.parse(stdout.trim()) as ChildResult;
}

beforeAll(() => {
  buildIfStale();
  folder = createPackageFolder();
});

afterAll(() => {
  if (folder !== undefined) rmSync(folder, { recursive: true, force: true });
});

describe('built Redis store without redis installed', () => {
  it('package folder cannot resolve redis', () => {
    const requireFromDist = createRequire(join(folder, 'dist', 'redis-store.cjs'));
    expect(() => requireFromDist.resolve('redis')).toThrow(/Cannot find module/);
    expect(requireFromDist.resolve('asn1js')).toContain('asn1js');
  });

  for (const format of ['esm', 'cjs'] as const) {
    it(`${format} provider get() rejects with ERR_PEER_MISSING`, async () => {
      const result = await runBuilt(format);

      expect(result.first.resolved).toBeUndefined();
      expect(result.first.code).toBe('ERR_PEER_MISSING');
      expect(result.first.message).toContain('redis');
      expect(result.first.message).toContain('npm install redis');
      expect(result.second.code).toBe('ERR_PEER_MISSING');
      expect(result.mints).toBe(0);
      expect(result.eventTypes).not.toContain('store-fallback');
      expect(result.eventTypes).toContain('failure');
    });

    it(`${format} store read rejects with ERR_PEER_MISSING`, async () => {
      const result = await runBuilt(format);

      expect(result.direct.code).toBe('ERR_PEER_MISSING');
      expect(result.direct.message).toContain('npm install redis');
      expect(result.direct.message).toContain('the Redis token store');
    });
  }
});
