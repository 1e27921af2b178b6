/**
 * The AWS KMS signer. It hashes the JWS signing input once with SHA-256, sends the digest to
 * `Sign` with `MessageType: DIGEST` and `ECDSA_SHA_256`, and converts the DER signature to the
 * 64-byte JOSE form with the strict `derToJose` (RFC 7518 §3.4). It fetches the public key with
 * `GetPublicKey` on first use, checks that the key can make ES256 signatures, and caches it per
 * key ARN. It verifies no signature itself: `signJwt` does that against `getPublicKey()`.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { GetPublicKeyCommandOutput, SignCommandOutput } from '@aws-sdk/client-kms';
import { derToJose } from '../../src/der.js';
import { BackendError, SignatureError, isKmsJwtError } from '../../src/errors.js';
import { describeKeyObject } from '../../src/key-description.js';
import {
  sha256,
  type GetPublicKeyOptions,
  type SignOptions,
  type Signer,
} from '../../src/signer.js';
import type { KmsConnection } from './client.js';
import { arnScope, isKeyArn, type AwsKmsReference } from './reference.js';

const requiredKeySpec = 'ECC_NIST_P256';
const requiredKeyUsage = 'SIGN_VERIFY';
const requiredAlgorithm = 'ECDSA_SHA_256';

/** A `Signer` backed by one AWS KMS key, addressed by key ID, key ARN, alias or alias ARN. */
export class AwsKmsSigner implements Signer {
  readonly #kms: KmsConnection;
  readonly #reference: AwsKmsReference;
  /** Public keys by key ARN; a pending fetch is shared by concurrent callers. */
  readonly #publicKeys = new Map<string, Promise<KeyObject>>();
  /** The DER SPKI first accepted for each key ARN, which a refresh must return again. */
  readonly #firstSpkiByArn = new Map<string, Buffer>();
  /** The ARN that the last response named; for an alias it changes when the alias moves. */
  #keyArn: string | undefined;
  /** The signal given at creation, which aborts every call of this signer. */
  readonly #signal: AbortSignal | undefined;
  #closed = false;

  constructor(kms: KmsConnection, reference: AwsKmsReference, signal?: AbortSignal) {
    this.#kms = kms;
    this.#reference = reference;
    this.#signal = signal;
    if (reference.kind === 'key-arn') this.#keyArn = reference.keyId;
  }

  /** The key ARN once known, else the key ID or alias from the reference. */
  get keyId(): string {
    return this.#keyArn ?? this.#reference.keyId;
  }

