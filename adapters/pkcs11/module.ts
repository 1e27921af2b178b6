/**
 * One loaded and initialised PKCS#11 module per process and module file, shared by every signer.
 * PKCS#11 allows one `C_Initialize` per process: a second one, even through another binding
 * instance, fails with CKR_CRYPTOKI_ALREADY_INITIALIZED (PKCS#11 v2.40 §5.4). The registry
 * therefore lives on `globalThis` under a `Symbol.for` key, so the ESM and CJS builds of this
 * package share it. Login state is per token and application, so each token is logged in once
 * and keeps one anchor session open: closing an application's last session logs it out.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { BackendError, KmsJwtError } from '../../src/errors.js';
import { emitEvent, type RuntimeOptions } from '../../src/signer.js';
import {
  CKF_OS_LOCKING_OK,
  CKF_SERIAL_SESSION,
  CKF_USER_PIN_COUNT_LOW,
  CKF_USER_PIN_FINAL_TRY,
  CKF_USER_PIN_LOCKED,
  CKR_CRYPTOKI_ALREADY_INITIALIZED,
  CKR_PIN_INCORRECT,
  CKR_USER_ALREADY_LOGGED_IN,
  CKU_USER,
  loadPkcs11Module,
  returnValueOf,
  type Handle,
  type Pkcs11Binding,
} from './binding.js';
import {
  initializeFailed,
  loginFailed,
  operationFailed,
  pinLocked,
  pinRejectedBefore,
} from './errors.js';

/** A module shared by every signer of the process that uses the same file. */
export interface ModuleEntry {
  readonly path: string;
  binding: Pkcs11Binding;
  users: number;
  /** False when something else in the process had already called C_Initialize. */
  ownsInitialize: boolean;
  tokens: Map<string, TokenEntry>;
  ready: Promise<void>;
}

/** A token in use by at least one signer, with its login state. */
export interface TokenEntry {
  readonly key: string;
  slot: Handle;
  readonly label: string;
  users: number;
  /** The session that keeps the login alive while any signer uses the token. */
  anchor: Handle | undefined;
  /** A salted digest of the PIN that logged in, to compare later PINs without keeping two. */
  pinDigest: Buffer | undefined;
  /** Kept in memory only, to log in again after the token logged this process out. */
  pin: string | undefined;
  /** The error of a failed login again; later recoveries raise it instead of trying the PIN. */
  loginRejected: KmsJwtError | BackendError | undefined;
}

const registryKey = Symbol.for('kms-jwt-signer.pkcs11.modules.v1');
const pinSalt = Symbol.for('kms-jwt-signer.pkcs11.pin-salt.v1');
const rejectedPinsKey = Symbol.for('kms-jwt-signer.pkcs11.rejected-pins.v1');

interface Registry {
  modules: Map<string, ModuleEntry>;
}

/** The process-wide registry, created on first use by whichever build gets here first. */
export function moduleRegistry(): Registry {
  const store = globalThis as { [registryKey]?: Registry };
  store[registryKey] ??= { modules: new Map() };
  return store[registryKey];
}

/**
 * Loads and initialises the module at `modulePath`, or joins the one already loaded from the
 * same file. Each successful call must be paired with {@link releaseModule}.
 *
 * @example
 * const entry = await acquireModule('/usr/lib/softhsm/libsofthsm2.so', {});
 */
export async function acquireModule(
  modulePath: string,
  options: RuntimeOptions,
): Promise<ModuleEntry> {
  // Symlinks to one file share the library's global state, so they share one entry too.
  const path = realpathSync(modulePath);
  const registry = moduleRegistry();
  let entry = registry.modules.get(path);

  if (!entry) {
    const pkcs11 = await loadPkcs11Module();
    entry = registry.modules.get(path);
    if (!entry) {
      entry = createEntry(path, new pkcs11.PKCS11());
      registry.modules.set(path, entry);
      entry.ready = initializeEntry(entry, modulePath, options);
    }
  }

  entry.users += 1;
  try {
    await entry.ready;
  } catch (error) {
    entry.users -= 1;
    throw error;
  }
  return entry;
}

function createEntry(path: string, binding: Pkcs11Binding): ModuleEntry {
  return {
    path,
    binding,
    users: 0,
    ownsInitialize: false,
    tokens: new Map(),
    ready: Promise.resolve(),
  };
}

