/**
 * A one-token cache file for cron jobs and shell scripts, such as `kms-jwt client-secret --cache
 * FILE`. It reuses the cached token until the refresh policy makes it due, and mints otherwise.
 *
 * The file contains a secret, so it is handled like one:
 * - It is written with mode 0600 to a temporary file in the same folder, then renamed over the
 *   old one (rename(2) is atomic within a file system), so a reader never sees half a file.
 * - It is opened with O_NOFOLLOW and O_NONBLOCK and checked on the open descriptor. These are
 *   rejected with `ERR_CACHE_FILE_UNSAFE`: a symbolic link, a file that is not a regular file
 *   (such as a FIFO), a file owned by another user, and a file with a group or other bit. The
 *   cache does not repair the mode, because a token that others could read may already have
 *   leaked.
 * - A file that is neither empty nor a cache record, such as a key file given as the cache path
 *   by mistake, is left alone and raises `ERR_CACHE_FILE_UNRECOGNISED`.
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fs, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { KmsJwtError } from '../errors.js';
import { shortenForMessage } from '../message-text.js';
import { readAtMost } from '../read-limited.js';
import type { SignerEvent } from '../signer.js';
import { assertRefreshPolicy, computeRefreshWindow, type RefreshPolicy } from '../token-policy.js';
import {
  assertMintedToken,
  copyMintedToken,
  pickMintedToken,
  type MintedToken,
} from '../token-record.js';

/** Options for {@link getOrMintWithFileCache}. */
export interface FileCacheOptions {
  /** The cache file. Its folder must exist. */
  path: string;
  /** Names the token, for example `client-secret:TEAM:KEY:CLIENT`. A different key re-mints. */
  cacheKey: string;
  /** When a cached token is due for a new one. */
  policy: RefreshPolicy;
  /** Clock in milliseconds since the epoch. Defaults to `Date.now`. */
  now?: () => number;
  /** Mints a new token. */
  mint: () => Promise<MintedToken>;
  /**
   * Receives `cache-corrupt` and `failure` events. A `failure` with `operation: 'mint'` means the
   * due token was returned, and one with `operation: 'write'` means the new token was returned
   * but not cached. Events never carry the token.
   */
  onEvent?: (event: SignerEvent) => void;
}

/** The token returned by {@link getOrMintWithFileCache}. */
export interface FileCacheResult extends MintedToken {
  /** True when the token came from the file rather than from `mint`. */
  reused: boolean;
}

const fileFormatVersion = 1;
// A record is one token and its cache key, about 1 KiB, so 64 KiB leaves ample room.
const maxCacheFileBytes = 64 * 1024;
const unsafeModeBits = 0o077;
// As in the provider, a cached iat this far ahead of the clock means one of the clocks is wrong.
const maxFutureIatSeconds = 300;

/**
 * Returns the cached token from `path` while the policy does not make it due, and otherwise
 * mints a new one and writes it to `path` atomically with mode 0600. When a due token is still
 * usable and the mint fails, the cached token is returned and a `failure` event is reported.
 * When the write fails, the new token is returned and a `failure` event names the write error.
 *
 * @example
 * const { token, reused } = await getOrMintWithFileCache({
 *   path: '/var/lib/app/apple-secret.json',
 *   cacheKey: 'client-secret:DEF123GHIJ:ABC123DEFG:com.example.web',
 *   policy: { type: 'before-expiry', refreshAtFraction: 0.5, minRemainingSeconds: 7 * 86400 },
 *   mint: async () => {
 *     const secret = await createAppleClientSecret({ signer, teamId, clientId, keyId });
 *     return { token: secret.token, iat: secret.claims.iat, exp: secret.claims.exp };
 *   },
 * });
 */
export async function getOrMintWithFileCache(options: FileCacheOptions): Promise<FileCacheResult> {
  assertOptions(options);
  const now = options.now ?? Date.now;

  const cached = await readCacheFile(options);
  const nowSeconds = Math.floor(now() / 1000);
  const state = cached === undefined ? 'missing' : classify(cached, options.policy, nowSeconds);
  if (state === 'fresh') return { ...cached!, reused: true };

  let minted: MintedToken;
  try {
    minted = await mintChecked(options.mint);
  } catch (error) {
    if (state !== 'due-usable') throw error;
    emit(options, {
      type: 'failure',
      operation: 'mint',
      code: codeOf(error),
      message: messageOf(error),
      servedCached: true,
    });
    return { ...cached!, reused: true };
  }

  await writeOrReport(options, minted);
  return { ...minted, reused: false };
}

