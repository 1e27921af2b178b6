/**
 * Key sources: a file path, an environment variable or inline text. This module checks the
 * source argument, reads the raw key input once and resolves the passphrase option. It keeps
 * nothing: the caller parses the input and drops it.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { shortenForMessage } from '../../src/message-text.js';
import type { RuntimeOptions } from '../../src/signer.js';
import { inlineOrigin, keyError, type KeyOrigin } from './errors.js';

/** Where a local key comes from: exactly one of a file path, inline PEM text or an env var name. */
export type PemSource = { path: string } | { pem: string | Buffer } | { env: string };

/** Options of the local key loader and signer. */
export interface PemSignerOptions extends RuntimeOptions {
  /** The passphrase of an encrypted key (`ENCRYPTED PRIVATE KEY`, or legacy `Proc-Type` PEM). */
  passphrase?: string;
  /** The name of an environment variable that holds the passphrase, to keep it out of argv. */
  passphraseEnv?: string;
}

/** The raw input of one source, with its origin for messages. */
export interface SourceInput {
  input: Buffer | string;
  origin: KeyOrigin;
  /** The absolute path, for file sources. */
  path?: string;
}

// A P-256 key file is under 1 KiB, and a PEM bundle with a certificate chain stays far below
// this. The cap stops a reference to /dev/zero or a large file from being read into memory.
const maxKeyFileBytes = 64 * 1024;
const sourceFields = ['path', 'pem', 'env'] as const;

/** Throws a `TypeError` unless `source` has exactly one of `path`, `pem` or `env`, well typed. */
export function assertPemSource(source: unknown, caller: string): asserts source is PemSource {
  const expected = `${caller} expects { path }, { pem } or { env }`;
  if (typeof source === 'string') {
    throw new TypeError(
      `${expected}, not a string. For a key reference such as "file:KEY.p8", use createSigner.`,
    );
  }
  if (typeof source !== 'object' || source === null || Array.isArray(source)) {
    throw new TypeError(`${expected}, but got ${source === null ? 'null' : typeof source}.`);
  }

  const fields = Object.keys(source);
  const unknown = fields.filter((field) => !(sourceFields as readonly string[]).includes(field));
  if (unknown.length > 0) throw new TypeError(`${expected}; unknown field ${unknown.join(', ')}.`);
  if (fields.length === 0) throw new TypeError(`${expected}, but got an empty object.`);
  if (fields.length > 1) {
    throw new TypeError(`${expected} with exactly one field, but got ${fields.join(' and ')}.`);
  }

  assertSourceValue(fields[0] as (typeof sourceFields)[number], source, caller);
}

function assertSourceValue(field: 'path' | 'pem' | 'env', source: object, caller: string): void {
  const value: unknown = (source as Record<string, unknown>)[field];
  if (value === undefined) {
    // The usual cause is `{ pem: process.env.NAME }` with NAME unset.
    const hint =
      field === 'pem'
        ? ' If it came from process.env, pass { env: NAME } to name the variable.'
        : '';
    throw new TypeError(`${caller}: ${field} is undefined.${hint}`);
  }
  if (field === 'pem') {
    if (typeof value === 'string' || value instanceof Uint8Array) return;
    throw new TypeError(`${caller}: pem must be a string or a Buffer, but got ${typeof value}.`);
  }
  if (typeof value !== 'string' || value === '') {
    throw new TypeError(`${caller}: ${field} must be a non-empty string.`);
  }
  if (field === 'env' && value.includes('=')) {
    throw new TypeError(
      `${caller}: env must be the name of an environment variable, not NAME=VALUE.`,
    );
  }
}

