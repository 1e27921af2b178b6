/**
 * Where the PKCS#11 module and the user PIN come from. The module path is taken from the URI's
 * `module-path`, then the `modulePath` option, then `KMS_JWT_PKCS11_MODULE`, then
 * `PKCS11_MODULE_PATH`. The PIN is taken from `pin-source` or `pin-value` in the URI, then the
 * `pin` option, then the environment variable named by `pinEnv` (default `KMS_JWT_PKCS11_PIN`).
 * No message or event ever contains the PIN.
 */
import { statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KeyError, KmsJwtError } from '../../src/errors.js';
import { shortenForMessage } from '../../src/message-text.js';
import { readAtMost } from '../../src/read-limited.js';
import { emitEvent, type RuntimeOptions } from '../../src/signer.js';
import type { Pkcs11Uri } from './uri.js';

/** Environment variables read when the URI and the options name no module. */
export const moduleEnvironmentVariables = ['KMS_JWT_PKCS11_MODULE', 'PKCS11_MODULE_PATH'];

/** The environment variable read for the PIN unless `pinEnv` names another. */
export const defaultPinEnvironmentVariable = 'KMS_JWT_PKCS11_PIN';

/** A resolved PIN and where it came from (the source is safe to print, the PIN is not). */
export interface ResolvedPin {
  pin: string | undefined;
  source: 'pin-source' | 'pin-value' | 'option' | 'environment' | 'none';
}

/** The options that choose the module and the PIN. */
export interface Pkcs11AccessOptions extends RuntimeOptions {
  /** Absolute path of the PKCS#11 module, used when the URI has no `module-path`. */
  modulePath?: string;
  /** The user PIN, used when the URI has neither `pin-source` nor `pin-value`. */
  pin?: string;
  /** The environment variable that holds the PIN. Default `KMS_JWT_PKCS11_PIN`. */
  pinEnv?: string;
}

/**
 * Picks the module path and checks that it names an existing file by an absolute path, so that
 * the dynamic loader never searches its library path for a module of that name.
 *
 * @example
 * const uri = parsePkcs11Uri('pkcs11:token=apple;object=siwa');
 * resolveModulePath(uri, { modulePath: '/usr/lib/softhsm/libsofthsm2.so' });
 */
export function resolveModulePath(uri: Pkcs11Uri, options: Pkcs11AccessOptions): string {
  const fromEnvironment = moduleEnvironmentVariables
    .map((name) => ({ name, value: process.env[name] }))
    .find((entry) => entry.value !== undefined && entry.value !== '');
  const chosen = uri.modulePath ?? options.modulePath ?? fromEnvironment?.value;
  const origin = uri.modulePath
    ? 'module-path'
    : options.modulePath
      ? 'the modulePath option'
      : fromEnvironment?.name;

  if (chosen === undefined || chosen === '') {
    throw new KmsJwtError(
      'ERR_PKCS11_MODULE_MISSING',
      'No PKCS#11 module was given. Add ?module-path=/ABSOLUTE/PATH.so to the pkcs11: URI, pass ' +
        `the modulePath option, or set ${moduleEnvironmentVariables.join(' or ')}. ` +
        'SoftHSM2 on Debian and Ubuntu is /usr/lib/softhsm/libsofthsm2.so.',
    );
  }
  assertModuleFile(chosen, origin ?? 'module-path');
  return chosen;
}

function assertModuleFile(path: string, origin: string): void {
  if (!isAbsolute(path)) {
    throw new KmsJwtError(
      'ERR_PKCS11_MODULE_NOT_FOUND',
      `The PKCS#11 module path "${shortenForMessage(path)}" (from ${origin}) is not absolute. ` +
        'Give the absolute path of the .so or .dll, so that no library search path decides ' +
        'which code is loaded.',
      { details: { modulePath: path } },
    );
  }
  const osCode = moduleFileProblem(path);
  if (osCode === null) return;
  const reason = osCode === undefined ? '' : ` (${osCode})`;
  throw new KmsJwtError(
    'ERR_PKCS11_MODULE_NOT_FOUND',
    `The PKCS#11 module "${shortenForMessage(path)}" (from ${origin}) does not exist or is not ` +
      `a file${reason}. Install the HSM vendor's client or SoftHSM2 (apt-get install softhsm2), ` +
      'and check the path.',
    { details: { modulePath: path, ...(osCode === undefined ? {} : { osCode }) } },
  );
}

/**
 * Returns null when `path` is a regular file, undefined when it is missing or not a file, and
 * the system error code when it cannot be examined, such as ENAMETOOLONG or EACCES. Node's own
 * error is not kept, because its message repeats the whole path.
 */
function moduleFileProblem(path: string): string | null | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false })?.isFile() ? null : undefined;
  } catch (error) {
    return String((error as NodeJS.ErrnoException).code ?? 'error');
  }
}

/**
 * Reads the PIN from the first source that is set. `pin-value` works but raises a `warning`
 * event, because a PIN inside a URI ends up in shell history, process lists and config files.
 *
 * @example
 * const uri = parsePkcs11Uri('pkcs11:token=apple;object=siwa?pin-source=file:/run/secrets/pin');
 * const { pin } = await resolvePin(uri, {});
 */
