/**
 * AWS KMS adapter (subpath `kms-jwt-signer/aws-kms`): ES256 signing with a P-256 key held in AWS
 * KMS, and import of an existing `.p8` as non-exportable key material. It needs the optional
 * peer dependency `@aws-sdk/client-kms`, which it loads on first use.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { KmsJwtError } from '../../src/errors.js';
import type { AdapterOptions, ImportRequest, KeyAdapter, KeyReference } from '../../src/key-uri.js';
import { emitEvent, type RuntimeOptions } from '../../src/signer.js';
import {
  connectKms,
  type KmsClientLike,
  type KmsClientSettings,
  type KmsConnection,
} from './client.js';
import { creationAbortedError } from './errors.js';
import { importIntoKms, type AwsKmsImportResult, type ImportSettings } from './import.js';
import { parseAwsKmsReference, type AwsKmsReference } from './reference.js';
import { AwsKmsSigner } from './signer.js';

export { AwsKmsSigner } from './signer.js';
export { parseAwsKmsReference, regionFromArn, type AwsKmsReference } from './reference.js';
export {
  BoundedRetryStrategy,
  type KmsClientLike,
  type KmsClientSettings,
  type AwsCredentialsInput,
} from './client.js';
export type { AwsKmsImportResult } from './import.js';
export type { WrappingAlgorithm, WrappingKeySpec } from './wrap.js';

/** Options of {@link createAwsKmsSigner}: runtime concerns plus client settings. */
export interface AwsKmsSignerOptions extends RuntimeOptions, KmsClientSettings {
  /**
   * A configured `KMSClient`. It wins over region, endpoint, profile, credentials and retry
   * settings.
   */
  client?: KmsClientLike;
}

/** Options of {@link importP8ToAwsKms}. */
export interface ImportP8Options extends AwsKmsSignerOptions, Omit<ImportSettings, 'signal'> {}

/**
 * Creates a signer for an AWS KMS key. `reference` is an `awskms:` reference or a bare key ID,
 * key ARN, alias name or alias ARN. `options.signal` aborts the creation and every later call
 * of the signer, together with the `signal` of each call.
 *
 * @example
 * const signer = await createAwsKmsSigner(
 *   'awskms:arn:aws:kms:eu-west-1:111122223333:alias/apple-siwa',
 * );
 * const token = await signJwt(signer, { header: { alg: 'ES256', kid: 'ABC123DEFG' }, payload });
 */
export async function createAwsKmsSigner(
  reference: string,
  options: AwsKmsSignerOptions = {},
): Promise<AwsKmsSigner> {
  const parsed = parseAwsKmsReference(toKeyReference(reference));
  return createSignerFor(parsed, options);
}

/**
 * Imports a P-256 private key (a `KeyObject` or the PEM text of a `.p8`) into AWS KMS under
 * `target`, an alias to create or a key in PendingImport, and proves the result.
 *
 * @example
 * const p8 = readFileSync('AuthKey_ABC123DEFG.p8');
 * const result = await importP8ToAwsKms(p8, 'awskms:alias/apple-siwa', {
 *   region: 'eu-west-1',
 * });
 * console.log(result.keyArn);
 */
export async function importP8ToAwsKms(
  privateKey: KeyObject | string | Buffer,
  target: string,
  options: ImportP8Options = {},
): Promise<AwsKmsImportResult> {
  const key =
    typeof privateKey === 'string' || Buffer.isBuffer(privateKey)
      ? parsePrivateKey(privateKey)
      : privateKey;
  const reference = toKeyReference(target);
  const parsed = parseAwsKmsReference(reference);
  const kms = await connect(parsed, options);
  try {
    return withEndpoint(await importIntoKms(kms, parsed, key, { ...options }), reference, parsed);
  } finally {
    kms.close();
  }
}

/** The `awskms:` adapter for `createSigner` and the CLI. */
export const adapter: KeyAdapter = {
  name: 'aws-kms',
  async createSigner(reference: KeyReference, options?: AdapterOptions) {
    return createSignerFor(parseAwsKmsReference(reference), readOptions(options));
  },
  async importKey(request: ImportRequest) {
    if (request.overwrite) {
      throw new KmsJwtError(
        'ERR_AWS_KMS_IMPORT_TARGET',
        'Import into AWS KMS stopped at step 1 (check target): overwrite is not possible, because AWS KMS never replaces imported asymmetric key material. Name a new alias instead. No KMS key was changed.',
        { details: { step: 'check target', stepNumber: 1 } },
      );
    }
    const options = readOptions(request.options);
    const parsed = parseAwsKmsReference(request.target);
    const kms = await connect(parsed, options);
    try {
      const result = await importIntoKms(kms, parsed, request.privateKey, {
        ...options,
        ...readImportSettings(request.options),
      });
      return withEndpoint(result, request.target, parsed);
    } finally {
      kms.close();
    }
  },
};

