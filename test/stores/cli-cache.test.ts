// `kms-jwt client-secret --cache FILE` through the built CLI: it reuses a token until the refresh
// policy makes it due, mints when due, keeps a due token when minting fails, and rejects an
// unsafe file. The CLI reads the real clock, so the tests move the token's times in the file.
import { sign, type KeyObject } from 'node:crypto';
import { chmodSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  buildIfStale,
  createTestKey,
  expectOneErrorLine,
  nowSeconds,
  runCli,
  verifyIndependently,
  type TestKey,
} from '../cli/support.js';

const day = 86_400;
let key: TestKey;
let cache: string;
let testNumber = 0;

function args(keyPath = key.path): string[] {
  return [
    'client-secret',
    '--team-id',
    'DEF123GHIJ',
    '--client-id',
    'com.example.web',
    '--key',
    keyPath,
    '--cache',
    cache,
  ];
}

interface CacheFile {
  version: number;
  cacheKey: string;
  token: string;
  iat: number;
  exp: number;
}

function readCache(): CacheFile {
  return JSON.parse(readFileSync(cache, 'utf8')) as CacheFile;
}

/**
 * Rewrites the cached token as if it had been minted `ageSeconds` ago: the claims get the new
 * times and are signed again with `signingKey`, because the cache rejects a record whose times
 * differ from its token's claims.
 */
function ageCache(ageSeconds: number, signingKey: KeyObject = key.privateKey): void {
  const entry = readCache();
  const iat = nowSeconds() - ageSeconds;
  const exp = iat + 180 * day;
  const [header, payload] = entry.token.split('.');
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8'));
  const newPayload = Buffer.from(JSON.stringify({ ...claims, iat, exp })).toString('base64url');
  const signingInput = `${header}.${newPayload}`;
  const signature = sign('sha256', Buffer.from(signingInput), {
    key: signingKey,
    dsaEncoding: 'ieee-p1363',
  }).toString('base64url');
  const token = `${signingInput}.${signature}`;
  writeFileSync(cache, JSON.stringify({ ...entry, token, iat, exp }), { mode: 0o600 });
}

async function mintFirst(): Promise<string> {
  const run = await runCli(args());
  expect(run.code).toBe(0);
  return run.stdout.trim();
}

beforeAll(() => {
  buildIfStale();
  key = createTestKey('ABC123DEFG');
});

afterAll(() => key.remove());

beforeEach(() => {
  testNumber += 1;
  cache = join(key.folder, `cache-${testNumber}.json`);
});

