/**
 * Opening the key a command names with `--key REF`. Every reference goes through the scheme
 * registry (`createSigner`), so file, env, AWS KMS, Cloud KMS and PKCS#11 keys all work the same
 * way. Local key files get two extra checks: a warning when others can read them, and the key
 * ID read from Apple's `AuthKey_<KEYID>.p8` file name.
 */
import { statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSigner, parseKeyReference, type AdapterOptions } from '../key-uri.js';
import type { Signer, SignerEvent } from '../signer.js';
import { CliError } from './errors.js';
import type { ParsedArgs, FlagSpec } from './args.js';
import { stringValue } from './args.js';
import type { CliIo } from './io.js';

/** The key options that every command with `--key` accepts. */
export const keyFlags: Record<string, FlagSpec> = {
  key: { type: 'string' },
  'passphrase-env': { type: 'string' },
};

/**
 * Builds the adapter options from `--passphrase-env` and routes the adapter's warning events to
 * stderr. The passphrase itself is read by the adapter from the environment, never from argv.
 */
export function adapterOptionsFrom(parsed: ParsedArgs, io: CliIo): AdapterOptions {
  const options: AdapterOptions = { onEvent: (event) => reportEvent(event, io) };
  const passphraseEnv = stringValue(parsed, 'passphrase-env');
  if (passphraseEnv === undefined) return options;

  if (io.env[passphraseEnv] === undefined) {
    throw new CliError(
      'ERR_CLI_ENV_NOT_SET',
      `The environment variable ${passphraseEnv} named by --passphrase-env is not set. ` +
        'Export it with the passphrase of the encrypted key.',
      { details: { variable: passphraseEnv } },
    );
  }
  options.passphraseEnv = passphraseEnv;
  return options;
}

/** Prints an adapter's `warning` events, and every event when `KMS_JWT_DEBUG=1`. */
function reportEvent(event: SignerEvent, io: CliIo): void {
  if (io.env.KMS_JWT_DEBUG === '1') io.note(`kms-jwt: event: ${JSON.stringify(event)}`);
  else if (event.type === 'warning' && typeof event.message === 'string') io.warn(event.message);
}

/**
 * Returns the absolute path of a local key file reference (a bare path or `file:PATH`), or
 * undefined for every other scheme.
 *
 * @example
 * localKeyPath('file:./AuthKey_ABC123DEFG.p8'); // '/home/me/AuthKey_ABC123DEFG.p8'
 */
export function localKeyPath(reference: string): string | undefined {
  const parsed = parseKeyReference(reference);
  if (parsed.scheme !== 'file') return undefined;
  if (parsed.rest.startsWith('//')) return fileURLToPath(`file:${parsed.rest}`);
  return resolve(parsed.rest);
}

/**
 * Warns on stderr when a key file is readable by its group or by others, because an Apple key
 * cannot be revoked without breaking every secret signed with it until they are re-issued.
 */
export function warnIfKeyFileExposed(path: string, io: CliIo): void {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch {
    return; // The adapter reports a missing or unreadable file with its own coded error.
  }
  if ((mode & 0o044) === 0) return;

  const octal = (mode & 0o777).toString(8).padStart(4, '0');
  io.warn(
    `key file ${path} is readable by group or others (mode ${octal}); run: chmod 600 ${path}`,
  );
}

/**
 * Returns the key ID from an Apple key file name such as `AuthKey_ABC123DEFG.p8`, or undefined
 * when the name has another shape.
 */
export function keyIdFromKeyFileName(path: string): string | undefined {
  return /^AuthKey_([A-Z0-9]{10})\.p8$/.exec(basename(path))?.[1];
}

/**
 * Opens the signer for `--key REF`, after the file permission check for a local key.
 *
 * @example
 * const signer = await openSigner('AuthKey_ABC123DEFG.p8', parsed, io);
 */
export async function openSigner(
  reference: string,
  parsed: ParsedArgs,
  io: CliIo,
): Promise<Signer> {
  const path = localKeyPath(reference);
  if (path !== undefined) warnIfKeyFileExposed(path, io);
  return createSigner(reference, adapterOptionsFrom(parsed, io));
}

/** Closes a signer that has `close`, ignoring a failure there after the result was written. */
export async function closeSigner(signer: Signer | undefined): Promise<void> {
  try {
    await signer?.close?.();
  } catch {
    // The command's result is already out; a failed session release must not change it.
  }
}