/**
 * Writes a new token to the cache file. A failed write is reported as a `failure` event and not
 * thrown, because the token is valid and a cron job needs it more than it needs the file.
 */
async function writeOrReport(options: FileCacheOptions, minted: MintedToken): Promise<void> {
  try {
    await writeCacheFile(options.path, options.cacheKey, minted);
  } catch (error) {
    emit(options, {
      type: 'failure',
      operation: 'write',
      code: codeOf(error),
      message: messageOf(error),
      path: options.path,
    });
  }
}

type CacheState = 'missing' | 'fresh' | 'due-usable' | 'unusable';

function classify(cached: MintedToken, policy: RefreshPolicy, nowSeconds: number): CacheState {
  if (cached.iat > nowSeconds + maxFutureIatSeconds) return 'unusable';

  const window = computeRefreshWindow(policy, cached);
  if (nowSeconds >= window.usableUntil) return 'unusable';
  return nowSeconds >= window.refreshAt ? 'due-usable' : 'fresh';
}

async function mintChecked(mint: () => Promise<MintedToken>): Promise<MintedToken> {
  return copyMintedToken(await mint(), 'the mint function');
}

function assertOptions(options: FileCacheOptions): void {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('getOrMintWithFileCache expects an options object.');
  }
  if (typeof options.path !== 'string' || options.path === '') {
    throw new TypeError('getOrMintWithFileCache needs path, the cache file to use.');
  }
  if (typeof options.cacheKey !== 'string' || options.cacheKey === '') {
    throw new TypeError('getOrMintWithFileCache needs cacheKey, a non-empty string.');
  }
  if (typeof options.mint !== 'function') {
    throw new TypeError('getOrMintWithFileCache needs mint, a function returning a token.');
  }
  assertRefreshPolicy(options.policy);
}

/**
 * Reads the cached token, or undefined when the file is missing, empty, corrupt or for another
 * key. A file that is not a cache record at all raises `ERR_CACHE_FILE_UNRECOGNISED` instead.
 */
async function readCacheFile(options: FileCacheOptions): Promise<MintedToken | undefined> {
  const text = await readSafely(options.path);
  if (text === undefined) return undefined;

  // An empty file is a cache file created ahead with mode 0600, as by `touch` and `chmod 600`.
  if (text.trim() === '') return undefined;

  const entry = parseEntry(text);
  if (entry === undefined) {
    assertCacheRecordText(options.path, text);
    emit(options, { type: 'cache-corrupt', path: options.path });
    return undefined;
  }
  return entry.cacheKey === options.cacheKey ? pickMintedToken(entry) : undefined;
}

async function readSafely(path: string): Promise<string | undefined> {
  let handle: fs.FileHandle;
  try {
    // O_NONBLOCK, because a blocking open(2) of a FIFO waits for a writer that may never come.
    // It changes nothing for a regular file, and anything else is rejected before a read.
    handle = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw unsafeFile(path, 'it is a symbolic link', symbolicLinkFix);
    throw cacheFileIoError('read', path, error);
  }

  try {
    assertSafeStats(path, await handle.stat());
    return await readCapped(handle, path);
  } finally {
    await handle.close();
  }
}

/** Reads at most {@link maxCacheFileBytes}, because a larger file cannot be a cache file. */
async function readCapped(handle: fs.FileHandle, path: string): Promise<string> {
  const bytes = await readAtMost(handle, maxCacheFileBytes);
  if (bytes === undefined)
    throw unrecognisedFile(path, `it is larger than ${maxCacheFileBytes} bytes`);
  return bytes.toString('utf8');
}

/**
 * Raises `ERR_CACHE_FILE_UNRECOGNISED` unless `text` starts like a record this module writes,
 * so that a cache path mistyped as another file, such as the `.p8` key that Apple lets a
 * developer download only once, is never replaced by a token.
 */
