/**
 * A local AWS KMS emulator for tests: an HTTP server on 127.0.0.1 that speaks the AWS JSON 1.1
 * protocol of AWS KMS (POST /, `X-Amz-Target: TrentService.<Operation>`, base64 blobs, epoch
 * second timestamps, errors as `{ __type, message }` with HTTP 400, or 500 for internal ones).
 * It holds real keys, signs with real ECDSA over digests, unwraps imported key material with a
 * real RSA key, and offers fault switches for the failures a signer must survive.
 *
 * It implements Sign, GetPublicKey, DescribeKey, CreateKey, GetParametersForImport,
 * ImportKeyMaterial and CreateAlias. It checks only that a SigV4 Authorization header is
 * present, not its signature. It imports no test framework, so it can run under any runner.
 *
 * @example
 * const kms = new AwsKmsEmulator();
 * await kms.start();
 * const key = kms.createKey();
 * const client = new KMSClient({ endpoint: kms.endpoint, region: kms.region, credentials });
 * // ...
 * await kms.stop();
 */
import { createHash, createPublicKey, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { signDigest } from './ecdsa.js';
import { ImportState } from './import.js';
import { KmsServiceError } from './service-error.js';
import {
  generatePrivateKey,
  signingAlgorithms,
  type EmulatorKey,
  type EmulatorKeySpec,
  type EmulatorKeyState,
} from './keys.js';

export type { EmulatorKey, EmulatorKeySpec, EmulatorKeyState } from './keys.js';
export { KmsServiceError } from './service-error.js';

/** How Sign misbehaves while a signature fault is on. */
export type SignatureFault =
  'truncated-der' | 'garbage-der' | 'raw-p1363' | 'other-key' | 'double-hash';

/** Fault switches. Each applies to the operations in `operations`, or to all when unset. */
export interface EmulatorFaults {
  /** Answer the next N matching requests with ThrottlingException (HTTP 400). */
  throttle?: number;
  /** Answer the next N matching requests with KMSInternalException (HTTP 500). */
  serverErrors?: number;
  /** Hold each matching response this long before sending it. */
  delayMs?: number;
  /** Make Sign return a bad or foreign signature. */
  signature?: SignatureFault;
  /** Make GetPublicKey return the public key of another P-256 key pair. */
  publicKey?: 'other-key';
  /** Make GetParametersForImport return an RSA-2048 wrapping key whatever size was requested. */
  wrappingKey?: 'wrong-size';
  /** Answer AccessDeniedException for these operations. */
  accessDenied?: string[];
  /**
   * Responds to every matching request with this AWS error, such as
   * `{ type: 'KeyUnavailableException', status: 500 }`. The status defaults to 400.
   */
  error?: { type: string; message?: string; status?: number };
  /** Change each successful matching response before it is sent, for malformed-response tests. */
  rewrite?: (operation: string, payload: Record<string, unknown>) => Record<string, unknown>;
  /** Restrict throttle, serverErrors, error, rewrite and delayMs to these operations. */
  operations?: string[];
}

/** Options of {@link AwsKmsEmulator}. */
export interface AwsKmsEmulatorOptions {
  /** Port on 127.0.0.1; 0 (the default) picks a free one. */
  port?: number;
  region?: string;
  accountId?: string;
}

/** A request as the emulator received it, for assertions. */
export interface RecordedRequest {
  operation: string;
  body: Record<string, unknown>;
  attemptHeader: string | undefined;
  /** The region of the SigV4 credential scope, which shows the region the client signed for. */
  signingRegion: string | undefined;
}

type OperationHandler = (
  body: Record<string, unknown>,
) => Record<string, unknown> | Promise<Record<string, unknown>>;

const maxRawMessage = 4096;
const digestLength = 32;

/** The AWS KMS emulator. */
export class AwsKmsEmulator {
  readonly region: string;
  readonly accountId: string;
  /** Requests received per operation, faulted ones included. */
  readonly calls: Record<string, number> = {};
  /** Every request received, in order. */
  readonly requests: RecordedRequest[] = [];
  /** The active fault switches; change them at any time. */
  faults: EmulatorFaults = {};
  /** Unexpected errors inside the emulator, each answered as KMSInternalException (HTTP 500). */
  readonly internalErrors: unknown[] = [];

  readonly #port: number;
  readonly #keys = new Map<string, EmulatorKey>();
  readonly #aliases = new Map<string, string>();
  readonly #imports = new ImportState();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #foreignKey = generatePrivateKey('ECC_NIST_P256');
  readonly #handlers: Record<string, OperationHandler>;
  #server: Server | undefined;

  constructor(options: AwsKmsEmulatorOptions = {}) {
    this.#port = options.port ?? 0;
    this.region = options.region ?? 'us-east-1';
    this.accountId = options.accountId ?? '111122223333';
    this.#handlers = {
      Sign: (body) => this.#sign(body),
      GetPublicKey: (body) => this.#getPublicKey(body),
      DescribeKey: (body) => ({ KeyMetadata: this.#metadata(this.#resolve(body.KeyId)) }),
      CreateKey: (body) => this.#createKeyOperation(body),
      GetParametersForImport: (body) => this.#getParametersForImport(body),
      ImportKeyMaterial: (body) => this.#importKeyMaterial(body),
      CreateAlias: (body) => this.#createAliasOperation(body),
    };
  }

  /** The endpoint URL to give the SDK, such as `http://127.0.0.1:40123`. */
  get endpoint(): string {
    if (!this.#server) throw new Error('The emulator is not started.');
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** The port it listens on. */
  get port(): number {
    return Number(new URL(this.endpoint).port);
  }

  /** Starts listening on 127.0.0.1. */
  async start(): Promise<void> {
    if (this.#server) return;
    const server = createServer((request, response) => void this.#handle(request, response));
    server.keepAliveTimeout = 1_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, '127.0.0.1', () => resolve());
    });
    this.#server = server;
  }

  /** Stops the server, drops held responses and closes every connection. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * Creates a key. With `origin: 'EXTERNAL'` it waits in PendingImport; otherwise the emulator
   * generates the key pair, or uses `privateKey` when given.
   */
  createKey(
    options: {
      keySpec?: EmulatorKeySpec;
      origin?: 'AWS_KMS' | 'EXTERNAL';
      privateKey?: KeyObject;
      alias?: string;
      description?: string;
    } = {},
  ): EmulatorKey {
    const keySpec = options.keySpec ?? 'ECC_NIST_P256';
    const origin = options.origin ?? 'AWS_KMS';
    const keyId = randomUUID();
    const key: EmulatorKey = {
      keyId,
      arn: `arn:aws:kms:${this.region}:${this.accountId}:key/${keyId}`,
      keySpec,
      keyUsage: 'SIGN_VERIFY',
      origin,
      state: origin === 'EXTERNAL' ? 'PendingImport' : 'Enabled',
      description: options.description ?? '',
      creationDate: Math.floor(Date.now() / 1000),
      privateKey:
        origin === 'EXTERNAL' ? undefined : (options.privateKey ?? generatePrivateKey(keySpec)),
    };
    this.#keys.set(keyId, key);
    if (options.alias) this.createAlias(options.alias, keyId);
    return key;
  }

  /** Points `alias/NAME` at a key. */
  createAlias(aliasName: string, keyId: string): void {
    this.#aliases.set(aliasName, this.#resolve(keyId).keyId);
  }

  /** Sets a key's state, for example Disabled or PendingDeletion. */
  setKeyState(keyIdOrArn: string, state: EmulatorKeyState): void {
    this.#resolve(keyIdOrArn).state = state;
  }

  /** Returns a key by ID, ARN, alias name or alias ARN, or undefined. */
  findKey(keyIdOrAlias: string): EmulatorKey | undefined {
    try {
      return this.#resolve(keyIdOrAlias);
    } catch {
      return undefined;
    }
  }

  /** Clears the fault switches, counters, request log and recorded internal errors. */
  reset(): void {
    this.faults = {};
    this.requests.length = 0;
    this.internalErrors.length = 0;
    for (const name of Object.keys(this.calls)) delete this.calls[name];
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const target = String(request.headers['x-amz-target'] ?? '');
    const operation = target.startsWith('TrentService.')
      ? target.slice('TrentService.'.length)
      : '';
    let status = 200;
    let payload: Record<string, unknown>;
    try {
      const body = await readJson(request);
      this.calls[operation] = (this.calls[operation] ?? 0) + 1;
      this.requests.push({
        operation,
        body,
        attemptHeader: headerText(request.headers['amz-sdk-request']),
        signingRegion: signingRegionOf(headerText(request.headers.authorization)),
      });
      payload = await this.#dispatch(request, operation, body);
    } catch (error) {
      if (!(error instanceof KmsServiceError)) this.internalErrors.push(error);
      const serviceError =
        error instanceof KmsServiceError
          ? error
          : new KmsServiceError('KMSInternalException', 'Internal error.', 500);
      status = serviceError.status;
      payload = { __type: serviceError.type, message: serviceError.message };
    }

    await this.#delay(operation);
    if (!this.#server || response.destroyed) return;
    const text = JSON.stringify(payload);
    response.writeHead(status, {
      'content-type': 'application/x-amz-json-1.1',
      'content-length': Buffer.byteLength(text),
      'x-amzn-requestid': randomUUID(),
    });
    response.end(text);
  }

  async #dispatch(request: IncomingMessage, operation: string, body: Record<string, unknown>) {
    if (request.method !== 'POST' || request.url !== '/') {
      throw new KmsServiceError('UnknownOperationException', 'Only POST / is served.');
    }
    if (!String(request.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 Credential=')) {
      throw new KmsServiceError(
        'MissingAuthenticationTokenException',
        'Request is missing Authentication Token',
      );
    }
    const handler = this.#handlers[operation];
    if (!handler)
      throw new KmsServiceError(
        'UnknownOperationException',
        `Operation ${operation} is not served.`,
      );

    this.#injectFaults(operation, body);
    const payload = await handler(body);
    const rewrite = this.faults.rewrite;
    return rewrite && this.#faultApplies(operation) ? rewrite(operation, payload) : payload;
  }

  #injectFaults(operation: string, body: Record<string, unknown>): void {
    const faults = this.faults;
    if (faults.accessDenied?.includes(operation)) {
      const resource = this.findKey(String(body.KeyId ?? ''))?.arn ?? String(body.KeyId ?? '*');
      throw new KmsServiceError(
        'AccessDeniedException',
        `User: arn:aws:iam::${this.accountId}:user/emulator is not authorized to perform: kms:${operation} on resource: ${resource} because no identity-based policy allows the kms:${operation} action`,
      );
    }
    if (!this.#faultApplies(operation)) return;
    if ((faults.throttle ?? 0) > 0) {
      faults.throttle! -= 1;
      throw new KmsServiceError('ThrottlingException', 'Rate exceeded');
    }
    if (faults.error) {
      const { type, message, status } = faults.error;
      throw new KmsServiceError(type, message ?? `${type} from the emulator.`, status ?? 400);
    }
    if ((faults.serverErrors ?? 0) > 0) {
      faults.serverErrors! -= 1;
      throw new KmsServiceError(
        'KMSInternalException',
        'The request was rejected because an internal exception occurred.',
        500,
      );
    }
  }

  #faultApplies(operation: string): boolean {
    return this.faults.operations === undefined || this.faults.operations.includes(operation);
  }

  async #delay(operation: string): Promise<void> {
    const delayMs = this.faults.delayMs ?? 0;
    if (delayMs <= 0 || !this.#faultApplies(operation)) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve();
      }, delayMs);
      this.#timers.add(timer);
    });
  }

  // --- Operations

  #sign(body: Record<string, unknown>) {
    const key = this.#usableKey(body.KeyId);
    const algorithm = String(body.SigningAlgorithm ?? '');
    if (key.keyUsage !== 'SIGN_VERIFY' || !signingAlgorithms[key.keySpec].includes(algorithm)) {
      throw new KmsServiceError(
        'InvalidKeyUsageException',
        `${algorithm} is not a supported signing algorithm for ${key.arn} with key spec ${key.keySpec}.`,
      );
    }
    const message = decodeBlob(body.Message, 'Message');
    const digest = this.#digestToSign(message, String(body.MessageType ?? 'RAW'));
    return {
      KeyId: key.arn,
      Signature: this.#signature(key, digest).toString('base64'),
      SigningAlgorithm: algorithm,
    };
  }

  #digestToSign(message: Buffer, messageType: string): Buffer {
    if (messageType === 'DIGEST') {
      if (message.length !== digestLength) {
        throw new KmsServiceError(
          'ValidationException',
          'Digest is invalid length for algorithm ECDSA_SHA_256.',
        );
      }
      // The double-hashing bug of several emulators: the digest treated as a message.
      return this.faults.signature === 'double-hash' ? sha256(message) : message;
    }
    if (messageType !== 'RAW')
      throw new KmsServiceError('ValidationException', `MessageType ${messageType} is not valid.`);
    if (message.length > maxRawMessage) {
      throw new KmsServiceError(
        'ValidationException',
        "1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have length less than or equal to 4096",
      );
    }
    return sha256(message);
  }

  #signature(key: EmulatorKey, digest: Buffer): Buffer {
    if (key.keySpec === 'RSA_2048') {
      throw new KmsServiceError(
        'UnsupportedOperationException',
        'This emulator does not make RSA signatures.',
      );
    }
    const fault = this.faults.signature;
    const signer = fault === 'other-key' ? this.#foreignKey : key.privateKey!;
    const { der, p1363 } = signDigest(signer, digest);
    if (fault === 'truncated-der') return der.subarray(0, der.length - 3);
    if (fault === 'garbage-der') return randomBytes(der.length);
    if (fault === 'raw-p1363') return p1363;
    return der;
  }

  #getPublicKey(body: Record<string, unknown>) {
    const key = this.#usableKey(body.KeyId);
    const privateKey = this.faults.publicKey === 'other-key' ? this.#foreignKey : key.privateKey!;
    return {
      KeyId: key.arn,
      PublicKey: publicSpki(privateKey).toString('base64'),
      KeySpec: key.keySpec,
      CustomerMasterKeySpec: key.keySpec,
      KeyUsage: key.keyUsage,
      SigningAlgorithms: signingAlgorithms[key.keySpec],
    };
  }

  #createKeyOperation(body: Record<string, unknown>) {
    const keySpec = String(body.KeySpec ?? 'SYMMETRIC_DEFAULT') as EmulatorKeySpec;
    if (!(keySpec in signingAlgorithms)) {
      throw new KmsServiceError(
        'ValidationException',
        `KeySpec ${keySpec} is not supported by this emulator.`,
      );
    }
    if (body.KeyUsage !== 'SIGN_VERIFY') {
      throw new KmsServiceError(
        'ValidationException',
        `KeyUsage ${String(body.KeyUsage)} is not valid for ${keySpec} in this emulator.`,
      );
    }
    const origin = String(body.Origin ?? 'AWS_KMS');
    if (origin !== 'AWS_KMS' && origin !== 'EXTERNAL') {
      throw new KmsServiceError(
        'UnsupportedOperationException',
        `Origin ${origin} is not supported by this emulator.`,
      );
    }
    const key = this.createKey({ keySpec, origin, description: String(body.Description ?? '') });
    return { KeyMetadata: this.#metadata(key) };
  }

  #getParametersForImport(body: Record<string, unknown>) {
    const key = this.#resolve(body.KeyId);
    if (key.origin !== 'EXTERNAL') {
      throw new KmsServiceError(
        'UnsupportedOperationException',
        `${key.arn} origin is AWS_KMS which is not valid for this operation.`,
      );
    }
    if (key.state === 'PendingDeletion' || key.state === 'Disabled') {
      throw new KmsServiceError(
        'KMSInvalidStateException',
        `${key.arn} is ${stateWords(key.state)}.`,
      );
    }
    const wrappingKeySpec = String(body.WrappingKeySpec ?? '');
    return this.#imports.issue(
      key,
      String(body.WrappingAlgorithm ?? ''),
      wrappingKeySpec,
      this.faults.wrappingKey === 'wrong-size' ? 'RSA_2048' : wrappingKeySpec,
    );
  }

  #importKeyMaterial(body: Record<string, unknown>) {
    const key = this.#resolve(body.KeyId);
    if (key.state === 'PendingDeletion' || key.state === 'Disabled') {
      throw new KmsServiceError(
        'KMSInvalidStateException',
        `${key.arn} is ${stateWords(key.state)}.`,
      );
    }
    const model = String(body.ExpirationModel ?? 'KEY_MATERIAL_EXPIRES');
    if (model === 'KEY_MATERIAL_EXPIRES' && body.ValidTo === undefined) {
      throw new KmsServiceError(
        'ValidationException',
        'A ValidTo date is required when ExpirationModel is KEY_MATERIAL_EXPIRES.',
      );
    }
    const material = this.#imports.unwrap(
      key,
      decodeBlob(body.ImportToken, 'ImportToken'),
      decodeBlob(body.EncryptedKeyMaterial, 'EncryptedKeyMaterial'),
    );
    key.privateKey = material;
    key.state = 'Enabled';
    return { KeyId: key.arn };
  }

  #createAliasOperation(body: Record<string, unknown>) {
    const aliasName = String(body.AliasName ?? '');
    if (!/^alias\/[A-Za-z0-9/_-]{1,250}$/.test(aliasName) || aliasName.startsWith('alias/aws/')) {
      throw new KmsServiceError(
        'ValidationException',
        `Alias ${aliasName} is not a valid alias name.`,
      );
    }
    if (this.#aliases.has(aliasName)) {
      throw new KmsServiceError(
        'AlreadyExistsException',
        `An alias with the name arn:aws:kms:${this.region}:${this.accountId}:${aliasName} already exists`,
      );
    }
    this.createAlias(aliasName, this.#resolve(body.TargetKeyId).keyId);
    return {};
  }

  // --- Key lookup and state

  #resolve(keyIdInput: unknown): EmulatorKey {
    const keyId = String(keyIdInput ?? '');
    if (keyId === '') throw new KmsServiceError('ValidationException', 'KeyId is required.');
    const aliasArnPrefix = `arn:aws:kms:${this.region}:${this.accountId}:`;
    const local = keyId.startsWith(aliasArnPrefix) ? keyId.slice(aliasArnPrefix.length) : keyId;
    if (local.startsWith('alias/')) {
      const target = this.#aliases.get(local);
      const key = target === undefined ? undefined : this.#keys.get(target);
      if (!key)
        throw new KmsServiceError(
          'NotFoundException',
          `Alias ${aliasArnPrefix}${local} is not found.`,
        );
      return key;
    }
    const id = local.startsWith('key/') ? local.slice('key/'.length) : local;
    const key =
      keyId.startsWith('arn:') && !keyId.startsWith(aliasArnPrefix)
        ? undefined
        : this.#keys.get(id);
    if (!key)
      throw new KmsServiceError(
        'NotFoundException',
        `Key '${keyId.startsWith('arn:') ? keyId : aliasArnPrefix + 'key/' + keyId}' does not exist`,
      );
    return key;
  }

  #usableKey(keyId: unknown): EmulatorKey {
    const key = this.#resolve(keyId);
    if (key.state === 'Disabled')
      throw new KmsServiceError('DisabledException', `${key.arn} is disabled.`);
    if (key.state !== 'Enabled')
      throw new KmsServiceError(
        'KMSInvalidStateException',
        `${key.arn} is ${stateWords(key.state)}.`,
      );
    return key;
  }

  #metadata(key: EmulatorKey) {
    return {
      AWSAccountId: this.accountId,
      KeyId: key.keyId,
      Arn: key.arn,
      CreationDate: key.creationDate,
      Enabled: key.state === 'Enabled',
      Description: key.description,
      KeyUsage: key.keyUsage,
      KeyState: key.state,
      Origin: key.origin,
      KeyManager: 'CUSTOMER',
      KeySpec: key.keySpec,
      CustomerMasterKeySpec: key.keySpec,
      SigningAlgorithms: signingAlgorithms[key.keySpec],
      MultiRegion: false,
      ...(key.origin === 'EXTERNAL' && key.privateKey
        ? { ExpirationModel: 'KEY_MATERIAL_DOES_NOT_EXPIRE' }
        : {}),
    };
  }
}

function stateWords(state: EmulatorKeyState): string {
  return {
    Enabled: 'enabled',
    Disabled: 'disabled',
    PendingDeletion: 'pending deletion',
    PendingImport: 'pending import',
  }[state];
}

function publicSpki(privateKey: KeyObject): Buffer {
  return createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
}

function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

function decodeBlob(value: unknown, field: string): Buffer {
  if (typeof value !== 'string' || value === '')
    throw new KmsServiceError('ValidationException', `${field} is required.`);
  return Buffer.from(value, 'base64');
}

// Authorization: AWS4-HMAC-SHA256 Credential=ACCESS-KEY/DATE/REGION/kms/aws4_request, ...
function signingRegionOf(authorization: string | undefined): string | undefined {
  return /Credential=[^/]+\/\d{8}\/([^/]+)\/kms\//.exec(authorization ?? '')?.[1];
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') return {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed))
      return parsed as Record<string, unknown>;
  } catch {
    // Falls through to the SerializationException below.
  }
  throw new KmsServiceError('SerializationException', 'The request body is not a JSON object.');
}
