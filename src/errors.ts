/**
 * Coded errors. Every failure that is not a caller's misuse is a `KmsJwtError` with a stable
 * `code` that callers can `switch` on; docs/errors.md lists each code with what to do. Misuse,
 * such as a wrong argument type, throws `TypeError`. Check errors by `code`, not `instanceof`,
 * because the ESM and CJS builds each carry their own copy of these classes.
 */

/** Options for a coded error. */
export interface KmsJwtErrorOptions {
  /** The underlying error, such as the SDK's. */
  cause?: unknown;
  /** Structured, non-secret facts about the failure, for example `{ field: 'iss' }`. */
  details?: Record<string, unknown>;
}

/** Base class of every coded error raised by this package. */
export class KmsJwtError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown>;

  constructor(code: string, message: string, options: KmsJwtErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details ?? {};
  }
}

/** A key that cannot be loaded or is not a P-256 signing key. */
export class KeyError extends KmsJwtError {}

/** Token fields that break the rules of the token kind, caught before signing. */
export class ClaimsError extends KmsJwtError {}

/** A signature that is malformed, or that fails to verify after signing. */
export class SignatureError extends KmsJwtError {}

/** A failure reported by, or while talking to, a KMS, an HSM or another signing backend. */
export class BackendError extends KmsJwtError {}

/** Returns true when `error` carries a string `code` starting with `ERR_`, from either build. */
export function isKmsJwtError(error: unknown): error is KmsJwtError {
  if (!(error instanceof Error)) return false;
  const code: unknown = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('ERR_');
}