function assertCacheRecordText(path: string, text: string): void {
  if (/^\s*\{\s*"version"\s*:/.test(text)) return;
  throw unrecognisedFile(path, 'it does not start like a cache record ({"version":...})');
}

function unrecognisedFile(path: string, reason: string): KmsJwtError {
  return new KmsJwtError(
    'ERR_CACHE_FILE_UNRECOGNISED',
    `The cache file ${shortenForMessage(path)} is not replaced because ${reason}, so it may be ` +
      'another file given as the cache path by mistake. Check the path, or delete the file if ' +
      'it is an old cache file.',
    { details: { path } },
  );
}

function assertSafeStats(path: string, stats: Stats): void {
  // Nothing is ever cached in a directory, a FIFO or a device, so the fix is another path.
  if (stats.isDirectory()) {
    throw unsafeFile(path, 'it is a directory, not a regular file', notRegularFileFix);
  }
  if (!stats.isFile()) throw unsafeFile(path, 'it is not a regular file', notRegularFileFix);

  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid) {
    throw unsafeFile(path, `it is owned by user ${stats.uid}, not by this process (${uid})`);
  }
  if ((stats.mode & unsafeModeBits) !== 0) {
    const mode = (stats.mode & 0o777).toString(8).padStart(4, '0');
    throw unsafeFile(path, `its mode is ${mode}, so other users may read the token`);
  }
}

const exposedFileFix =
  'Delete it (and consider the token in it exposed), or point --cache at a regular file of ' +
  'your own with mode 0600.';
// Nothing is written through a link, and the link may be a system one such as /dev/stdout.
const symbolicLinkFix =
  'Point --cache at a regular file itself, not at a link, and leave the link as it is.';
const notRegularFileFix =
  'Point --cache at a regular file, such as a new file name in a folder of your own.';

function unsafeFile(path: string, reason: string, fix = exposedFileFix): KmsJwtError {
  return new KmsJwtError(
    'ERR_CACHE_FILE_UNSAFE',
    `The cache file ${shortenForMessage(path)} is not used because ${reason}. ${fix}`,
    { details: { path } },
  );
}

interface CacheEntry extends MintedToken {
  cacheKey: string;
}

function parseEntry(text: string): CacheEntry | undefined {
  let value: Partial<CacheEntry & { version: number }>;
  try {
    value = JSON.parse(text) as typeof value;
  } catch {
    return undefined;
  }
  if (value?.version !== fileFormatVersion || typeof value.cacheKey !== 'string') return undefined;

  try {
    assertMintedToken(value, 'the cache file');
  } catch {
    return undefined;
  }
  return value as CacheEntry;
}

async function writeCacheFile(path: string, cacheKey: string, token: MintedToken): Promise<void> {
  const body = JSON.stringify({ version: fileFormatVersion, cacheKey, ...token }) + '\n';
  // A larger record would be rejected by the next read, and each run would fail instead of mint.
  const size = Buffer.byteLength(body);
  if (size > maxCacheFileBytes) throw recordTooLarge(path, size);
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);

  try {
    // 'wx' is O_CREAT | O_EXCL: the name is new, so no existing file or link is reused.
    const handle = await fs.open(temporary, 'wx', 0o600);
    try {
      await handle.writeFile(body, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temporary, path);
  } catch (error) {
    await fs.rm(temporary, { force: true });
    throw cacheFileIoError('write', path, error);
  }
}

function recordTooLarge(path: string, size: number): KmsJwtError {
  return new KmsJwtError(
    'ERR_CACHE_FILE_IO',
    `Cannot write the cache file ${shortenForMessage(path)}: the record is ${size} bytes, more ` +
      `than the ${maxCacheFileBytes} bytes a cache file may hold. Shorten the token's fields, ` +
      'such as a long origin list, or mint without --cache.',
    { details: { path, size } },
  );
}

function cacheFileIoError(operation: 'read' | 'write', path: string, error: unknown): KmsJwtError {
  const code = (error as NodeJS.ErrnoException).code;
  const folder = shortenForMessage(dirname(path));
  return new KmsJwtError(
    'ERR_CACHE_FILE_IO',
    `Cannot ${operation} the cache file ${shortenForMessage(path)}: ${code ?? messageOf(error)}. ` +
      `Check that the folder ${folder} exists ` +
      `and that this user can ${operation} files in it, or use a cache path in another folder.`,
    { cause: error, details: { path } },
  );
}

function emit(options: FileCacheOptions, event: SignerEvent): void {
  try {
    options.onEvent?.(event);
  } catch {
    // A faulty callback must not break the cache.
  }
}

/** Returns the message of a thrown value, even one that String() cannot convert. */
function messageOf(error: unknown): string {
  try {
    return error instanceof Error ? String(error.message) : String(error);
  } catch {
    return 'a value that cannot be converted to text was thrown';
  }
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