/** Throws a `TypeError` for a passphrase option of the wrong type, or for both forms at once. */
export function assertPassphraseOptions(options: PemSignerOptions, caller: string): void {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${caller}: options must be an object.`);
  }
  const { passphrase, passphraseEnv, onEvent } = options;
  if (passphrase !== undefined && typeof passphrase !== 'string') {
    throw new TypeError(`${caller}: passphrase must be a string.`);
  }
  if (passphraseEnv !== undefined && (typeof passphraseEnv !== 'string' || passphraseEnv === '')) {
    throw new TypeError(`${caller}: passphraseEnv must be the name of an environment variable.`);
  }
  if (passphrase !== undefined && passphraseEnv !== undefined) {
    throw new TypeError(`${caller}: give passphrase or passphraseEnv, not both.`);
  }
  if (onEvent !== undefined && typeof onEvent !== 'function') {
    throw new TypeError(`${caller}: onEvent must be a function.`);
  }
}

/** Returns the passphrase from the options or from the variable that `passphraseEnv` names. */
export function resolvePassphrase(
  options: PemSignerOptions,
  origin: KeyOrigin,
): string | undefined {
  if (options.passphraseEnv === undefined) return options.passphrase;

  const name = options.passphraseEnv;
  const value = process.env[name];
  if (value !== undefined && value !== '') return value;

  if (!isConventionalVariableName(name)) {
    throw keyError(
      'ERR_KEY_PASSPHRASE_ENV_UNSET',
      origin,
      'passphraseEnv does not name a set environment variable, and its value is not shown ' +
        'because it may be a passphrase. passphraseEnv takes the name of a variable that holds ' +
        "the passphrase, such as 'KEY_PASS', not the passphrase itself.",
      { details: {} },
    );
  }
  const state = value === undefined ? 'is not set' : 'is empty';
  throw keyError(
    'ERR_KEY_PASSPHRASE_ENV_UNSET',
    origin,
    `the passphrase variable ${shortenForMessage(name)} ${state}. Export it before running, or drop passphraseEnv ` +
      'if the key is not encrypted.',
    { details: { variable: name } },
  );
}

/**
 * Returns true for a conventional environment variable name: upper-case letters, digits and
 * `_`. A value of another shape, given where a variable's name belongs, may be the passphrase
 * itself, so errors do not repeat it.
 *
 * @example
 * isConventionalVariableName('KEY_PASS'); // true
 * isConventionalVariableName('hunter2'); // false
 */
export function isConventionalVariableName(name: string): boolean {
  return /^[A-Z_][A-Z0-9_]*$/.test(name);
}

/** Returns the origin of a source without reading it, for the signer's key ID. */
export function originOf(source: PemSource): KeyOrigin {
  if ('path' in source && looksLikeKeyText(source.path)) return hiddenPathOrigin;
  if ('path' in source && pinValuePattern.test(source.path)) return pinPathOrigin;
  if ('path' in source) {
    const path = escapeControlCharacters(shortenForMessage(resolve(source.path)));
    return { keyId: `file:${path}`, description: `key file ${path}` };
  }
  if ('env' in source && looksLikeKeyText(source.env)) return hiddenEnvironmentOrigin;
  if ('env' in source) {
    const name = shortenForMessage(source.env);
    return { keyId: `env:${name}`, description: `environment variable ${name}` };
  }
  return inlineOrigin;
}

/** Writes C0 and C1 control characters as `\uXXXX`, so that a path cannot drive a terminal. */
function escapeControlCharacters(text: string): string {
  return text.replace(
    /\p{Cc}/gu,
    (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** The origin of a path that looks like key text, which messages and details never repeat. */
const hiddenPathOrigin: KeyOrigin = {
  keyId: 'file:(path not shown)',
  description: 'the path given (not shown, because it looks like key text)',
};

/** The origin of an `env:` name that looks like key text, which messages never repeat. */
const hiddenEnvironmentOrigin: KeyOrigin = {
  keyId: 'env:(name not shown)',
  description: 'the environment variable given (not shown, because its name looks like key text)',
};

/**
 * The origin of a path that contains a `pin-value` attribute, which messages and details never
 * repeat. It is usually a `pkcs11:` URI read as a path because a space or a quote came before
 * the scheme.
 */
const pinPathOrigin: KeyOrigin = {
  keyId: 'file:(path not shown)',
  description: 'the path given (not shown, because it contains a pin-value attribute)',
};

// "pin-value" also with its hyphen or any letter percent-encoded, as a URI parser decodes it.
const pinValuePattern =
  /(?:p|%70)(?:i|%69)(?:n|%6e)(?:-|%2d)(?:v|%76)(?:a|%61)(?:l|%6c)(?:u|%75)(?:e|%65)/i;

/**
 * Returns true when a path looks like key text pasted in its place. That is PEM armour, a JWK
 * member, or a run of 40 or more base64 characters with both letter cases that switches between
 * upper case, lower case and digits at least 12 times. Base64 of key bytes does that, while
 * names and hex digests do not. A false match only hides the path in messages, and the file is
 * still opened.
 */
function looksLikeKeyText(path: string): boolean {
  if (/-----(?:BEGIN|END)\b|"(?:kty|d)"\s*:/.test(path)) return true;
  const runs = path.match(/[A-Za-z0-9+/=_-]{40,}/g) ?? [];
  return runs.some((run) => /[A-Z]/.test(run) && /[a-z]/.test(run) && countClassChanges(run) >= 12);
}

function countClassChanges(text: string): number {
  const classOf = (character: string) =>
    /[A-Z]/.test(character) ? 1 : /[a-z]/.test(character) ? 2 : /[0-9]/.test(character) ? 3 : 0;
  let changes = 0;
  for (let i = 1; i < text.length; i++) {
    const previous = classOf(text.charAt(i - 1));
    const current = classOf(text.charAt(i));
    if (previous !== 0 && current !== 0 && previous !== current) changes++;
  }
  return changes;
}

/** Reads the raw key input of a checked source. */
export async function readSource(source: PemSource): Promise<SourceInput> {
  const origin = originOf(source);
  if ('pem' in source) return { input: source.pem, origin };
  if ('env' in source) return { input: readEnvironmentKey(source.env, origin), origin };

  const path = resolve(source.path);
  return { input: readKeyFile(path, origin), origin, path };
}

function readEnvironmentKey(name: string, origin: KeyOrigin): string {
  const value = process.env[name];
  if (value !== undefined) return value;
  if (origin === hiddenEnvironmentOrigin) {
    throw keyError(
      'ERR_KEY_ENV_UNSET',
      origin,
      'no such variable is set. env: takes the name of a variable that contains the key, as in ' +
        'env:APPLE_PRIVATE_KEY, not the key text itself.',
    );
  }
  throw keyError(
    'ERR_KEY_ENV_UNSET',
    origin,
    `the variable ${shortenForMessage(name)} is not set. Export it with the key's PEM text, or ` +
      'point the key reference at a file with file:PATH.',
    { details: { variable: name } },
  );
}

