/**
 * The narrow Cloud KMS client surface this adapter uses, and how it builds one. A caller's own
 * `KeyManagementServiceClient` from @google-cloud/kms 5 fits these interfaces as it is. Response
 * fields are typed loosely on purpose: everything that comes off the wire is checked at run time
 * before it is used.
 */
import { loadPeer } from '../../src/peer.js';
import type { GcpKmsEndpoint } from './reference.js';

/**
 * Per-call options this adapter passes: a deadline and no client-side retries. They are built
 * fresh for every attempt, because the client adds fields to the object it receives.
 */
export interface GcpKmsCallOptions {
  timeout: number;
  retry: null;
}

/**
 * Options of the ListCryptoKeyVersions call. The client's automatic paging is off, because it
 * follows nextPageToken without limit and keeps paging after the call's deadline has passed.
 */
export interface GcpKmsListOptions extends GcpKmsCallOptions {
  autoPaginate: false;
}

/** A unary reply of the Google client: the response first, then request and raw-response slots. */
export type GcpKmsReply<T> = Promise<[T, ...unknown[]]>;

/** The `{ value }` wrapper of google.protobuf.Int64Value. The client sets `value` to a string. */
export interface Int64Value {
  value?: unknown;
}

/** The AsymmetricSign request fields this adapter sends. */
export interface AsymmetricSignRequest {
  name: string;
  digest: { sha256: Uint8Array };
  digestCrc32c: { value: number };
}

/** The AsymmetricSign response fields this adapter checks. */
export interface AsymmetricSignResponse {
  signature?: Uint8Array | string | null;
  signatureCrc32c?: Int64Value | null;
  verifiedDigestCrc32c?: boolean | null;
  name?: string | null;
  protectionLevel?: unknown;
}

/** The GetPublicKey response fields this adapter checks. */
export interface PublicKeyResponse {
  pem?: string | null;
  pemCrc32c?: Int64Value | null;
  algorithm?: unknown;
  name?: string | null;
  protectionLevel?: unknown;
}

/** The CryptoKeyVersion fields this adapter reads. Enums come back as their names. */
export interface CryptoKeyVersionResource {
  name?: string | null;
  state?: unknown;
  algorithm?: unknown;
  protectionLevel?: unknown;
  importFailureReason?: string | null;
  importJob?: string | null;
}

/** The CryptoKey fields the import reads. */
export interface CryptoKeyResource {
  name?: string | null;
  purpose?: unknown;
  importOnly?: boolean | null;
  versionTemplate?: { algorithm?: unknown; protectionLevel?: unknown } | null;
}

/** The ImportJob fields the import reads. */
export interface ImportJobResource {
  name?: string | null;
  state?: unknown;
  importMethod?: unknown;
  protectionLevel?: unknown;
  publicKey?: { pem?: string | null } | null;
}

/** The four calls a signer makes, and the client's set-up and shutdown. */
export interface GcpKmsClient {
  asymmetricSign(
    request: AsymmetricSignRequest,
    options?: GcpKmsCallOptions,
  ): GcpKmsReply<AsymmetricSignResponse>;
  getPublicKey(
    request: { name: string },
    options?: GcpKmsCallOptions,
  ): GcpKmsReply<PublicKeyResponse>;
  getCryptoKeyVersion(
    request: { name: string },
    options?: GcpKmsCallOptions,
  ): GcpKmsReply<CryptoKeyVersionResource>;
  listCryptoKeyVersions(
    request: { parent: string; filter: string; pageSize: number },
    options?: GcpKmsListOptions,
  ): GcpKmsReply<CryptoKeyVersionResource[]>;
  /** Loads credentials and builds the gRPC stub; the adapter waits for it before any call. */
  initialize?(): Promise<unknown>;
  close?(): Promise<void>;
}

/** Protection levels an import can ask for. */
export type ImportProtectionLevel = 'HSM' | 'SOFTWARE';

/** ImportJob methods this adapter can wrap keys for. */
export type ImportMethodName =
  | 'RSA_OAEP_3072_SHA256_AES_256'
  | 'RSA_OAEP_4096_SHA256_AES_256'
  | 'RSA_OAEP_3072_SHA256'
  | 'RSA_OAEP_4096_SHA256';