  /**
   * Signs the SHA-256 digest of `signingInput` and returns the 64-byte r||s signature.
   *
   * @example
   * const signature = await signer.sign(Buffer.from('eyJhbGciOiJFUzI1NiJ9.e30'));
   */
  async sign(signingInput: Uint8Array, options: SignOptions = {}): Promise<Uint8Array> {
    if (!(signingInput instanceof Uint8Array)) throw new TypeError('sign expects a Uint8Array.');
    this.#assertOpen();
    // The first use checks the key spec, so that a wrong key fails before it signs anything.
    await this.getPublicKey({ signal: options.signal });

    const command = new this.#kms.sdk.SignCommand({
      KeyId: this.#reference.keyId,
      Message: sha256(signingInput),
      MessageType: 'DIGEST',
      SigningAlgorithm: requiredAlgorithm,
    });
    const signal = combineSignals(this.#signal, options.signal);
    const output = await this.#kms.send<SignCommandOutput>('Sign', this.keyId, command, signal);
    const keyArn = this.#acceptKeyArn(output.KeyId, 'Sign');
    if (!(output.Signature instanceof Uint8Array))
      throw invalidResponse('Sign', keyArn, 'it has no Signature');
    return convertSignature(output.Signature, keyArn);
  }

  /**
   * Returns the key's P-256 public key, fetched with `GetPublicKey` on first use and cached per
   * key ARN. `refresh: true` fetches it again.
   *
   * @example
   * const publicKey = await signer.getPublicKey();
   */
  async getPublicKey(options: GetPublicKeyOptions = {}): Promise<KeyObject> {
    this.#assertOpen();
    const cacheKey = this.#keyArn ?? this.#reference.keyId;
    const signal = combineSignals(this.#signal, options.signal);
    if (signal?.aborted) throw this.#kms.abortError('GetPublicKey', cacheKey, signal);

    let pending = this.#publicKeys.get(cacheKey);
    if (!pending || options.refresh) {
      pending = this.#fetchPublicKey(cacheKey);
      this.#publicKeys.set(cacheKey, pending);
      const started = pending;
      started.catch(() => {
        if (this.#publicKeys.get(cacheKey) === started) this.#publicKeys.delete(cacheKey);
      });
    }
    return signal ? this.#waitUnlessAborted(pending, cacheKey, signal) : pending;
  }

  /**
   * Destroys the KMS client when the adapter built it. Later calls reject with
   * `ERR_AWS_KMS_SIGNER_CLOSED`, also with a caller's client, which stays open.
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#kms.close();
  }

  // The SDK opens new sockets on a destroyed client, so only this flag stops a closed signer.
  #assertOpen(): void {
    if (!this.#closed) return;
    throw new BackendError(
      'ERR_AWS_KMS_SIGNER_CLOSED',
      `The AWS KMS signer for ${this.keyId} is closed. Create a new signer.`,
      { details: { key: this.keyId } },
    );
  }

  // Concurrent callers share one fetch, so it runs under the signer's own signal and deadline
  // but without any one caller's signal. Each caller's signal ends that caller's wait instead.
  async #fetchPublicKey(keyId: string): Promise<KeyObject> {
    const command = new this.#kms.sdk.GetPublicKeyCommand({ KeyId: keyId });
    const output = await this.#kms.send<GetPublicKeyCommandOutput>(
      'GetPublicKey',
      keyId,
      command,
      this.#signal,
    );
    const keyArn = this.#acceptKeyArn(output.KeyId, 'GetPublicKey');
    assertEs256Key(output, keyArn);

    const publicKey = parsePublicKey(output.PublicKey, keyArn);
    this.#assertSameKeyAsBefore(publicKey, keyArn);
    if (keyArn !== keyId) this.#publicKeys.set(keyArn, Promise.resolve(publicKey));
    return publicKey;
  }

  // AWS KMS never changes the key material of an asymmetric key, neither by rotation nor by
  // re-import, so one key ARN has one public key for life. A different key under the same ARN
  // comes from a faulty endpoint, and accepting it on a refresh would let a signature by a
  // foreign key pass the verify-after-sign check.
  #assertSameKeyAsBefore(publicKey: KeyObject, keyArn: string): void {
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    const first = this.#firstSpkiByArn.get(keyArn);
    if (first === undefined) {
      this.#firstSpkiByArn.set(keyArn, spki);
      return;
    }
    if (!first.equals(spki)) {
      throw invalidResponse(
        'GetPublicKey',
        keyArn,
        'its PublicKey differs from the one returned earlier for the same key ARN, although ' +
          'the key material of an asymmetric AWS KMS key never changes',
      );
    }
  }

  #waitUnlessAborted(
    pending: Promise<KeyObject>,
    keyId: string,
    signal: AbortSignal,
  ): Promise<KeyObject> {
    return new Promise<KeyObject>((resolve, reject) => {
      const onAbort = () => reject(this.#kms.abortError('GetPublicKey', keyId, signal));
      signal.addEventListener('abort', onAbort, { once: true });
      pending.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  // KMS returns the key ARN in every response, even for a request by alias. For a request by
  // key ID or key ARN, any other ARN means the response is not about the key that was named.
  // An alias points only at keys of its own account and region, so a request by alias ARN must
  // get a key ARN of that partition, region and account. The response's KeyId goes into
  // messages and events, so only a well-formed key ARN is kept or quoted.
  #acceptKeyArn(keyArn: string | undefined, operation: string): string {
    if (typeof keyArn !== 'string' || keyArn === '') {
      throw invalidResponse(operation, this.keyId, 'it has no key ARN in KeyId');
    }
    if (!isKeyArn(keyArn))
      throw invalidResponse(operation, this.keyId, 'its KeyId is not a key ARN');

    const { kind, keyId } = this.#reference;
    const mismatch =
      (kind === 'key-arn' && keyArn !== keyId) ||
      (kind === 'key-id' && !keyArn.endsWith(`:key/${keyId}`)) ||
      (kind === 'alias-arn' && !keyArn.startsWith(arnScope(keyId)!));
    if (mismatch)
      throw invalidResponse(operation, this.keyId, `it names a different key, ${keyArn}`);
    this.#keyArn = keyArn;
    return keyArn;
  }
}

/** Joins the signer's signal and a call's signal; either one aborts the call. */
function combineSignals(
  signer: AbortSignal | undefined,
  call: AbortSignal | undefined,
): AbortSignal | undefined {
  if (signer === undefined || signer === call) return call;
  if (call === undefined) return signer;
  return AbortSignal.any([signer, call]);
}

function assertEs256Key(output: GetPublicKeyCommandOutput, keyArn: string): void {
  const keySpec = output.KeySpec ?? output.CustomerMasterKeySpec;
  const algorithms = output.SigningAlgorithms ?? [];
  const problems: string[] = [];
  if (keySpec !== requiredKeySpec)
    problems.push(`KeySpec is ${keySpec ?? 'missing'}, not ${requiredKeySpec}`);
  if (output.KeyUsage !== requiredKeyUsage) {
    problems.push(`KeyUsage is ${output.KeyUsage ?? 'missing'}, not ${requiredKeyUsage}`);
  }
  if (!algorithms.includes(requiredAlgorithm)) {
    problems.push(`SigningAlgorithms [${algorithms.join(', ')}] lack ${requiredAlgorithm}`);
  }
  if (problems.length === 0) return;

  throw new BackendError(
    'ERR_AWS_KMS_KEY_UNSUITABLE',
    `AWS KMS key ${keyArn} cannot make ES256 signatures: ${problems.join('; ')}. Create or import ` +
      'a key with KeySpec ECC_NIST_P256 and KeyUsage SIGN_VERIFY.',
    { details: { key: keyArn, keySpec, keyUsage: output.KeyUsage, signingAlgorithms: algorithms } },
  );
}

function parsePublicKey(spki: Uint8Array | undefined, keyArn: string): KeyObject {
  if (!(spki instanceof Uint8Array))
    throw invalidResponse('GetPublicKey', keyArn, 'it has no PublicKey');
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (error) {
    throw invalidResponse(
      'GetPublicKey',
      keyArn,
      'its PublicKey is not a DER SubjectPublicKeyInfo',
      error,
    );
  }
  const curve = publicKey.asymmetricKeyDetails?.namedCurve;
  if (publicKey.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    throw invalidResponse(
      'GetPublicKey',
      keyArn,
      `its PublicKey is ${describeKeyObject(publicKey)}, not an EC P-256 key`,
    );
  }
  return publicKey;
}

function convertSignature(der: Uint8Array, keyArn: string): Uint8Array {
  try {
    return derToJose(der);
  } catch (error) {
    if (!isKmsJwtError(error)) throw error;
    throw new SignatureError(
      error.code,
      `AWS KMS key ${keyArn} returned a signature that is not strict DER: ${error.message} No token was made.`,
      { cause: error, details: { key: keyArn } },
    );
  }
}

function invalidResponse(
  operation: string,
  key: string,
  problem: string,
  cause?: unknown,
): BackendError {
  return new BackendError(
    'ERR_AWS_KMS_RESPONSE_INVALID',
    `AWS KMS ${operation} for ${key} returned an unusable response: ${problem}. Check that the endpoint is AWS KMS.`,
    { cause, details: { operation, key } },
  );
}