describe('client-secret --cache', () => {
  it('writes the cache file with mode 0600', async () => {
    const token = await mintFirst();

    expect(statSync(cache).mode & 0o777).toBe(0o600);
    const entry = readCache();
    expect(entry.token).toBe(token);
    const claims = await verifyIndependently(token, key.publicPem);
    expect(entry.iat).toBe(claims.iat);
    expect(entry.exp).toBe(claims.exp);
  });

  it('reuses a token before its refresh point', async () => {
    await mintFirst();
    ageCache(89 * day);
    const token = readCache().token;

    const run = await runCli(args());
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe(token);
    await verifyIndependently(token, key.publicPem);
    expect(run.stderr).toBe('');
  });

  it('mints when the token is due', async () => {
    const token = await mintFirst();
    ageCache(91 * day);

    const run = await runCli(args());
    expect(run.code).toBe(0);
    const fresh = run.stdout.trim();
    expect(fresh).not.toBe(token);
    await verifyIndependently(fresh, key.publicPem);
    expect(readCache().token).toBe(fresh);
    expect(statSync(cache).mode & 0o777).toBe(0o600);
  });

  it('mints when less than a day is left', async () => {
    const token = await mintFirst();
    ageCache(180 * day - 600);

    const run = await runCli(args());
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).not.toBe(token);
  });

  it('keeps a due token when minting fails', async () => {
    const broken = createTestKey('BRKN123456');
    try {
      await runCli(args(broken.path));
      ageCache(91 * day, broken.privateKey);
      const token = readCache().token;
      writeFileSync(broken.path, 'not a key any more', { mode: 0o600 });

      const run = await runCli(args(broken.path));
      expect(run.code).toBe(0);
      expect(run.stdout.trim()).toBe(token);
      expect(run.stderr).toContain('minting a new token failed, so the cached one was kept');
      expect(run.stderr).not.toContain(token);
    } finally {
      broken.remove();
    }
  });

  it('fails when no usable token is left and minting fails', async () => {
    const broken = createTestKey('BRKN654321');
    try {
      await runCli(args(broken.path));
      ageCache(180 * day - 60, broken.privateKey);
      writeFileSync(broken.path, 'not a key any more', { mode: 0o600 });

      const run = await runCli(args(broken.path));
      expect(run.code).not.toBe(0);
      expect(run.stdout).toBe('');
    } finally {
      broken.remove();
    }
  });

  it('prints the token when writing fails', async () => {
    const missingFolder = join(key.folder, `missing-${testNumber}`);
    cache = join(missingFolder, 'cache.json');

    const run = await runCli(args());
    expect(run.code).toBe(0);
    const token = run.stdout.trim();
    await verifyIndependently(token, key.publicPem);
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^kms-jwt: warning: /);
    expect(lines[0]).toContain(`cache file ${cache}`);
    expect(lines[0]).toContain('ENOENT');
    expect(lines[0]).toContain(`Check that the folder ${missingFolder} exists`);
    expect(lines[0]).not.toContain('minting');
    expect(run.stderr).not.toContain(token);
  });

  it('mints anew for another --key', async () => {
    // The wrong key first, under the right key ID: Apple would reject its token.
    const wrong = createTestKey('WRONG12345');
    const wrongPath = join(wrong.folder, 'apple.p8');
    writeFileSync(wrongPath, wrong.pem, { mode: 0o600 });
    try {
      const first = await runCli([...args(wrongPath), '--key-id', key.keyId]);
      expect(first.code).toBe(0);
      await verifyIndependently(first.stdout.trim(), wrong.publicPem);

      const run = await runCli(args());
      expect(run.code).toBe(0);
      const token = run.stdout.trim();
      expect(token).not.toBe(first.stdout.trim());
      await verifyIndependently(token, key.publicPem);
      expect(readCache().token).toBe(token);
    } finally {
      wrong.remove();
    }
  });

  it('reuses the token for the same key by another path', async () => {
    const token = await mintFirst();
    const run = await runCli(args(`file:${key.path}`));
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe(token);
  });

  it('rejects a cache file others can read', async () => {
    await mintFirst();
    chmodSync(cache, 0o644);
    const before = readFileSync(cache, 'utf8');

    const run = await runCli(args());
    expectOneErrorLine(run, 'ERR_CACHE_FILE_UNSAFE');
    expect(run.stderr).toContain('0644');
    expect(readFileSync(cache, 'utf8')).toBe(before);
  });

  it('rejects a cache file that is a symbolic link', async () => {
    const target = join(key.folder, `target-${testNumber}.json`);
    writeFileSync(target, '{}', { mode: 0o600 });
    symlinkSync(target, cache);

    const run = await runCli(args());
    expectOneErrorLine(run, 'ERR_CACHE_FILE_UNSAFE');
    expect(readFileSync(target, 'utf8')).toBe('{}');
  });

  // The cache checks the record and the token's claims, but not its header or signature part,
  // so a token that fails to decode there reaches the CLI, which stops instead of printing it.
  const undecodableParts = [
    {
      part: 'header',
      replace: (parts: string[]) => [
        Buffer.from('not json').toString('base64url'),
        ...parts.slice(1),
      ],
      problem: 'the header part is not valid JSON',
    },
    {
      part: 'signature',
      replace: (parts: string[]) => [...parts.slice(0, 2), 'A'],
      problem: 'the signature part is not base64url without padding',
    },
  ];

  for (const { part, replace, problem } of undecodableParts) {
    it(`rejects a cached token with a bad ${part}`, async () => {
      const token = await mintFirst();
      const broken = replace(token.split('.')).join('.');
      writeFileSync(cache, JSON.stringify({ ...readCache(), token: broken }), { mode: 0o600 });
      const before = readFileSync(cache, 'utf8');

      const run = await runCli(args());
      expect(run.code).toBe(5);
      expectOneErrorLine(run, 'ERR_CLI_CACHE_INVALID');
      expect(run.stderr).toContain(`The cache file ${cache} contains a malformed token`);
      expect(run.stderr).toContain(`(${problem})`);
      expect(run.stderr).toContain('Delete the file to mint anew');
      for (const tokenPart of broken.split('.').filter((text) => text.length >= 16)) {
        expect(run.stderr).not.toContain(tokenPart);
      }
      expect(readFileSync(cache, 'utf8')).toBe(before);
    });
  }

  it('re-mints over a corrupt cache file', async () => {
    writeFileSync(cache, '{"version":1,"cacheKey":', { mode: 0o600 });

    const run = await runCli(args());
    expect(run.code).toBe(0);
    expect(readCache().token).toBe(run.stdout.trim());
  });

  it('rejects an empty --cache as usage', async () => {
    const run = await runCli(args().map((value) => (value === cache ? '' : value)));
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('--cache needs a file path');
  });

  it('keeps other files given as the cache', async () => {
    const notCache = join(key.folder, 'notes.txt');
    writeFileSync(notCache, 'not json', { mode: 0o600 });
    // The same path for --key and --cache, as after a copy-and-paste slip.
    for (const path of [notCache, key.path]) {
      const before = readFileSync(path, 'utf8');
      const run = await runCli(args().map((value) => (value === cache ? path : value)));
      expect(run.code).toBe(5);
      expectOneErrorLine(run, 'ERR_CACHE_FILE_UNRECOGNISED');
      expect(readFileSync(path, 'utf8')).toBe(before);
    }
  });
});
