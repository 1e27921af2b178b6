/**
 * Opening the key a command names with `--key REF`. Every reference goes through the scheme
 * registry (`createSigner`), so file, env, AWS KMS, Cloud KMS and PKCS#11 keys all work the same
 * way. For local key files, the pem adapter reports a file that group or others can read as a
 * `warning` event, which this module prints, and the key ID is read from Apple's
 * `AuthKey_<KEYID>.p8` file name. Commands that need only a public key also take local public
 * material: a `PUBLIC KEY` PEM, an X.509 certificate or a public JWK.
 */
import type { KeyObject } from 'node:crypto';
import { keyIdFromFileName } from '../../adapters/pem/file-checks.js';
import { resolveKeyPath } from '../../adapters/pem/reference.js';
import { isConventionalVariableName } from '../../adapters/pem/source.js';
import { createSigner, parseKeyReference, type AdapterOptions } from '../key-uri.js';
import { shortenForMessage } from '../message-text.js';
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

  if (io.env[passphraseEnv] === undefined) throw passphraseEnvNotSetError(passphraseEnv);
  options.passphraseEnv = passphraseEnv;
  return options;
}

function passphraseEnvNotSetError(name: string): CliError {
  const withoutDollar = name.replace(/^\$/, '');
  if (withoutDollar !== name && isConventionalVariableName(withoutDollar)) {
    return new CliError(
      'ERR_CLI_ENV_NOT_SET',
      `--passphrase-env takes the variable's name without "$", as in --passphrase-env ` +
        `${withoutDollar}.`,
      { details: { variable: withoutDollar } },
    );
  }
  if (!isConventionalVariableName(name)) {
    return new CliError(
      'ERR_CLI_ENV_NOT_SET',
      'The value of --passphrase-env is not the name of a set environment variable, and it is ' +
        'not shown because it may be a passphrase. --passphrase-env takes the name of a ' +
        'variable that holds the passphrase, such as KEY_PASS, not the passphrase itself.',
      { details: {} },
    );
  }
  return new CliError(
    'ERR_CLI_ENV_NOT_SET',
    `The environment variable ${shortenForMessage(name)} named by --passphrase-env is not set. ` +
      'Export it with the passphrase of the encrypted key.',
    { details: { variable: name } },
  );
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
  // The pem adapter's resolver, so that a bad file:// URL raises its coded error here too.
  return resolveKeyPath(parsed.rest);
}

/**
 * Returns the key ID from an Apple key file name such as `AuthKey_ABC123DEFG.p8` (or the
 * `AuthKey_ABC123DEFG (1).p8` of a second download), or undefined for any other name.
 */
export function keyIdFromKeyFileName(path: string): string | undefined {
  return keyIdFromFileName(path);
}

/**
 * Opens the signer for `--key REF`. Its warnings, such as a key file that others can read, go to
 * stderr.
 *
 * @example
 * const signer = await openSigner('AuthKey_ABC123DEFG.p8', parsed, io);
 */
export async function openSigner(
  reference: string,
  parsed: ParsedArgs,
  io: CliIo,
): Promise<Signer> {
  return createSigner(reference, adapterOptionsFrom(parsed, io));
}

/**
 * Loads the public key that `--key REF` names. A `file:` or `env:` reference goes through the
 * pem adapter's `loadPublicKey`, which takes a `PUBLIC KEY` PEM, an X.509 certificate, a JWK or
 * a private key, and warns about a private key file that others can read. Any other reference
 * goes through its signer.
 *
 * @example
 * const publicKey = await loadPublicKeyOf('./apple-siwa.cert.pem', parsed, io);
 */
export async function loadPublicKeyOf(
  reference: string,
  parsed: ParsedArgs,
  io: CliIo,
): Promise<KeyObject> {
  const target = parseKeyReference(reference);
  if (target.scheme === 'file' || target.scheme === 'env') {
    // adapterOptionsFrom also rejects a --passphrase-env variable that is not set.
    const options = adapterOptionsFrom(parsed, io);
    const pem = await import('../../adapters/pem/index.js');
    return pem.loadPublicKey(pem.pemSourceFromReference(target), options);
  }

  const signer = await openSigner(reference, parsed, io);
  try {
    return await signer.getPublicKey();
  } finally {
    await closeSigner(signer);
  }
}

/** Closes a signer that has `close`, ignoring a failure there after the result was written. */
export async function closeSigner(signer: Signer | undefined): Promise<void> {
  try {
    await signer?.close?.();
  } catch {
    // The command's result is already out; a failed session release must not change it.
  }
}
