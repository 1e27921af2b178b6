/**
 * The Cloud KMS signer. It hashes the JWS signing input once, sends the SHA-256 digest to
 * AsymmetricSign (`digest.sha256`) with the full CRC32C round trip, and converts the DER
 * signature strictly to the 64-byte form of RFC 7518 §3.4. Before first use it checks that the
 * version is ENABLED and uses EC_SIGN_P256_SHA256. Verifying the signature is left to
 * `signJwt`, which uses `getPublicKey`.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { BackendError, KmsJwtError } from '../../src/errors.js';
import { describeKeyObject } from '../../src/key-description.js';
import { parseKeyReference, type KeyReference } from '../../src/key-uri.js';
import {
  emitEvent,
  sha256,
  type GetPublicKeyOptions,
  type RuntimeOptions,
  type SignOptions,
  type Signer,
} from '../../src/signer.js';
import {
  defaultMaxAttempts,
  defaultTimeoutMs,
  initializeClient,
  maxTimerMs,
  runKmsCall,
  type CallSettings,
  type IntegrityProblem,
} from './call.js';
import {
  assertSignerClient,
  createKmsClient,
  type AsymmetricSignResponse,
  type GcpKmsClient,
} from './client.js';
import { grpcStatus, mapKmsError, quoteServerText } from './errors.js';
import {
  checkPublicKeyResponse,
  checkSignResponse,
  convertSignature,
  crc32c,
} from './integrity.js';
import { isVersionNameOf, parseGcpKmsReference, type GcpKmsReference } from './reference.js';

/** Options of {@link createGcpKmsSigner}: runtime concerns plus an optional client. */
export interface GcpKmsSignerOptions extends RuntimeOptions {
  /**
   * A `KeyManagementServiceClient` to use instead of one built from the reference. It wins over
   * any `endpoint` attribute, and the signer never closes it.
   */
  client?: GcpKmsClient;
  /** Attempts per operation, counting transient and integrity failures. Default 3. */
  maxAttempts?: number;
}

/** The only algorithm an ES256 signer can use (Cloud KMS CryptoKeyVersionAlgorithm). */
export const es256Algorithm = 'EC_SIGN_P256_SHA256';

/**
 * Creates an ES256 signer for a Cloud KMS key version. The reference must name a version.
 *
 * @example
 * const signer = await createGcpKmsSigner(
 *   'gcpkms:projects/acme/locations/global/keyRings/apple/cryptoKeys/siwa/cryptoKeyVersions/1',
 * );
 */
export async function createGcpKmsSigner(
  reference: string | KeyReference,
  options: GcpKmsSignerOptions = {},
): Promise<Signer> {
  const parsed = parseGcpKmsReference(toKeyReference(reference));
  const settings = callSettingsFrom(options);
  const owned = options.client === undefined;
  if (!owned) assertSignerClient(options.client);
  const client = options.client ?? (await createKmsClient(parsed.endpoint));

  try {
    await initializeClient(settings, client);
    const versionName =
      parsed.versionName ?? (await throwVersionRequired(settings, client, parsed));
    await assertVersionUsable(settings, client, versionName);
    const publicKey = await fetchPublicKey(settings, client, versionName);
    return new GcpKmsSigner(client, owned, versionName, settings, publicKey);
  } catch (error) {
    if (owned) await client.close?.().catch(() => undefined);
    throw error;
  }
}

/** A signer bound to one CryptoKeyVersion. */
class GcpKmsSigner implements Signer {
  readonly keyId: string;
  #publicKey: Promise<KeyObject>;
  /** The SPKI DER of the key fetched at creation, which every refresh must return again. */
  readonly #spki: Buffer;
  #closed = false;

  constructor(
    private readonly client: GcpKmsClient,
    private readonly ownsClient: boolean,
    private readonly versionName: string,
    private readonly settings: CallSettings,
    publicKey: KeyObject,
  ) {
    this.keyId = `gcpkms:${versionName}`;
    this.#publicKey = Promise.resolve(publicKey);
    this.#spki = publicKey.export({ type: 'spki', format: 'der' });
  }