async function initializeEntry(
  entry: ModuleEntry,
  modulePath: string,
  options: RuntimeOptions,
): Promise<void> {
  try {
    loadLibrary(entry.binding, modulePath);
  } catch (error) {
    moduleRegistry().modules.delete(entry.path);
    throw error;
  }

  try {
    callInitialize(entry, options);
  } catch (error) {
    moduleRegistry().modules.delete(entry.path);
    entry.binding.close();
    throw error;
  }
}

function loadLibrary(binding: Pkcs11Binding, modulePath: string): void {
  try {
    binding.load(modulePath);
  } catch (error) {
    throw new BackendError(
      'ERR_PKCS11_MODULE_LOAD_FAILED',
      `The PKCS#11 module "${modulePath}" could not be loaded: ${(error as Error).message}. ` +
        'Check that it is a PKCS#11 library built for this platform and architecture.',
      { cause: error, details: { modulePath } },
    );
  }
}

function callInitialize(entry: ModuleEntry, options: RuntimeOptions): void {
  // CKF_OS_LOCKING_OK: signs run on libuv worker threads, so the module must lock itself.
  try {
    entry.binding.C_Initialize({ flags: CKF_OS_LOCKING_OK });
    entry.ownsInitialize = true;
  } catch (error) {
    if (returnValueOf(error) !== CKR_CRYPTOKI_ALREADY_INITIALIZED) {
      throw initializeFailed(entry.path, error);
    }
    emitEvent(options, {
      type: 'warning',
      code: 'module-already-initialized',
      modulePath: entry.path,
      message:
        'Another part of this process had already initialised the PKCS#11 module, so this ' +
        'package uses it as is and will not finalise it.',
    });
  }
}

/** Drops one user of the module and finalises it when the last user leaves. */
export function releaseModule(entry: ModuleEntry): void {
  entry.users -= 1;
  if (entry.users > 0) return;

  moduleRegistry().modules.delete(entry.path);
  for (const token of entry.tokens.values()) closeAnchor(entry, token);
  entry.tokens.clear();
  if (entry.ownsInitialize) {
    try {
      entry.binding.C_Finalize();
    } catch {
      // The module is being unloaded; a failing C_Finalize leaves nothing to undo.
    }
  }
  entry.binding.close();
}

/**
 * Joins the token in `slot`, logging in with `pin` when the process is not logged in yet. Each
 * successful call must be paired with {@link releaseToken}.
 */
export function acquireToken(
  entry: ModuleEntry,
  slot: Handle,
  label: string,
  pin: string | undefined,
  options: RuntimeOptions & { allowFinalPinTry?: boolean },
): TokenEntry {
  const key = slot.toString('hex');
  let token = entry.tokens.get(key);
  if (!token) {
    token = {
      key,
      slot,
      label,
      users: 0,
      anchor: undefined,
      pinDigest: undefined,
      pin: undefined,
      loginRejected: undefined,
    };
    entry.tokens.set(key, token);
  }

  token.users += 1;
  try {
    if (pin !== undefined) ensureLoggedIn(entry, token, pin, options);
  } catch (error) {
    releaseToken(entry, token);
    throw error;
  }
  return token;
}

/** Drops one user of the token, closing its anchor session (and so its login) after the last. */
export function releaseToken(entry: ModuleEntry, token: TokenEntry): void {
  token.users -= 1;
  if (token.users > 0) return;
  closeAnchor(entry, token);
  entry.tokens.delete(token.key);
}

function closeAnchor(entry: ModuleEntry, token: TokenEntry): void {
  if (!token.anchor) return;
  try {
    entry.binding.C_CloseSession(token.anchor);
  } catch {
    // The session may already be gone, for example after the token was removed.
  }
  token.anchor = undefined;
  token.pinDigest = undefined;
  token.pin = undefined;
}

/** Logs the process in to the token once. A later caller must bring the same PIN. */
export function ensureLoggedIn(
  entry: ModuleEntry,
  token: TokenEntry,
  pin: string,
  options: RuntimeOptions & { allowFinalPinTry?: boolean },
): void {
  const digest = digestPin(pin);
  if (token.pinDigest) {
    if (timingSafeEqual(token.pinDigest, digest)) return;
    throw new KmsJwtError(
      'ERR_PKCS11_PIN_MISMATCH',
      `This process is already logged in to token "${token.label}" with a different PIN. ` +
        'PKCS#11 keeps one login per token and application, so every signer of the token must ' +
        'use the same PIN.',
      { details: { token: token.label } },
    );
  }

  assertPinUsable(entry, token, options);
  assertNotRejected(entry, token, digest);
  login(entry, token, pin);
  token.pinDigest = digest;
  token.pin = pin;
  token.loginRejected = undefined;
}

