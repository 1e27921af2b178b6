/**
 * Coded errors of the local key loader. Every message names the key's origin (a file path, an
 * environment variable name or "inline PEM") and what was found, and never contains key text or
 * key bytes.
 */
import { KeyError } from '../../src/errors.js';

/** Where a key came from, as used in messages and `error.details`. */
export interface KeyOrigin {
  /** The signer's key ID: `file:<absolute path>`, `env:<NAME>` or `pem:inline`. */
  keyId: string;
  /** Words for messages, such as `key file /etc/keys/AuthKey_ABC123DEFG.p8`. */
  description: string;
}

/** The origin used for a key given as a string or Buffer. */
export const inlineOrigin: KeyOrigin = { keyId: 'pem:inline', description: 'inline PEM' };

/** Builds a `KeyError` whose message starts with the key's origin. */
export function keyError(
  code: string,
  origin: KeyOrigin,
  problem: string,
  extra: { cause?: unknown; details?: Record<string, unknown> } = {},
): KeyError {
  const message = `${capitalise(origin.description)}: ${problem}`;
  const details = { keyId: origin.keyId, ...extra.details };
  return new KeyError(code, message, { cause: extra.cause, details });
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