export async function resolvePin(
  uri: Pkcs11Uri,
  options: Pkcs11AccessOptions,
): Promise<ResolvedPin> {
  if (uri.pinSource !== undefined && uri.pinValue !== undefined) {
    throw new KmsJwtError(
      'ERR_KEY_REFERENCE_INVALID',
      'Invalid pkcs11 key reference: it has both pin-source and pin-value. Keep pin-source only.',
      { details: { adapter: 'pkcs11' } },
    );
  }
  if (uri.pinSource !== undefined) {
    return { pin: await readPinSource(uri.pinSource, options), source: 'pin-source' };
  }
  if (uri.pinValue !== undefined) {
    assertNotEmpty(uri.pinValue, 'The pin-value in the pkcs11: URI');
    emitEvent(options, {
      type: 'warning',
      code: 'pin-value-in-uri',
      message:
        'The pkcs11: URI carries the PIN in pin-value. Use pin-source=file:/PATH or the ' +
        `${defaultPinEnvironmentVariable} environment variable instead.`,
    });
    return { pin: uri.pinValue, source: 'pin-value' };
  }
  if (options.pin !== undefined) {
    assertNotEmpty(options.pin, 'The pin option');
    return { pin: options.pin, source: 'option' };
  }

  const variable = options.pinEnv ?? defaultPinEnvironmentVariable;
  const fromEnvironment = process.env[variable];
  if (fromEnvironment !== undefined && fromEnvironment !== '') {
    return { pin: fromEnvironment, source: 'environment' };
  }
  return { pin: undefined, source: 'none' };
}

/** Rejects an empty PIN before any login, because the token counts it as a failed attempt. */
function assertNotEmpty(pin: string, source: string): void {
  if (pin !== '') return;
  throw new KeyError(
    'ERR_PKCS11_PIN_MISSING',
    `${source} is empty, so no login was tried: the token would count an empty PIN as a failed ` +
      'attempt. Give the user PIN, or leave the setting out.',
  );
}

async function readPinSource(source: string, options: RuntimeOptions): Promise<string> {
  const path = pinSourcePath(source);
  let text: string;
  try {
    text = await readCapped(path);
  } catch (error) {
    if (error instanceof KeyError) throw error;
    throw new KeyError(
      'ERR_PKCS11_PIN_SOURCE_UNREADABLE',
      `The PIN file "${shortenForMessage(path)}" named by pin-source cannot be read ` +
        `(${(error as NodeJS.ErrnoException).code ?? 'error'}). Check the path and its permissions.`,
      { cause: error, details: { path } },
    );
  }

  warnIfShared(path, options);
  // Files written by `echo` end in line breaks that are not part of the PIN. A PIN with a line
  // break inside is taken for a wrong file, because sending it would cost a PIN attempt.
  const pin = text.replace(/[\r\n]+$/, '');
  if (pin === '') {
    throw new KeyError(
      'ERR_PKCS11_PIN_SOURCE_UNREADABLE',
      `The PIN file "${shortenForMessage(path)}" is empty.`,
      { details: { path } },
    );
  }
  if (/[\r\n]/.test(pin)) {
    throw new KeyError(
      'ERR_PKCS11_PIN_SOURCE_UNREADABLE',
      `The PIN file "${shortenForMessage(path)}" has more than one line, so no login was ` +
        'tried. Put only the user PIN in it, on one line.',
      { details: { path } },
    );
  }
  return pin;
}

// NOTE: an estimate, not a PKCS#11 limit, because each token reports its own ulMaxPinLen. The
// cap is meant only to stop a wrong file such as /dev/zero from being read into memory.
const maxPinFileBytes = 4096;

/** Reads a PIN file, or raises once it contains more than {@link maxPinFileBytes}. */
async function readCapped(path: string): Promise<string> {
  // A blocking open, because a pipe such as bash's <(...) is a fine PIN source.
  const handle = await open(path, 'r');
  try {
    const bytes = await readAtMost(handle, maxPinFileBytes);
    if (bytes === undefined) throw pinFileTooLarge(path);
    const text = bytes.toString('utf8');
    bytes.fill(0);
    return text;
  } finally {
    await handle.close();
  }
}

function pinFileTooLarge(path: string): KeyError {
  return new KeyError(
    'ERR_PKCS11_PIN_SOURCE_UNREADABLE',
    `The PIN file "${shortenForMessage(path)}" named by pin-source is larger than ` +
      `${maxPinFileBytes} bytes, far more than a PIN, so it was not used. Check the path.`,
    { details: { path } },
  );
}

function pinSourcePath(source: string): string {
  // URL parsing reads file:secrets/pin as /secrets/pin, not as a path relative to the working
  // folder, so only file:/PATH and file:///PATH are taken.
  if (source.startsWith('file:/')) {
    try {
      return fileURLToPath(source);
    } catch {
      // Falls through to the error below.
    }
  } else if (!source.startsWith('file:') && isAbsolute(source)) {
    return source;
  }
  throw new KmsJwtError(
    'ERR_KEY_REFERENCE_INVALID',
    'Invalid pkcs11 key reference: pin-source must be a file: URI with an absolute path, such ' +
      'as file:/run/secrets/hsm-pin, or an absolute path.',
    { details: { adapter: 'pkcs11' } },
  );
}

function warnIfShared(path: string, options: RuntimeOptions): void {
  if (process.platform === 'win32') return;
  const mode = statSync(path, { throwIfNoEntry: false })?.mode ?? 0;
  if ((mode & 0o077) === 0) return;
  emitEvent(options, {
    type: 'warning',
    code: 'pin-file-permissions',
    path,
    message:
      `The PIN file "${shortenForMessage(path)}" can be read by group or others; run chmod 600 ` +
      'on it.',
  });
}
