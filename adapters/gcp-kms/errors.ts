/**
 * Maps gRPC failures of Cloud KMS calls to coded errors. The status codes are those of
 * google.rpc.Code; the permission names are from the Cloud KMS "Permissions and roles" page.
 */
import { BackendError, isKmsJwtError, type KmsJwtError } from '../../src/errors.js';
import { shortenForMessage } from '../../src/message-text.js';

/** The Cloud KMS RPCs this adapter makes, named as in google.cloud.kms.v1.KeyManagementService. */
export type KmsOperation =
  | 'AsymmetricSign'
  | 'GetPublicKey'
  | 'GetCryptoKeyVersion'
  | 'ListCryptoKeyVersions'
  | 'GetCryptoKey'
  | 'CreateCryptoKey'
  | 'CreateImportJob'
  | 'GetImportJob'
  | 'ImportCryptoKeyVersion';

/** gRPC status codes (google.rpc.Code) that this file names. */
export const grpcStatus = {
  cancelled: 1,
  invalidArgument: 3,
  deadlineExceeded: 4,
  notFound: 5,
  alreadyExists: 6,
  permissionDenied: 7,
  resourceExhausted: 8,
  failedPrecondition: 9,
  unavailable: 14,
  unauthenticated: 16,
} as const;

/** The IAM permission each operation needs on its resource. */
export const requiredPermission: Record<KmsOperation, string> = {
  AsymmetricSign: 'cloudkms.cryptoKeyVersions.useToSign',
  GetPublicKey: 'cloudkms.cryptoKeyVersions.viewPublicKey',
  GetCryptoKeyVersion: 'cloudkms.cryptoKeyVersions.get',
  ListCryptoKeyVersions: 'cloudkms.cryptoKeyVersions.list',
  GetCryptoKey: 'cloudkms.cryptoKeys.get',
  CreateCryptoKey: 'cloudkms.cryptoKeys.create',
  CreateImportJob: 'cloudkms.importJobs.create',
  GetImportJob: 'cloudkms.importJobs.get',
  ImportCryptoKeyVersion: 'cloudkms.cryptoKeyVersions.create and cloudkms.importJobs.useToImport',
};

/** Returns the numeric gRPC status of an error from the Google client, or undefined. */
export function grpcCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/**
 * Turns a failed call into a coded error that names the operation, the resource and the fix.
 * A coded error passes through unchanged.
 *
 * @example
 * throw mapKmsError(error, 'AsymmetricSign', versionName);
 */
export function mapKmsError(
  error: unknown,
  operation: KmsOperation,
  resource: string,
): KmsJwtError {
  if (isKmsJwtError(error)) return error;
  const code = grpcCode(error);
  const serverText = describeServerText(error);
  const details = { operation, resource, grpcCode: code, serverMessage: serverText };
  const shown = shortenForMessage(resource);
  const fail = (errorCode: string, message: string) =>
    new BackendError(errorCode, `Cloud KMS ${operation} on ${shown} failed: ${message}`, {
      cause: error,
      details,
    });

  switch (code) {
    case grpcStatus.permissionDenied:
      return fail(
        'ERR_GCP_KMS_PERMISSION_DENIED',
        `permission denied (${serverText}). Grant the caller ${requiredPermission[operation]} on ` +
          'the resource. Cloud KMS also answers PERMISSION_DENIED when the resource does not ' +
          'exist and the caller cannot see it, so check the name too.',
      );
    case grpcStatus.unauthenticated:
      return fail(
        'ERR_GCP_KMS_UNAUTHENTICATED',
        `the request carried no valid credentials (${serverText}). Check Application Default ` +
          'Credentials or the credentials of the client you passed.',
      );
    case grpcStatus.notFound:
      return fail(
        'ERR_GCP_KMS_NOT_FOUND',
        `not found (${serverText}). Check the project, location, key ring, key and version.`,
      );
    case grpcStatus.failedPrecondition:
      return fail(
        'ERR_GCP_KMS_FAILED_PRECONDITION',
        `the resource is not in a state that allows it (${serverText}). Signing needs an ENABLED ` +
          'version: re-enable a DISABLED one, wait for a PENDING_IMPORT one, and pick another ' +
          'for a DESTROYED or DESTROY_SCHEDULED one.',
      );
    case grpcStatus.unavailable:
      return fail(
        'ERR_GCP_KMS_UNAVAILABLE',
        `the service was unavailable on every attempt (${serverText}). Retry later.`,
      );
    case grpcStatus.deadlineExceeded:
      return fail(
        'ERR_GCP_KMS_TIMEOUT',
        `the deadline passed on every attempt (${serverText}). Retry later or raise timeoutMs.`,
      );
    case grpcStatus.resourceExhausted:
      return fail(
        'ERR_GCP_KMS_RESOURCE_EXHAUSTED',
        `a quota was exhausted (${serverText}). Cache tokens instead of minting one per request, ` +
          'or ask for a higher Cloud KMS quota.',
      );
    case grpcStatus.invalidArgument:
      return fail('ERR_GCP_KMS_INVALID_ARGUMENT', `the request was rejected (${serverText}).`);
    case grpcStatus.alreadyExists:
      return fail(
        'ERR_GCP_KMS_ALREADY_EXISTS',
        `the resource already exists (${serverText}). Use another ID, or reuse the existing ` +
          'resource.',
      );
    default:
      return fail(
        'ERR_GCP_KMS_REQUEST_FAILED',
        `gRPC status ${code ?? 'none'} (${serverText}). Retry later if the failure is ` +
          'transient, and report it with this message if it persists.',
      );
  }
}