/**
 * Logs in again with the remembered PIN after the token reported CKR_USER_NOT_LOGGED_IN, for
 * example because all of the process's sessions were closed. The PIN is forgotten before the
 * attempt and kept again only when it works, so a PIN that the token rejects is tried once:
 * every later recovery raises the same error without calling C_Login.
 */
export function loginAgain(entry: ModuleEntry, token: TokenEntry): void {
  if (token.loginRejected) throw token.loginRejected;
  const pin = token.pin;
  closeAnchor(entry, token);
  if (pin === undefined) return;

  try {
    login(entry, token, pin);
  } catch (error) {
    token.loginRejected = error as KmsJwtError;
    throw error;
  }
  token.pinDigest = digestPin(pin);
  token.pin = pin;
}

function login(entry: ModuleEntry, token: TokenEntry, pin: string): void {
  token.anchor ??= openAnchor(entry, token);
  try {
    entry.binding.C_Login(token.anchor, CKU_USER, pin);
  } catch (error) {
    const value = returnValueOf(error);
    if (value === CKR_USER_ALREADY_LOGGED_IN) return;
    if (value === CKR_PIN_INCORRECT) rejectedPins().add(rejectionKey(entry, token, pin));
    closeAnchor(entry, token);
    throw loginFailed(token.label, error);
  }
}

/**
 * Returns the PINs that a token rejected in this process, as salted digests. They outlive every
 * signer and module entry, so signers created at once or again after a failure never spend a
 * second attempt on a PIN the token already rejected.
 */
function rejectedPins(): Set<string> {
  const store = globalThis as { [rejectedPinsKey]?: Set<string> };
  store[rejectedPinsKey] ??= new Set();
  return store[rejectedPinsKey];
}

function rejectionKey(entry: ModuleEntry, token: TokenEntry, pin: string | Buffer): string {
  const digest = typeof pin === 'string' ? digestPin(pin) : pin;
  return `${entry.path}\0${token.key}\0${token.label}\0${digest.toString('hex')}`;
}

function assertNotRejected(entry: ModuleEntry, token: TokenEntry, digest: Buffer): void {
  if (!rejectedPins().has(rejectionKey(entry, token, digest))) return;
  throw pinRejectedBefore(token.label);
}

function openAnchor(entry: ModuleEntry, token: TokenEntry): Handle {
  try {
    return entry.binding.C_OpenSession(token.slot, CKF_SERIAL_SESSION);
  } catch (error) {
    throw operationFailed('C_OpenSession', `token "${token.label}"`, error);
  }
}

function assertPinUsable(
  entry: ModuleEntry,
  token: TokenEntry,
  options: RuntimeOptions & { allowFinalPinTry?: boolean },
): void {
  const flags = entry.binding.C_GetTokenInfo(token.slot).flags;
  if (flags & CKF_USER_PIN_LOCKED) throw pinLocked(token.label);

  if (flags & CKF_USER_PIN_FINAL_TRY && !options.allowFinalPinTry) {
    throw new KmsJwtError(
      'ERR_PKCS11_PIN_FINAL_TRY',
      `Token "${token.label}" allows one more user PIN attempt before it locks, so no login was ` +
        'tried. Check the PIN, then pass allowFinalPinTry: true, or log in once with a tool you ' +
        'trust to reset the counter.',
      { details: { token: token.label } },
    );
  }
  if (flags & CKF_USER_PIN_COUNT_LOW) {
    emitEvent(options, {
      type: 'warning',
      code: 'pin-count-low',
      token: token.label,
      message: `Token "${token.label}" reports failed user PIN attempts since the last login.`,
    });
  }
}

function digestPin(pin: string): Buffer {
  const store = globalThis as { [pinSalt]?: Buffer };
  store[pinSalt] ??= randomBytes(32);
  return createHash('sha256').update(store[pinSalt]).update(pin, 'utf8').digest();
}
