/**
 * Maps AWS SDK and AWS KMS errors to this package's coded errors. The service's error names and
 * HTTP statuses follow the AWS KMS API reference ("Common Errors" and each action's Errors
 * list). Messages name the key and the operation, never the credentials, and leave out the
 * service's own message text, which is kept in `cause` only, with credential text removed.
 */
import { BackendError } from '../../src/errors.js';

/**
 * The largest response body the adapter reads, in bytes, when it builds the client. The
 * responses of the operations it calls are small JSON documents far below this size (the
 * largest carries an RSA-4096 wrapping key and an import token), so a bigger body comes from a
 * faulty endpoint and must not fill the memory.
 */
export const maxResponseBytes = 1024 * 1024;

/** The AWS KMS operations this adapter calls. */
export type KmsOperation =
  | 'Sign'
  | 'GetPublicKey'
  | 'DescribeKey'
  | 'CreateKey'
  | 'GetParametersForImport'
  | 'ImportKeyMaterial'
  | 'CreateAlias';

/** Why a call ended early, as seen by the caller of the SDK. */
export type CallEnding = 'deadline' | 'aborted' | undefined;

interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  $fault?: unknown;
  $metadata?: { httpStatusCode?: number; requestId?: string; attempts?: number };
}

const throttlingNames = new Set([
  'ThrottlingException',
  'Throttling',
  'LimitExceededException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
]);
const unavailableNames = new Set([
  'KMSInternalException',
  'KeyUnavailableException',
  'DependencyTimeoutException',
  'ServiceUnavailable',
  'InternalFailure',
]);
const networkCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
const credentialNames = new Set([
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'IncompleteSignature',
  'ExpiredTokenException',
  'InvalidClientTokenId',
]);

