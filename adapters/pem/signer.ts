/**
 * The local ES256 signer: a P-256 private key parsed once into a KeyObject and used with
 * node:crypto, which returns the 64-byte r||s form of RFC 7518 §3.4 directly
 * (`dsaEncoding: 'ieee-p1363'`). No key text or key bytes are kept, only the KeyObject, which
 * lives in a closure and is not reachable through the signer object.
 */
import { sign, type KeyObject } from 'node:crypto';
import { KeyError } from '../../src/errors.js';
import { markTrustedLocalSigner } from '../../src/internal.js';
import type { GetPublicKeyOptions, Signer, SignOptions } from '../../src/signer.js';
import { reportKeyFilePermissions } from './file-checks.js';
import { readPrivateKey } from './load.js';
import {
  assertPassphraseOptions,
  assertPemSource,
  type PemSignerOptions,
  type PemSource,
} from './source.js';

/**
 * Creates a signer for a local P-256 key: an Apple `.p8` (PKCS#8) or SEC1 file, an environment
 * variable or inline PEM. Mangled text that is still unambiguous is repaired, and each repair is
 * reported as a `key-normalised` event.
 *
 * @example
 * const signer = await createPemSigner({ path: 'AuthKey_ABC123DEFG.p8' });
 * const token = await signJwt(signer, { header: { alg: 'ES256', kid: 'ABC123DEFG' }, payload });
 */
export async function createPemSigner(
  source: PemSource,
  options: PemSignerOptions = {},
): Promise<Signer> {
  assertPemSource(source, 'createPemSigner');
  assertPassphraseOptions(options, 'createPemSigner');
  throwIfAborted(options.signal, 'createPemSigner', undefined);

  const loaded = await readPrivateKey(source, options);
  if (loaded.path !== undefined) {
    reportKeyFilePermissions(loaded.path, loaded.origin.keyId, options);
  }
  return buildSigner(loaded.origin.keyId, loaded.privateKey, loaded.publicKey);
}

function buildSigner(keyId: string, privateKey: KeyObject, publicKey: KeyObject): Signer {
  let key: KeyObject | undefined = privateKey;

  const signer: Signer = {
    keyId,
    async sign(signingInput: Uint8Array, options?: SignOptions): Promise<Uint8Array> {
      throwIfAborted(options?.signal, 'sign', keyId);
      assertSigningInput(signingInput);
      if (key === undefined) throw closedError(keyId);
      return sign('sha256', signingInput, { key, dsaEncoding: 'ieee-p1363' });
    },
    async getPublicKey(options?: GetPublicKeyOptions): Promise<KeyObject> {
      // The public key is derived from the private key in memory, so a refresh returns it again.
      throwIfAborted(options?.signal, 'getPublicKey', keyId);
      return publicKey;
    },
    async close(): Promise<void> {
      key = undefined;
    },
  };
  markTrustedLocalSigner(signer);
  return Object.freeze(signer);
}

function assertSigningInput(signingInput: unknown): void {
  if (signingInput instanceof Uint8Array) return;
  throw new TypeError('sign expects the JWS signing input as a Uint8Array.');
}

/**
 * Raises `ERR_KEY_ABORTED` when `signal` is already aborted. Local signing is synchronous, so a
 * signal can only stop a call before it starts.
 */
function throwIfAborted(
  signal: AbortSignal | undefined,
  operation: 'createPemSigner' | 'sign' | 'getPublicKey',
  keyId: string | undefined,
): void {
  if (signal?.aborted !== true) return;
  const subject = keyId === undefined ? 'a local key' : `local key ${keyId}`;
  throw new KeyError(
    'ERR_KEY_ABORTED',
    `${operation} for ${subject} was aborted by the caller's signal before it started. ` +
      "The signal's reason is the cause.",
    { cause: signal.reason, details: { operation, ...(keyId === undefined ? {} : { keyId }) } },
  );
}

function closedError(keyId: string): KeyError {
  return new KeyError(
    'ERR_KEY_SIGNER_CLOSED',
    `The signer for ${keyId} was closed, so its private key is released. Create a new signer.`,
    { details: { keyId } },
  );
}