/**
 * Reads the key file synchronously. It is at most 64 KiB and read once per signer, and skipping
 * the libuv thread pool and node:fs/promises takes several milliseconds off the CLI's start-up.
 */
function readKeyFile(path: string, origin: KeyOrigin): Buffer {
  let descriptor: number;
  try {
    descriptor = openSync(path, 'r');
  } catch (error) {
    throw fileError(error, path, origin);
  }

  try {
    return readCapped(descriptor, path, origin);
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ERR_KEY_FILE_TOO_LARGE') throw error;
    throw fileError(error, path, origin);
  } finally {
    closeSync(descriptor);
  }
}

function readCapped(descriptor: number, path: string, origin: KeyOrigin): Buffer {
  // Read in a loop instead of stat-then-read, so that pipes and /dev/stdin work too.
  const buffer = Buffer.alloc(maxKeyFileBytes + 1);
  let length = 0;
  while (length < buffer.length) {
    const bytesRead = readSync(descriptor, buffer, length, buffer.length - length, null);
    if (bytesRead === 0) break;
    length += bytesRead;
  }

  if (length > maxKeyFileBytes) {
    buffer.fill(0);
    throw keyError(
      'ERR_KEY_FILE_TOO_LARGE',
      origin,
      `the file is larger than ${maxKeyFileBytes} bytes, far more than a P-256 key. Check the path.`,
      { details: isHiddenPath(origin) ? {} : { path } },
    );
  }
  const content = Buffer.from(buffer.subarray(0, length));
  buffer.fill(0);
  return content;
}

function fileError(error: unknown, path: string, origin: KeyOrigin) {
  const code = (error as { code?: unknown }).code;
  // Node's own message repeats the path, so it is not kept as the cause either.
  if (isHiddenPath(origin)) return hiddenPathError(code, origin);
  if (code === 'ENOENT') {
    return keyError(
      'ERR_KEY_FILE_NOT_FOUND',
      origin,
      `no such file. Check the path; a relative path is resolved against ${process.cwd()}.` +
        describeEnvironmentVariableHint(path),
      { cause: error, details: { path } },
    );
  }
  if (code === 'ERR_INVALID_ARG_VALUE') {
    // Node's message quotes the path with its NUL, so it is not kept as the cause.
    return keyError(
      'ERR_KEY_FILE_UNREADABLE',
      origin,
      'the path contains a NUL character, which no file name can contain. Check where the path ' +
        'came from.',
      { details: { path, osCode: code } },
    );
  }
  const reason =
    code === 'EACCES' || code === 'EPERM'
      ? 'permission denied. Run as the user that owns the key, or grant read access to it'
      : code === 'EISDIR'
        ? 'it is a directory. Point the reference at the key file inside it'
        : `the file could not be read (${String(code ?? error)})`;
  return keyError('ERR_KEY_FILE_UNREADABLE', origin, `${reason}.`, {
    cause: error,
    details: { path, osCode: code },
  });
}

/**
 * Returns a hint naming `env:NAME` when a missing file in the working directory is named like a set
 * environment variable, as with `--key APPLE_PRIVATE_KEY` or a quoted `'$APPLE_PRIVATE_KEY'`.
 * Only the variable's name is shown, never its value.
 */
function describeEnvironmentVariableHint(path: string): string {
  if (dirname(path) !== process.cwd()) return '';
  const name = basename(path).replace(/^\$/, '');
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || process.env[name] === undefined) return '';
  return (
    ` An environment variable named ${name} is set: to read the key from it, use env:${name} ` +
    `(or { env: '${name}' } in createPemSigner).`
  );
}

function isHiddenPath(origin: KeyOrigin): boolean {
  return origin === hiddenPathOrigin || origin === pinPathOrigin;
}

function hiddenPathError(code: unknown, origin: KeyOrigin) {
  const found = code === 'ENOENT' ? 'no such file' : `the file could not be read (${String(code)})`;
  const fix =
    origin === pinPathOrigin
      ? 'A pkcs11: reference is read as a file path when a space or a quote comes before ' +
        '"pkcs11:". Remove it, and prefer pin-source=file:/PATH to pin-value.'
      : 'Pass key text with env:NAME or the pem option, not where a file path belongs.';
  return keyError(
    code === 'ENOENT' ? 'ERR_KEY_FILE_NOT_FOUND' : 'ERR_KEY_FILE_UNREADABLE',
    origin,
    `${found}. ${fix}`,
    { details: { osCode: code } },
  );
}