  async sign(signingInput: Uint8Array, options: SignOptions = {}): Promise<Uint8Array> {
    if (!(signingInput instanceof Uint8Array)) {
      throw new TypeError('sign expects the JWS signing input as a Uint8Array.');
    }
    if (this.#closed) throw this.#closedError();
    const digest = sha256(signingInput);
    return signDigest(this.settings, this.client, this.versionName, digest, options.signal);
  }

  getPublicKey(options: GetPublicKeyOptions = {}): Promise<KeyObject> {
    if (this.#closed) return Promise.reject(this.#closedError());
    if (options.refresh) {
      const fetched = fetchPublicKey(
        this.settings,
        this.client,
        this.versionName,
        options.signal,
        this.#spki,
      );
      // A failed refresh, including one that returned another key, keeps the cached key.
      const previous = this.#publicKey;
      this.#publicKey = fetched.catch(() => previous);
      return fetched;
    }
    return this.#publicKey;
  }

  /** Closes the client the signer built. Later calls reject with ERR_GCP_KMS_SIGNER_CLOSED. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.ownsClient) await this.client.close?.();
  }

  // A caller's client stays open after close(), so only this flag stops a closed signer.
  #closedError(): KmsJwtError {
    return new KmsJwtError(
      'ERR_GCP_KMS_SIGNER_CLOSED',
      `The Cloud KMS signer for ${this.versionName} is closed. Create a new signer.`,
      { details: { resource: this.versionName } },
    );
  }
}

/**
 * Signs a 32-byte SHA-256 digest with AsymmetricSign and returns the 64-byte r||s signature,
 * after the integrity checks and the strict DER conversion. The import's proof step uses it too.
 *
 * @example
 * const signature = await signDigest(settings, client, versionName, sha256(signingInput));
 */
export async function signDigest(
  settings: CallSettings,
  client: GcpKmsClient,
  versionName: string,
  digest: Buffer,
  signal?: AbortSignal,
): Promise<Buffer> {
  const digestCrc32c = crc32c(digest);
  let signature: Buffer | undefined;
  const check = (reply: AsymmetricSignResponse): IntegrityProblem | undefined => {
    const problem = checkSignResponse(reply, versionName);
    if (problem) return problem;
    const converted = convertSignature(reply.signature as Uint8Array);
    if ('problem' in converted) return converted.problem;
    signature = converted.jose;
    return undefined;
  };

  await runKmsCall(
    settings,
    {
      operation: 'AsymmetricSign',
      resource: versionName,
      idempotent: true,
      invoke: (callOptions) =>
        client.asymmetricSign(
          { name: versionName, digest: { sha256: digest }, digestCrc32c: { value: digestCrc32c } },
          callOptions,
        ),
      check,
    },
    signal,
  );
  return signature!;
}

/**
 * Fetches the version's public key with GetPublicKey, checks its name, CRC32C and algorithm,
 * and parses it. With `expectedSpki`, a response that contains another key fails the
 * integrity check.
 *
 * @example
 * const publicKey = await fetchPublicKey(settings, client, versionName);
 */
export async function fetchPublicKey(
  settings: CallSettings,
  client: GcpKmsClient,
  versionName: string,
  signal?: AbortSignal,
  expectedSpki?: Uint8Array,
): Promise<KeyObject> {
  const response = await runKmsCall(
    settings,
    {
      operation: 'GetPublicKey',
      resource: versionName,
      idempotent: true,
      invoke: (callOptions) => client.getPublicKey({ name: versionName }, callOptions),
      check: (reply) => checkPublicKeyResponse(reply, versionName, expectedSpki),
    },
    signal,
  );
  assertAlgorithm(response.algorithm, versionName);
  return parseP256PublicKey(response.pem as string, versionName);
}

/** Builds call settings from runtime options, rejecting misuse with `TypeError`. */
export function callSettingsFrom(options: GcpKmsSignerOptions): CallSettings {
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  const maxAttempts = options.maxAttempts ?? defaultMaxAttempts;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > maxTimerMs) {
    throw new TypeError(
      `timeoutMs must be a positive number of milliseconds up to ${maxTimerMs}, not ${timeoutMs}.`,
    );
  }
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 10) {
    throw new TypeError(`maxAttempts must be an integer from 1 to 10, not ${maxAttempts}.`);
  }
  return { timeoutMs, maxAttempts, signal: options.signal, events: options };
}

function toKeyReference(reference: string | KeyReference): KeyReference {
  if (typeof reference !== 'string') return reference;
  if (reference.startsWith('projects/')) {
    return { scheme: 'gcpkms', rest: reference, raw: `gcpkms:${reference}` };
  }
  const parsed = parseKeyReference(reference);
  if (parsed.scheme !== 'gcpkms' && parsed.scheme !== 'cloudkms') {
    throw new KmsJwtError(
      'ERR_KEY_REFERENCE_SCHEME',
      `createGcpKmsSigner takes a gcpkms: or cloudkms: reference, not "${parsed.scheme}:".`,
      { details: { scheme: parsed.scheme } },
    );
  }
  return parsed;
}

/**
 * Checks with GetCryptoKeyVersion that the version is ENABLED and uses EC_SIGN_P256_SHA256.
 * A caller without cloudkms.cryptoKeyVersions.get gets a warning event instead: GetPublicKey
 * still checks the algorithm, and AsymmetricSign answers FAILED_PRECONDITION for a version that
 * is not ENABLED.
 */
async function assertVersionUsable(
  settings: CallSettings,
  client: GcpKmsClient,
  versionName: string,
): Promise<void> {
  let version;
  try {
    version = await runKmsCall(settings, {
      operation: 'GetCryptoKeyVersion',
      resource: versionName,
      idempotent: true,
      invoke: (callOptions) => client.getCryptoKeyVersion({ name: versionName }, callOptions),
      check: (reply) =>
        reply.name === versionName
          ? undefined
          : { check: 'name', problem: `the response names ${quoteServerText(reply.name)}.` },
    });
  } catch (error) {
    if (error instanceof KmsJwtError && error.details.grpcCode === grpcStatus.permissionDenied) {
      emitEvent(settings.events, {
        type: 'warning',
        backend: 'gcp-kms',
        operation: 'GetCryptoKeyVersion',
        resource: versionName,
        message:
          'Skipped the version state check: the caller lacks cloudkms.cryptoKeyVersions.get ' +
          '(or the version does not exist).',
      });
      return;
    }
    throw error;
  }

  assertAlgorithm(version.algorithm, versionName);
  if (version.state !== 'ENABLED') throw versionNotEnabled(versionName, version.state);
}

function assertAlgorithm(algorithm: unknown, versionName: string): void {
  if (algorithm === es256Algorithm) return;
  const found = typeof algorithm === 'string' ? algorithm : JSON.stringify(algorithm ?? null);
  const hint = found.startsWith('RSA_') ? ' An RSA key cannot sign ES256 tokens.' : '';
  throw new KmsJwtError(
    'ERR_GCP_KMS_ALGORITHM_UNSUPPORTED',
    `Cloud KMS key version ${versionName} uses ${found}, but ES256 needs ${es256Algorithm} ` +
      `(ECDSA on P-256 with SHA-256).${hint} Create or import a key with that algorithm.`,
    { details: { resource: versionName, algorithm: found } },
  );
}

function versionNotEnabled(versionName: string, state: unknown): KmsJwtError {
  const found = typeof state === 'string' ? state : JSON.stringify(state ?? null);
  return new BackendError(
    'ERR_GCP_KMS_VERSION_NOT_ENABLED',
    `Cloud KMS key version ${versionName} is ${found}, but signing needs an ENABLED version. ` +
      'Re-enable a DISABLED version, wait for a PENDING_IMPORT or PENDING_GENERATION one, or ' +
      'pin another version.',
    { details: { resource: versionName, state: found } },
  );
}

const publicKeyFix =
  'Check that the endpoint is Cloud KMS, and report the response to Google Cloud support if it ' +
  'persists.';

function parseP256PublicKey(pem: string, versionName: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (error) {
    throw new BackendError(
      'ERR_GCP_KMS_PUBLIC_KEY_INVALID',
      `Cloud KMS GetPublicKey on ${versionName} returned a PEM that is not a public key. ` +
        publicKeyFix,
      { cause: error, details: { operation: 'GetPublicKey', resource: versionName } },
    );
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType === 'ec' && curve === 'prime256v1') return key;
  throw new BackendError(
    'ERR_GCP_KMS_PUBLIC_KEY_INVALID',
    `Cloud KMS GetPublicKey on ${versionName} says ${es256Algorithm} but returned ` +
      `${describeKeyObject(key)}, so the response is inconsistent. ${publicKeyFix}`,
    {
      details: { operation: 'GetPublicKey', resource: versionName, found: describeKeyObject(key) },
    },
  );
}

async function throwVersionRequired(
  settings: CallSettings,
  client: GcpKmsClient,
  parsed: GcpKmsReference,
): Promise<never> {
  const listing = await listEnabledVersions(settings, client, parsed.cryptoKeyName);
  const example = listing.versions[0] ?? `${parsed.cryptoKeyName}/cryptoKeyVersions/N`;
  const found =
    listing.versions.length > 0
      ? ` ENABLED ${es256Algorithm} versions: ${listing.versions.map(versionNumber).join(', ')}.`
      : listing.failure
        ? ` The ENABLED versions could not be listed (${listing.failure}).`
        : ` The key has no ENABLED ${es256Algorithm} version.`;
  const leftOut =
    listing.malformed > 0
      ? ` Cloud KMS returned ${listing.malformed} listed version ` +
        `${listing.malformed === 1 ? 'name that is' : 'names that are'} not a version of this ` +
        'key; they are left out.'
      : '';
  throw new KmsJwtError(
    'ERR_GCP_KMS_VERSION_REQUIRED',
    `The gcpkms reference names the CryptoKey ${parsed.cryptoKeyName} but no version. Cloud KMS ` +
      'rotates a key by adding versions, so a signer that followed the newest one would switch ' +
      'keys, and the key behind the token kid, without notice.' +
      `${found}${leftOut} Pin one, for example gcpkms:${example}.`,
    { details: { resource: parsed.cryptoKeyName, enabledVersions: listing.versions } },
  );
}

/** Versions read for the "version required" message: one page, and no more. */
const listPageSize = 100;

/** ENABLED ES256 versions of a CryptoKey, or why they could not be listed. */
interface VersionListing {
  /** Version names, newest first. */
  versions: string[];
  /** The number of listed names left out as not exactly `<cryptoKeyName>/cryptoKeyVersions/N`. */
  malformed: number;
  failure: string | undefined;
}

/**
 * Lists ENABLED ES256 versions, newest first, or returns why it could not. Only the first page
 * of ENABLED versions is read, since the list only serves as a hint in an error message.
 */
async function listEnabledVersions(
  settings: CallSettings,
  client: GcpKmsClient,
  cryptoKeyName: string,
): Promise<VersionListing> {
  const request = { parent: cryptoKeyName, filter: 'state=ENABLED', pageSize: listPageSize };
  try {
    const versions = await runKmsCall(settings, {
      operation: 'ListCryptoKeyVersions',
      resource: cryptoKeyName,
      idempotent: true,
      invoke: (callOptions) =>
        client.listCryptoKeyVersions(request, { ...callOptions, autoPaginate: false }),
    });
    const usable = versions.filter((v) => v.state === 'ENABLED' && v.algorithm === es256Algorithm);
    // The names go into the message and the example reference, so each must be exactly a
    // version of this key.
    const names = usable
      .map((v) => v.name)
      .filter((name) => isVersionNameOf(name, cryptoKeyName))
      .sort((a, b) => Number(versionNumber(b)) - Number(versionNumber(a)));
    return { versions: names, malformed: usable.length - names.length, failure: undefined };
  } catch (error) {
    const mapped = mapKmsError(error, 'ListCryptoKeyVersions', cryptoKeyName);
    const failure = `${mapped.code}, which needs cloudkms.cryptoKeyVersions.list`;
    return { versions: [], malformed: 0, failure };
  }
}

function versionNumber(versionName: string): string {
  return versionName.slice(versionName.lastIndexOf('/') + 1);
}
