/**
 * The signer contract that every backend implements, and the runtime options bag that remote
 * backends accept. A signer produces ES256 signatures (ECDSA P-256 with SHA-256) in the 64-byte
 * JOSE form of RFC 7518 §3.4.
 */
import { createHash, type KeyObject } from 'node:crypto';

/**
 * An event reported to the caller's `onEvent` callback. It never carries key material, PINs or
 * token text.
 */
export interface SignerEvent {
  /** What happened, for example `retry`, `refresh`, `error` or `warning`. */
  type: string;
  /** Further fields, such as `attempt`, `delayMs`, `operation`, `code` or `message`. */
  [field: string]: unknown;
}

/** Runtime concerns for a signer or one call. Backend settings live in the key reference. */
export interface RuntimeOptions {
  /** Aborts the call. A remote signer rejects with a coded error whose `cause` is the reason. */
  signal?: AbortSignal;
  /** Deadline for one remote call, in milliseconds. Each backend documents its default. */
  timeoutMs?: number;
  /** Clock in milliseconds since the epoch. Defaults to `Date.now`. */
  now?: () => number;
  /** Receives retries, refreshes, warnings and errors. Without it the library prints nothing. */
  onEvent?: (event: SignerEvent) => void;
}

/** Options for one `sign` call. */
export interface SignOptions {
  signal?: AbortSignal;
}

/** Options for one `getPublicKey` call. */
export interface GetPublicKeyOptions {
  /** Fetch the key again instead of returning the cached one. */
  refresh?: boolean;
  signal?: AbortSignal;
}

/**
 * An ES256 signer whose private key may live anywhere: a file, a KMS, an HSM or an in-house
 * signing service.
 *
 * - `sign` receives the JWS signing input (`BASE64URL(header) || '.' || BASE64URL(payload)`) as
 *   bytes and resolves to the 64-byte r||s signature of RFC 7518 §3.4. A remote signer hashes the
 *   input once with SHA-256 (see {@link sha256}) and sends only the 32-byte digest, so that the
 *   backend must not hash it again. A backend that returns DER converts it with
 *   {@link derToJose}; it never guesses the format from the first byte.
 * - `getPublicKey` resolves to the matching P-256 public key and caches it. `refresh: true`
 *   fetches it again, which `signJwt` asks for once when a signature fails to verify.
 * - `close`, when present, releases sessions, sockets or timers.
 *
 * @example
 * const signer: Signer = {
 *   keyId: 'in-house:apple-siwa',
 *   async sign(signingInput) {
 *     const digest = sha256(signingInput);
 *     return derToJose(await myService.signDigest(digest));
 *   },
 *   async getPublicKey() {
 *     return createPublicKey(await myService.publicKeyPem());
 *   },
 * };
 */
export interface Signer {
  /** A label for messages and events, such as a key ARN or a file path. Never secret. */
  readonly keyId: string;
  sign(signingInput: Uint8Array, options?: SignOptions): Promise<Uint8Array>;
  getPublicKey(options?: GetPublicKeyOptions): Promise<KeyObject>;
  close?(): Promise<void>;
}

/** Hashes a JWS signing input with SHA-256, for signers that send a digest to their backend. */
export function sha256(signingInput: Uint8Array): Buffer {
  return createHash('sha256').update(signingInput).digest();
}

/** Reports an event when the caller supplied a callback. A throwing callback is ignored. */
export function emitEvent(options: RuntimeOptions | undefined, event: SignerEvent): void {
  if (!options?.onEvent) return;
  try {
    options.onEvent(event);
  } catch {
    // A faulty callback must not break signing.
  }
}