/** The ways to give the Google client credentials, as the fix in an error message. */
const credentialsFix =
  'Provide Application Default Credentials: set GOOGLE_APPLICATION_CREDENTIALS to a credentials ' +
  'JSON file, run "gcloud auth application-default login", or run on Google Cloud with an ' +
  'attached service account. Or pass a KeyManagementServiceClient that has credentials as the ' +
  'client option.';

/**
 * Turns a failed client set-up, which is the Google client's credential lookup, into a coded
 * error that explains how to provide credentials.
 *
 * @example
 * throw credentialsError(error);
 */
export function credentialsError(error: unknown): KmsJwtError {
  // JSON.parse errors quote the text around the fault, and the text of a credentials file
  // includes a private key, so neither the message nor the error itself is kept.
  const isSyntaxError = error instanceof Error && error.name === 'SyntaxError';
  const reason = isSyntaxError
    ? 'a credentials file (GOOGLE_APPLICATION_CREDENTIALS, or the one gcloud writes) is not ' +
      'valid JSON'
    : describeServerText(error);
  return new BackendError(
    'ERR_GCP_KMS_CREDENTIALS',
    'Cloud KMS client set-up failed before any Cloud KMS request was sent: the Google client ' +
      `found no usable credentials (${reason}). ${credentialsFix}`,
    { cause: isSyntaxError ? undefined : error, details: { operation: 'initialize', reason } },
  );
}

/** The server's status text, or the error message for failures that never reached a server. */
function describeServerText(error: unknown): string {
  const text = (error as { details?: unknown } | null)?.details;
  const message = error instanceof Error ? error.message : String(error);
  const chosen = typeof text === 'string' && text !== '' ? text : message;
  return escapeServerText(chosen);
}

/** The maximum length of server text in a message, in UTF-16 code units, before `...`. */
export const maxServerTextLength = 300;

/**
 * C0 controls, DEL, C1 controls, the line and paragraph separators, and the bidirectional
 * controls that reorder how a line is displayed.
 */
const unsafeCharacter =
  // eslint-disable-next-line no-control-regex -- finding control characters is its purpose.
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

/**
 * Escapes the control characters in text that a server supplied as `\uXXXX`, and cuts the
 * result to `maxLength` followed by `...`. The result is safe in one line of a log or a
 * terminal: it can neither start a forged line nor carry an ANSI escape sequence.
 *
 * @example
 * escapeServerText('denied\r\nINFO forged'); // 'denied\\u000d\\u000aINFO forged'
 */
export function escapeServerText(text: string, maxLength = maxServerTextLength): string {
  let escaped = '';
  // The loop walks code points and adds each escape whole, so a cut splits neither.
  for (const character of text) {
    const piece = unsafeCharacter.test(character) ? escapeCharacter(character) : character;
    if (escaped.length + piece.length > maxLength) return `${escaped}...`;
    escaped += piece;
  }
  return escaped;
}

/**
 * Quotes a value that a server supplied, such as a resource name, for an error message.
 *
 * @example
 * quoteServerText(response.name); // '"projects/p/.../cryptoKeyVersions/7"'
 */
export function quoteServerText(value: unknown, maxLength = maxServerTextLength): string {
  if (typeof value !== 'string') return JSON.stringify(value ?? null) ?? String(value);
  return `"${escapeServerText(value, maxLength)}"`;
}

function escapeCharacter(character: string): string {
  return `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`;
}