// AWS answers a SigV4 signature mismatch (InvalidSignatureException) with the canonical request
// it expected, whose x-amz-security-token line repeats the caller's session token. Other AWS
// messages may quote an access key ID. These texts are cut from the cause, because callers log
// causes and the CLI prints them with KMS_JWT_DEBUG=1.
const credentialTexts: [RegExp, string][] = [
  [
    /The Canonical String for this request[\s\S]*/,
    '[canonical request and string to sign removed]',
  ],
  [/(x-amz-security-token\s*[:=]\s*)[^\s'"&]+/gi, '$1[removed]'],
  [/\b(?:AKIA|ASIA|ABIA|ACCA|AROA)[A-Z0-9]{12,}\b/g, '[access key ID removed]'],
];

/**
 * Converts an error thrown by `KMSClient.send` into a `BackendError` with an `ERR_AWS_KMS_*`
 * code. `key` is the key ARN when known, otherwise the reference's key ID or alias.
 *
 * @example
 * throw mapKmsError(error, { operation: 'Sign', key: 'arn:aws:kms:eu-west-1:111122223333:key/…' });
 */
export function mapKmsError(
  error: unknown,
  context: {
    operation: KmsOperation;
    key: string;
    ending?: CallEnding;
    timeoutMs?: number;
    /** The caller's signal, whose `reason` becomes the cause of an abort error. */
    signal?: AbortSignal;
  },
): BackendError {
  if (context.ending === 'aborted')
    return abortedError(context.operation, context.key, context.signal);

  const unreadable = isUnreadableResponse(error);
  const cause = detachedCopy(error);
  const shape = (typeof cause === 'object' && cause !== null ? cause : {}) as SdkErrorShape;
  const name = sdkErrorName(cause);
  const status = shape.$metadata?.httpStatusCode;
  const details = {
    operation: context.operation,
    key: context.key,
    awsErrorName: name,
    httpStatusCode: status,
    requestId: shape.$metadata?.requestId,
    attempts: shape.$metadata?.attempts,
  };
  const about = `AWS KMS ${context.operation} for ${context.key}`;
  const make = (code: string, text: string, extra: Record<string, unknown> = {}) =>
    new BackendError(code, `${about} failed: ${text}`, {
      cause,
      details: { ...details, ...extra },
    });

  if (context.ending === 'deadline') {
    return make(
      'ERR_AWS_KMS_TIMEOUT',
      `no answer within the ${context.timeoutMs} ms deadline. Raise timeoutMs, or check the network path to the KMS endpoint.`,
    );
  }
  return mapServiceError(name, status, shape, make, context.operation, unreadable);
}

// The SDK attaches the raw response to an error it raised while reading a response; a service
// error that AWS sent carries `$fault` as well. A body that could not be read at all is a broken
// response, not a rejection by AWS KMS.
function isUnreadableResponse(error: unknown): boolean {
  return (
    typeof error === 'object' && error !== null && '$response' in error && !('$fault' in error)
  );
}

// The SDK error keeps hidden links to the raw response (`$response`, `$responseBodyText`), and
// through the response to the request with its x-amz-security-token and authorization headers.
// Those links cannot be removed, so the cause is a copy with the name, the cleaned message and
// stack, and the own enumerable fields that are plain data, such as `$metadata` and `code`.
function detachedCopy(error: unknown): unknown {
  if (!(error instanceof Error)) return error;

  const copy = new Error(withoutCredentials(error.message));
  copy.name = error.name;
  copy.stack = error.stack === undefined ? undefined : withoutCredentials(error.stack);
  for (const [field, value] of Object.entries(error)) {
    if (field === 'message' || field === 'stack' || !isPlainData(value)) continue;
    (copy as unknown as Record<string, unknown>)[field] =
      typeof value === 'string' ? withoutCredentials(value) : value;
  }
  return copy;
}

function withoutCredentials(text: string): string {
  let clean = text;
  for (const [pattern, replacement] of credentialTexts) clean = clean.replace(pattern, replacement);
  return clean;
}

// Primitives, and flat objects of primitives such as the SDK's `$metadata`.
function isPlainData(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return typeof value !== 'function';
  if (Object.getPrototypeOf(value) !== Object.prototype) return false;
  return Object.values(value).every((item) => item === null || typeof item !== 'object');
}

/**
 * Returns the name of an SDK error for messages and events. The name of a service error comes
 * from the response (`__type` or the `x-amzn-errortype` header), so a name that is not a short
 * identifier is replaced by `InvalidErrorName`, keeping control characters and huge text out
 * of messages.
 */
export function sdkErrorName(error: unknown): string {
  const name = (error as { name?: unknown } | null | undefined)?.name;
  if (typeof name !== 'string') return 'Error';
  return /^[A-Za-z][\w.:-]{0,99}$/.test(name) ? name : 'InvalidErrorName';
}

// An abort is the caller's own decision, so the cause is the reason the caller gave, not the
// SDK's AbortError, and no AWS facts apply.
function abortedError(
  operation: KmsOperation,
  key: string,
  signal: AbortSignal | undefined,
): BackendError {
  return new BackendError(
    'ERR_AWS_KMS_ABORTED',
    `AWS KMS ${operation} for ${key} failed: the caller aborted the call through its AbortSignal.`,
    { cause: signal?.reason, details: { operation, key } },
  );
}

/**
 * Creates the `ERR_AWS_KMS_ABORTED` error for a signer whose creation signal fired before the
 * signer was ready. Creating a signer sends nothing to AWS KMS, so no call was cut short.
 */
export function creationAbortedError(key: string, signal: AbortSignal): BackendError {
  return new BackendError(
    'ERR_AWS_KMS_ABORTED',
    `Creating the AWS KMS signer for ${key} failed: the caller aborted it through its ` +
      'AbortSignal.',
    { cause: signal.reason, details: { operation: 'createSigner', key } },
  );
}

type ErrorFactory = (code: string, text: string, extra?: Record<string, unknown>) => BackendError;

function mapServiceError(
  name: string,
  status: number | undefined,
  shape: SdkErrorShape,
  make: ErrorFactory,
  operation: KmsOperation,
  unreadable: boolean,
): BackendError {
  // The adapter's own body reader raises ResponseTooLarge; see collectBoundedBody.
  if (unreadable && name === 'ResponseTooLarge') {
    return make(
      'ERR_AWS_KMS_RESPONSE_INVALID',
      `the response body is larger than ${maxResponseBytes} bytes, far beyond any AWS KMS response, so it was not read. Check that the endpoint is AWS KMS.`,
    );
  }
  switch (name) {
    case 'NotFoundException':
      return make(
        'ERR_AWS_KMS_KEY_NOT_FOUND',
        "the key or alias does not exist in this account and region. Check the reference, and the region: a bare key ID or alias name is looked up in the client's region.",
      );
    case 'DisabledException':
      return make(
        'ERR_AWS_KMS_KEY_DISABLED',
        'the key is disabled. Enable it with "aws kms enable-key" or point the reference at an enabled key.',
      );
    case 'KMSInvalidStateException':
      return invalidStateError(shape, make);
    case 'InvalidKeyUsageException':
      return make(
        'ERR_AWS_KMS_KEY_UNSUITABLE',
        'the key does not allow this use. ES256 needs an ECC_NIST_P256 key with KeyUsage SIGN_VERIFY and the ECDSA_SHA_256 signing algorithm.',
      );
    case 'AccessDeniedException':
      return make(
        'ERR_AWS_KMS_ACCESS_DENIED',
        `access denied. Grant the ${requiredAction(operation)} action on this key in the key policy or an IAM policy of the caller.`,
        { requiredAction: requiredAction(operation) },
      );
  }

  if (credentialNames.has(name)) {
    return make(
      'ERR_AWS_KMS_CREDENTIALS_INVALID',
      `the request was rejected as ${name}. Check that the AWS credentials are valid, current and for this partition.`,
    );
  }
  if (name === 'CredentialsProviderError') {
    return make(
      'ERR_AWS_KMS_CREDENTIALS_MISSING',
      'no AWS credentials were found. Configure credentials (environment, shared config, role) or pass a configured KMSClient.',
    );
  }
  if (isRegionMissing(shape)) {
    return make(
      'ERR_AWS_KMS_REGION_MISSING',
      'no AWS region is configured. Use a key ARN or the form awskms:key-id=KEY;region=REGION, set AWS_REGION, or pass a configured KMSClient.',
    );
  }
  if (throttlingNames.has(name) || status === 429) {
    return make(
      'ERR_AWS_KMS_THROTTLED',
      `the request was throttled (${name}) and retries ran out. Lower the request rate, cache tokens, raise maxAttempts, or ask AWS for a higher quota.`,
    );
  }
  if (isTimeout(name, shape)) {
    return make(
      'ERR_AWS_KMS_TIMEOUT',
      `the request timed out (${name}). Check the network path to the KMS endpoint.`,
    );
  }
  if (
    unavailableNames.has(name) ||
    (status !== undefined && status >= 500) ||
    isNetworkError(shape)
  ) {
    return make(
      'ERR_AWS_KMS_UNAVAILABLE',
      `AWS KMS is unavailable (${unavailableReason(name, status, shape)}) and retries ran out. Check the endpoint and the network path, or try again later.`,
    );
  }
  if (unreadable) {
    return make(
      'ERR_AWS_KMS_RESPONSE_INVALID',
      `the response could not be read as AWS JSON 1.1 (${name}${status ? `, HTTP ${status}` : ''}). Check that the endpoint is AWS KMS, and not a proxy or another service.`,
    );
  }
  return make(
    'ERR_AWS_KMS_REQUEST_FAILED',
    `the service rejected the request with ${name}${status ? ` (HTTP ${status})` : ''}.`,
  );
}

function invalidStateError(shape: SdkErrorShape, make: ErrorFactory): BackendError {
  // KMSInvalidStateException carries the key state only in its message text.
  const text = typeof shape.message === 'string' ? shape.message : '';
  const keyState = /pending deletion/i.test(text)
    ? 'PendingDeletion'
    : /pending import/i.test(text)
      ? 'PendingImport'
      : /unavailable/i.test(text)
        ? 'Unavailable'
        : 'unknown';
  const advice: Record<string, string> = {
    PendingDeletion:
      'the key is scheduled for deletion. Cancel it with "aws kms cancel-key-deletion" and enable the key, or use another key.',
    PendingImport:
      'the key has no key material yet. Import it with "kms-jwt import --from KEY.p8 --to awskms:KEY-ARN".',
    Unavailable:
      'the key is unavailable, for example because its custom key store is disconnected.',
    unknown: 'the key is not in the Enabled state. Check it with "aws kms describe-key".',
  };
  return make('ERR_AWS_KMS_KEY_STATE', advice[keyState]!, { keyState });
}

/** Names the IAM action that an operation needs, for access-denied messages. */
export function requiredAction(operation: KmsOperation): string {
  return `kms:${operation}`;
}

function isRegionMissing(shape: SdkErrorShape): boolean {
  return typeof shape.message === 'string' && /region is missing/i.test(shape.message);
}

function unavailableReason(name: string, status: number | undefined, shape: SdkErrorShape): string {
  if (isNetworkError(shape)) return `${String(shape.code)} on the connection`;
  return status === undefined ? name : `${name}, HTTP ${status}`;
}

// The SDK's Node HTTP handler (@smithy/node-http-handler 4.x) renames socket errors with the
// codes ECONNRESET and EPIPE to TimeoutError, although the peer dropped the connection and no
// time ran out. Those stay connection failures here.
function isTimeout(name: string, shape: SdkErrorShape): boolean {
  if (name === 'RequestTimeout' || name === 'RequestTimeoutException') return true;
  return name === 'TimeoutError' && shape.code !== 'ECONNRESET' && shape.code !== 'EPIPE';
}

function isNetworkError(shape: SdkErrorShape): boolean {
  return typeof shape.code === 'string' && networkCodes.has(shape.code);
}