async function createSignerFor(
  reference: AwsKmsReference,
  options: AwsKmsSignerOptions,
): Promise<AwsKmsSigner> {
  assertCreationNotAborted(reference, options);
  const kms = await connect(reference, options);
  try {
    // Loading the SDK takes a while on first use, and the signal may fire meanwhile.
    assertCreationNotAborted(reference, options);
  } catch (error) {
    kms.close();
    throw error;
  }
  return new AwsKmsSigner(kms, reference, options.signal);
}

function assertCreationNotAborted(reference: AwsKmsReference, options: RuntimeOptions): void {
  const { signal } = options;
  if (!signal?.aborted) return;
  const error = creationAbortedError(reference.keyId, signal);
  emitEvent(options, {
    type: 'error',
    operation: 'createSigner',
    key: reference.keyId,
    code: error.code,
  });
  throw error;
}

async function connect(
  reference: AwsKmsReference,
  options: AwsKmsSignerOptions,
): Promise<KmsConnection> {
  const settings: KmsClientSettings = {
    ...options,
    // The ARN's region wins, because the key exists only there.
    region: reference.region ?? options.region,
    endpoint: reference.endpoint ?? options.endpoint,
    profile: reference.profile ?? options.profile,
  };
  const kms = await connectKms(settings, options.client, options);
  if (options.client && reference.region) await warnOnRegionMismatch(kms, reference, options);
  return kms;
}

async function warnOnRegionMismatch(
  kms: KmsConnection,
  reference: AwsKmsReference,
  options: RuntimeOptions,
) {
  const clientRegion = await kms.clientRegion();
  if (clientRegion === undefined || clientRegion === reference.region) return;
  emitEvent(options, {
    type: 'warning',
    key: reference.keyId,
    message: `The KMSClient passed in is for ${clientRegion}, but the key ARN is in ${reference.region}; the passed client is used.`,
  });
}

// A target that named an endpoint gets a reference to the imported key at the same endpoint.
function withEndpoint(
  result: AwsKmsImportResult,
  target: KeyReference,
  parsed: AwsKmsReference,
): AwsKmsImportResult {
  const endpoint = parsed.endpoint;
  if (endpoint === undefined) return result;
  const sigstoreHost = /^\/\/([^/]+)\//.exec(target.rest)?.[1];
  const referenceTo = (keyId: string) =>
    sigstoreHost === undefined
      ? `awskms:key-id=${encodeURIComponent(keyId)}?endpoint=${encodeURIComponent(endpoint)}`
      : `awskms://${sigstoreHost}/${keyId}`;
  const aliasReference = result.details.aliasReference;
  const details =
    aliasReference === undefined
      ? result.details
      : { ...result.details, aliasReference: referenceTo(aliasReference.slice('awskms:'.length)) };
  return { ...result, reference: referenceTo(result.keyArn), details };
}

function toKeyReference(reference: string): KeyReference {
  if (typeof reference !== 'string')
    throw new TypeError('An AWS KMS key reference must be a string.');
  const hasScheme = /^awskms:/i.test(reference);
  return {
    scheme: 'awskms',
    rest: hasScheme ? reference.slice('awskms:'.length) : reference,
    raw: reference,
  };
}

function parsePrivateKey(pem: string | Buffer): KeyObject {
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new KmsJwtError(
      'ERR_KEY_INVALID',
      'The key to import is not a PEM private key, such as the PKCS#8 text of an Apple .p8 file.',
      {
        cause: error,
      },
    );
  }
}

// Adapter options come from callers and the CLI untyped, so each field is checked here.
function readOptions(options: AdapterOptions | undefined): AwsKmsSignerOptions {
  const input = options ?? {};
  const client = input.client;
  if (client !== undefined && typeof (client as KmsClientLike).send !== 'function') {
    throw new TypeError('The aws-kms option "client" must be a KMSClient.');
  }
  for (const name of ['region', 'endpoint', 'profile'] as const) {
    if (input[name] !== undefined && typeof input[name] !== 'string') {
      throw new TypeError(`The aws-kms option "${name}" must be a string.`);
    }
  }
  return input as AwsKmsSignerOptions;
}

function readImportSettings(options: AdapterOptions | undefined): Omit<ImportSettings, 'signal'> {
  const input = (options ?? {}) as Record<string, unknown>;
  const wrappingAlgorithm = input.wrappingAlgorithm;
  if (
    wrappingAlgorithm !== undefined &&
    wrappingAlgorithm !== 'RSA_AES_KEY_WRAP_SHA_256' &&
    wrappingAlgorithm !== 'RSAES_OAEP_SHA_256'
  ) {
    throw new TypeError(
      'The aws-kms option "wrappingAlgorithm" must be RSA_AES_KEY_WRAP_SHA_256 or RSAES_OAEP_SHA_256.',
    );
  }
  const wrappingKeySpec = input.wrappingKeySpec;
  if (
    wrappingKeySpec !== undefined &&
    !['RSA_2048', 'RSA_3072', 'RSA_4096'].includes(String(wrappingKeySpec))
  ) {
    throw new TypeError(
      'The aws-kms option "wrappingKeySpec" must be RSA_2048, RSA_3072 or RSA_4096.',
    );
  }
  return input as Omit<ImportSettings, 'signal'>;
}
