import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { getOrMintWithFileCache } from '../../src/stores/file-cache.js';
import type { SignerEvent } from '../../src/signer.js';
import { apnsPolicy, clientSecretPolicy, makeToken } from '../provider/fixtures.js';

const day = 86_400;
const start = 1_760_000_000;

let folder: string;
let path: string;

beforeEach(() => {
  folder = mkdtempSync(join(tmpdir(), 'kms-jwt-cache-'));
  path = join(folder, 'secret.json');
});

afterEach(() => {
  rmSync(folder, { recursive: true, force: true });
});

function clock(seconds: number) {
  return () => seconds * 1000;
}

function secretMint(iat: number) {
  return vi.fn(async () => makeToken(iat, iat + 180 * day));
}

async function run(nowSeconds: number, mint: () => Promise<ReturnType<typeof makeToken>>) {
  return getOrMintWithFileCache({
    path,
    cacheKey: 'client-secret:DEF123GHIJ:ABC123DEFG:com.example.web',
    policy: clientSecretPolicy,
    now: clock(nowSeconds),
    mint,
  });
}

describe('getOrMintWithFileCache', () => {
  it('mints on a cold cache and writes mode 0600', async () => {
    const mint = secretMint(start);
    const result = await run(start, mint);

    expect(result.reused).toBe(false);
    expect(mint).toHaveBeenCalledTimes(1);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const stored = JSON.parse(readFileSync(path, 'utf8'));
    expect(stored.token).toBe(result.token);
    expect(stored.exp).toBe(start + 180 * day);
  });

  it('reuses a token that is not yet due', async () => {
    const first = await run(start, secretMint(start));
    const mint = secretMint(start + 10 * day);
    const second = await run(start + 89 * day, mint);

    expect(second.reused).toBe(true);
    expect(second.token).toBe(first.token);
    expect(mint).not.toHaveBeenCalled();
  });

  it('mints again once the policy makes it due', async () => {
    const first = await run(start, secretMint(start));
    const mint = secretMint(start + 90 * day);
    const second = await run(start + 90 * day, mint);

    expect(second.reused).toBe(false);
    expect(second.token).not.toBe(first.token);
    expect(JSON.parse(readFileSync(path, 'utf8')).token).toBe(second.token);
  });

  it('never returns a token past its usable end', async () => {
    await run(start, secretMint(start));
    const failing = vi.fn(async () => {
      throw Object.assign(new Error('KMS down'), { code: 'ERR_BACKEND_DOWN' });
    });

    // 10 minutes before exp is inside the one-day minimum remaining time.
    await expect(run(start + 180 * day - 600, failing)).rejects.toMatchObject({
      code: 'ERR_BACKEND_DOWN',
    });
  });

  it('serves a due but usable token when the mint fails', async () => {
    const first = await run(start, secretMint(start));
    const events: SignerEvent[] = [];
    const result = await getOrMintWithFileCache({
      path,
      cacheKey: 'client-secret:DEF123GHIJ:ABC123DEFG:com.example.web',
      policy: clientSecretPolicy,
      now: clock(start + 100 * day),
      mint: async () => {
        throw Object.assign(new Error('throttled'), { code: 'ERR_BACKEND_THROTTLED' });
      },
      onEvent: (event) => events.push(event),
    });

    expect(result.token).toBe(first.token);
    expect(result.reused).toBe(true);
    expect(events).toEqual([
      {
        type: 'failure',
        operation: 'mint',
        code: 'ERR_BACKEND_THROTTLED',
        message: 'throttled',
        servedCached: true,
      },
    ]);
  });

  it('serves a due token when the mint throws oddly', async () => {
    const first = await run(start, secretMint(start));
    const result = await getOrMintWithFileCache({
      path,
      cacheKey: 'client-secret:DEF123GHIJ:ABC123DEFG:com.example.web',
      policy: clientSecretPolicy,
      now: clock(start + 100 * day),
      mint: async () => {
        // String() cannot convert an object without a prototype.
        throw Object.create(null);
      },
    });

    expect(result.token).toBe(first.token);
    expect(result.reused).toBe(true);
  });

  it('re-mints for another cache key', async () => {
    await run(start, secretMint(start));
    const mint = secretMint(start + 1);
    const result = await getOrMintWithFileCache({
      path,
      cacheKey: 'client-secret:DEF123GHIJ:ABC123DEFG:com.example.other',
      policy: clientSecretPolicy,
      now: clock(start + 1),
      mint,
    });

    expect(result.reused).toBe(false);
    expect(mint).toHaveBeenCalledTimes(1);
  });

  it('replaces a corrupt file and reports it', async () => {
    writeFileSync(path, '{"version":1,"cacheKey":"x","token":', { mode: 0o600 });
    const events: SignerEvent[] = [];
    const result = await getOrMintWithFileCache({
      path,
      cacheKey: 'x',
      policy: clientSecretPolicy,
      now: clock(start),
      mint: secretMint(start),
      onEvent: (event) => events.push(event),
    });

    expect(result.reused).toBe(false);
    expect(events).toEqual([{ type: 'cache-corrupt', path }]);
    expect(JSON.parse(readFileSync(path, 'utf8')).token).toBe(result.token);
  });

  it('rejects a file that others may read', async () => {
    await run(start, secretMint(start));
    chmodSync(path, 0o644);

    await expect(run(start + 1, secretMint(start + 1))).rejects.toMatchObject({
      code: 'ERR_CACHE_FILE_UNSAFE',
      message: expect.stringContaining('0644'),
    });
    expect(statSync(path).mode & 0o777).toBe(0o644);
  });

  it('rejects a symbolic link', async () => {
    const target = join(folder, 'target.json');
    writeFileSync(target, '{}', { mode: 0o600 });
    symlinkSync(target, path);

    await expect(run(start, secretMint(start))).rejects.toMatchObject({
      code: 'ERR_CACHE_FILE_UNSAFE',
      message: expect.stringContaining('symbolic link'),
    });
    await expect(run(start, secretMint(start))).rejects.toMatchObject({
      message: expect.not.stringContaining('Delete it'),
    });
    expect(readFileSync(target, 'utf8')).toBe('{}');
  });

  it('rejects a FIFO without waiting for a writer', async () => {
    // A blocking open(2) of a FIFO waits until a writer opens it, which no writer ever does here.
    execFileSync('mkfifo', ['-m', '600', path]);
    const mint = secretMint(start);

    await expect(run(start, mint)).rejects.toMatchObject({
      code: 'ERR_CACHE_FILE_UNSAFE',
      message: expect.stringContaining('not a regular file'),
    });
    expect(mint).not.toHaveBeenCalled();
    expect(statSync(path).isFIFO()).toBe(true);
  });

  it('rejects a directory without advising deletion', async () => {
    const mint = secretMint(start);
    const rejection = getOrMintWithFileCache({
      path: folder,
      cacheKey: 'x',
      policy: clientSecretPolicy,
      now: clock(start),
      mint,
    });

    await expect(rejection).rejects.toMatchObject({
      code: 'ERR_CACHE_FILE_UNSAFE',
      message: expect.stringContaining('it is a directory'),
    });
    await expect(rejection).rejects.toMatchObject({
      message: expect.not.stringContaining('Delete it'),
    });
    expect(mint).not.toHaveBeenCalled();
  });

  it('keeps a file that is no cache record', async () => {
    const pem = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n';
    writeFileSync(path, pem, { mode: 0o600 });
    const mint = secretMint(start);

    await expect(run(start, mint)).rejects.toMatchObject({
      code: 'ERR_CACHE_FILE_UNRECOGNISED',
      message: expect.stringContaining('does not start like a cache record'),
    });
    expect(mint).not.toHaveBeenCalled();
    expect(readFileSync(path, 'utf8')).toBe(pem);
  });

  it('keeps a file over 64 KiB', async () => {
    const large = `{"version":1,"cacheKey":"${'x'.repeat(64 * 1024)}"}`;
    writeFileSync(path, large, { mode: 0o600 });
    const mint = secretMint(start);

    await expect(run(start, mint)).rejects.toMatchObject({
      code: 'ERR_CACHE_FILE_UNRECOGNISED',
      message: expect.stringContaining('larger than 65536 bytes'),
    });
    expect(mint).not.toHaveBeenCalled();
    expect(readFileSync(path, 'utf8')).toBe(large);
  });

  it('does not write a record over 64 KiB', async () => {
    const events: SignerEvent[] = [];
    const result = await getOrMintWithFileCache({
      path,
      cacheKey: 'x'.repeat(64 * 1024),
      policy: clientSecretPolicy,
      now: clock(start),
      mint: secretMint(start),
      onEvent: (event) => events.push(event),
    });

    expect(result.reused).toBe(false);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: 'failure',
      operation: 'write',
      code: 'ERR_CACHE_FILE_IO',
    });
    expect(events[0]!.message).toContain('more than the 65536 bytes');
    expect(readdirSync(folder)).toEqual([]);
  });

  it('fills an empty file made ahead', async () => {
    writeFileSync(path, '', { mode: 0o600 });
    const events: SignerEvent[] = [];

    const result = await getOrMintWithFileCache({
      path,
      cacheKey: 'x',
      policy: clientSecretPolicy,
      now: clock(start),
      mint: secretMint(start),
      onEvent: (event) => events.push(event),
    });
    expect(result.reused).toBe(false);
    expect(events).toEqual([]);
    expect(JSON.parse(readFileSync(path, 'utf8')).token).toBe(result.token);
  });

  it('returns the token when writing fails', async () => {
    const missingFolder = join(folder, 'not-created');
    const events: SignerEvent[] = [];
    const mint = secretMint(start);
    const result = await getOrMintWithFileCache({
      path: join(missingFolder, 'secret.json'),
      cacheKey: 'client-secret:DEF123GHIJ:ABC123DEFG:com.example.web',
      policy: clientSecretPolicy,
      now: clock(start),
      mint,
      onEvent: (event) => events.push(event),
    });

    expect(mint).toHaveBeenCalledTimes(1);
    expect(result.token).toBe((await mint.mock.results[0]!.value).token);
    expect(result.reused).toBe(false);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: 'failure',
      operation: 'write',
      code: 'ERR_CACHE_FILE_IO',
      path: join(missingFolder, 'secret.json'),
    });
    const message = String(events[0]!.message);
    expect(message).toContain('ENOENT');
    expect(message).toContain(`Check that the folder ${missingFolder} exists`);
    expect(message).not.toContain(result.token);
  });

  it('returns a new token over a due one', async () => {
    const first = await run(start, secretMint(start));
    const events: SignerEvent[] = [];
    const result = await getOrMintWithFileCache({
      path,
      cacheKey: 'client-secret:DEF123GHIJ:ABC123DEFG:com.example.web',
      policy: clientSecretPolicy,
      now: clock(start + 100 * day),
      // The folder goes away after the read and before the write, as when a cleanup job runs.
      mint: async () => {
        rmSync(folder, { recursive: true, force: true });
        return makeToken(start + 100 * day, start + 280 * day);
      },
      onEvent: (event) => events.push(event),
    });

    expect(result.token).not.toBe(first.token);
    expect(result.iat).toBe(start + 100 * day);
    expect(result.reused).toBe(false);
    expect(events.map((event) => event.operation)).toEqual(['write']);
    expect(String(events[0]!.message)).toContain('ENOENT');
  });

  it('names the folder a read needs', async () => {
    const notAFolder = join(folder, 'plain-file');
    writeFileSync(notAFolder, '', { mode: 0o600 });
    const options = {
      path: join(notAFolder, 'secret.json'),
      cacheKey: 'client-secret:DEF123GHIJ:ABC123DEFG:com.example.web',
      policy: clientSecretPolicy,
      now: clock(start),
      mint: secretMint(start),
    };

    const error = await getOrMintWithFileCache(options).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'ERR_CACHE_FILE_IO' });
    expect((error as Error).message).toContain('ENOTDIR');
    expect((error as Error).message).toContain(`Check that the folder ${notAFolder} exists`);
  });

  it('rejects a bad mint result and keeps the old file', async () => {
    await run(start, secretMint(start));
    const before = readFileSync(path, 'utf8');
    const bad = async () => ({ token: 'a.b.c', iat: start * 1000, exp: start * 1000 + 10 });

    await expect(run(start + 179 * day, bad)).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID' });
    expect(readFileSync(path, 'utf8')).toBe(before);
  });

  it('keeps the token out of every message', async () => {
    await run(start, secretMint(start));
    const { token } = JSON.parse(readFileSync(path, 'utf8'));
    chmodSync(path, 0o640);

    const error = (await run(start, secretMint(start)).catch((caught: unknown) => caught)) as Error;
    expect(error.message).not.toContain(token);
    expect(JSON.stringify((error as unknown as { details: unknown }).details)).not.toContain(token);
  });

  it('applies a by-age policy without exp', async () => {
    const mint = vi.fn(async () => makeToken(start, undefined));
    const policyRun = (now: number) =>
      getOrMintWithFileCache({ path, cacheKey: 'apns', policy: apnsPolicy, now: clock(now), mint });

    await policyRun(start);
    expect((await policyRun(start + 2699)).reused).toBe(true);
    expect((await policyRun(start + 2700)).reused).toBe(false);
    expect(mint).toHaveBeenCalledTimes(2);
  });

  it('survives concurrent writers with one whole file', async () => {
    let iat = start;
    const runs = Array.from({ length: 25 }, () =>
      run(start, async () => makeToken(iat++, iat + day * 180)),
    );
    const results = await Promise.all(runs);

    const stored = JSON.parse(readFileSync(path, 'utf8'));
    expect(results.map((result) => result.token)).toContain(stored.token);
    expect(readdirSync(folder)).toEqual(['secret.json']);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });
});