/** The signer's calls plus the five an import makes. */
export interface GcpKmsImportClient extends GcpKmsClient {
  getCryptoKey(
    request: { name: string },
    options?: GcpKmsCallOptions,
  ): GcpKmsReply<CryptoKeyResource>;
  createCryptoKey(
    request: {
      parent: string;
      cryptoKeyId: string;
      skipInitialVersionCreation: boolean;
      cryptoKey: {
        purpose: 'ASYMMETRIC_SIGN';
        importOnly: boolean;
        versionTemplate: {
          algorithm: 'EC_SIGN_P256_SHA256';
          protectionLevel: ImportProtectionLevel;
        };
      };
    },
    options?: GcpKmsCallOptions,
  ): GcpKmsReply<CryptoKeyResource>;
  createImportJob(
    request: {
      parent: string;
      importJobId: string;
      importJob: { importMethod: ImportMethodName; protectionLevel: ImportProtectionLevel };
    },
    options?: GcpKmsCallOptions,
  ): GcpKmsReply<ImportJobResource>;
  getImportJob(
    request: { name: string },
    options?: GcpKmsCallOptions,
  ): GcpKmsReply<ImportJobResource>;
  importCryptoKeyVersion(
    request: {
      parent: string;
      algorithm: 'EC_SIGN_P256_SHA256';
      importJob: string;
      wrappedKey: Uint8Array;
    },
    options?: GcpKmsCallOptions,
  ): GcpKmsReply<CryptoKeyVersionResource>;
}

/** The part of the @google-cloud/kms module this file uses. */
interface KmsModule {
  KeyManagementServiceClient: new (options?: object, gax?: unknown) => GcpKmsImportClient;
}

/** The part of the google-gax module this file uses. */
interface GaxModule {
  grpc: { credentials: { createInsecure(): unknown } };
}

/**
 * Builds a `KeyManagementServiceClient` for a reference. Without an endpoint it is the default
 * client, with Application Default Credentials and TLS to cloudkms.googleapis.com. A plaintext
 * loopback endpoint gets insecure channel credentials and no credential lookups at all.
 *
 * @example
 * const client = await createKmsClient({ host: '127.0.0.1', port: 8085, plaintext: true });
 */
export async function createKmsClient(
  endpoint: GcpKmsEndpoint | undefined,
): Promise<GcpKmsImportClient> {
  const kms = moduleExports<KmsModule>(
    await loadPeer('@google-cloud/kms', () => import('@google-cloud/kms')),
  );
  if (!endpoint) return new kms.KeyManagementServiceClient();
  if (!endpoint.plaintext) {
    return new kms.KeyManagementServiceClient({ apiEndpoint: endpoint.host, port: endpoint.port });
  }

  // The insecure credentials must come from the same grpc-js copy that the client's gax uses, so
  // this passes gax itself to the constructor. Setting universeDomain skips the Application
  // Default Credentials discovery, which would otherwise probe the GCE metadata server.
  const gax = moduleExports<GaxModule>(await loadPeer('google-gax', () => import('google-gax')));
  const options = {
    apiEndpoint: endpoint.host,
    port: endpoint.port,
    sslCreds: gax.grpc.credentials.createInsecure(),
    universeDomain: 'googleapis.com',
  };
  return new kms.KeyManagementServiceClient(options, gax);
}

/** Picks the CommonJS exports object out of a dynamic import, which differs between ESM and CJS. */
function moduleExports<T>(namespace: unknown): T {
  const withDefault = namespace as { default?: unknown };
  const candidate = withDefault.default ?? namespace;
  return candidate as T;
}

/** Asserts that a caller's `client` option has the methods a signer calls. */
export function assertSignerClient(client: unknown): asserts client is GcpKmsClient {
  const methods = [
    'asymmetricSign',
    'getPublicKey',
    'getCryptoKeyVersion',
    'listCryptoKeyVersions',
  ];
  assertMethods(client, methods);
}

/** Asserts that a caller's `client` option also has the methods an import calls. */
export function assertImportClient(client: unknown): asserts client is GcpKmsImportClient {
  assertSignerClient(client);
  assertMethods(client, [
    'getCryptoKey',
    'createCryptoKey',
    'createImportJob',
    'getImportJob',
    'importCryptoKeyVersion',
  ]);
}

function assertMethods(client: unknown, methods: string[]): void {
  if (typeof client !== 'object' || client === null) {
    throw new TypeError('The gcp-kms client option must be a KeyManagementServiceClient.');
  }
  const missing = methods.filter(
    (m) => typeof (client as Record<string, unknown>)[m] !== 'function',
  );
  if (missing.length > 0) {
    throw new TypeError(
      `The gcp-kms client option lacks ${missing.join(', ')}; pass a KeyManagementServiceClient ` +
        'from @google-cloud/kms 5.',
    );
  }
}
