/**
 * Maps PKCS#11 return values (CK_RV) from the binding to this package's coded errors. Messages
 * name the operation, the token or object and the CKR_ value, and never a PIN.
 */
import { BackendError, KeyError } from '../../src/errors.js';
import {
  CKR_DEVICE_MEMORY,
  CKR_DEVICE_REMOVED,
  CKR_GENERAL_ERROR,
  CKR_KEY_FUNCTION_NOT_PERMITTED,
  CKR_PIN_EXPIRED,
  CKR_PIN_INCORRECT,
  CKR_PIN_INVALID,
  CKR_PIN_LEN_RANGE,
  CKR_PIN_LOCKED,
  CKR_TOKEN_NOT_PRESENT,
  CKR_USER_PIN_NOT_INITIALIZED,
  returnValueName,
  returnValueOf,
} from './binding.js';

/**
 * Describes what to do about a failed call, chosen by its CK_RV, as sentences that end a message.
 *
 * @example
 * `PKCS#11 C_FindObjects failed: ${returnValueName(error)}. ${fixFor(error)}`;
 */
export function fixFor(error: unknown): string {
  switch (returnValueOf(error)) {
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
      return (
        'The key does not allow this operation, for example because its CKA_SIGN attribute is ' +
        'false. Allow signing on the key, or import the key again.'
      );
    case CKR_DEVICE_MEMORY:
      return 'The token is out of memory. Delete objects it no longer needs, or use another token.';
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
      return 'The token was removed; reconnect it and create a new signer.';
    default:
      return (
        "Check the token and its connection with the vendor's tool (for SoftHSM2: " +
        'softhsm2-util --show-slots), then try again. Report the CKR_ value to the vendor if it ' +
        'persists.'
      );
  }
}

/**
 * Wraps a failed binding call as `ERR_PKCS11_OPERATION_FAILED`, naming the PKCS#11 function,
 * the CKR_ value and what it was called for.
 */
export function operationFailed(operation: string, subject: string, error: unknown): BackendError {
  const name = returnValueName(error);
  return new BackendError(
    'ERR_PKCS11_OPERATION_FAILED',
    `PKCS#11 ${operation} failed for ${subject}: ${name}. ${fixFor(error)}`,
    { cause: error, details: { operation, returnValue: name } },
  );
}

/** Maps a failed `C_Login` to a coded error. A wrong PIN is reported at once, never retried. */
export function loginFailed(token: string, error: unknown): KeyError | BackendError {
  const value = returnValueOf(error);
  const name = returnValueName(error);
  const details = { token, returnValue: name };

  if (value === CKR_PIN_INCORRECT) {
    return new KeyError(
      'ERR_PKCS11_PIN_INCORRECT',
      `The PIN for token "${token}" is incorrect (CKR_PIN_INCORRECT). It was tried once and not ` +
        'again, because HSMs lock the user PIN after a few failures. Fix the PIN source.',
      { cause: error, details },
    );
  }
  if (value === CKR_PIN_LOCKED) return pinLocked(token, error);
  if (value === CKR_PIN_EXPIRED || value === CKR_PIN_INVALID || value === CKR_PIN_LEN_RANGE) {
    return new KeyError(
      'ERR_PKCS11_LOGIN_FAILED',
      `Login to token "${token}" was rejected with ${name}. Set a valid user PIN on the token ` +
        "with the HSM vendor's tool.",
      { cause: error, details },
    );
  }
  if (value === CKR_USER_PIN_NOT_INITIALIZED) {
    return new KeyError(
      'ERR_PKCS11_LOGIN_FAILED',
      `Login to token "${token}" failed: ${name}. The token has no user PIN yet. Have the ` +
        'security officer set one (for SoftHSM2: softhsm2-util --init-token with --pin; for an ' +
        "HSM: the vendor's admin tool).",
      { cause: error, details },
    );
  }
  return new BackendError(
    'ERR_PKCS11_LOGIN_FAILED',
    `Login to token "${token}" failed: ${name}. ${fixFor(error)}`,
    { cause: error, details },
  );
}

/** Reports a PIN that the token already rejected in this process; no login is tried. */
export function pinRejectedBefore(token: string): KeyError {
  return new KeyError(
    'ERR_PKCS11_PIN_INCORRECT',
    `The PIN for token "${token}" was rejected (CKR_PIN_INCORRECT) earlier in this process, so ` +
      'it was not tried again, because HSMs lock the user PIN after a few failures. Fix the PIN ' +
      'source. If the PIN on the token was reset to this value, restart the process.',
    { details: { token, returnValue: 'CKR_PIN_INCORRECT' } },
  );
}

/** The token's user PIN is locked: no login is tried. */
export function pinLocked(token: string, error?: unknown): KeyError {
  return new KeyError(
    'ERR_PKCS11_PIN_LOCKED',
    `The user PIN of token "${token}" is locked. The security officer must unlock or reset it ` +
      "(for SoftHSM2: softhsm2-util --init-token again; for an HSM: the vendor's admin tool).",
    { cause: error, details: { token } },
  );
}

/** Explains a failed `C_Initialize`, with the SoftHSM2 configuration hint for CKR_GENERAL_ERROR. */
export function initializeFailed(modulePath: string, error: unknown): BackendError {
  const name = returnValueName(error);
  const hint =
    returnValueOf(error) === CKR_GENERAL_ERROR
      ? ' SoftHSM2 returns this when its configuration file is missing: check that SOFTHSM2_CONF ' +
        'names a readable file whose directories.tokendir exists.'
      : '';
  return new BackendError(
    'ERR_PKCS11_MODULE_INIT_FAILED',
    `C_Initialize of PKCS#11 module "${modulePath}" failed: ${name}.${hint}`,
    { cause: error, details: { modulePath, returnValue: name } },
  );
}
