/**
 * The narrow slice of `@aws-sdk/client-kms` this adapter uses: it loads the SDK on first use,
 * builds or accepts a `KMSClient`, and sends each command with a deadline, the caller's
 * `AbortSignal`, retry events and coded errors. Retries stay inside the SDK's own retry
 * middleware: the adapter supplies a bounded retry strategy when it builds the client, and
 * observes every attempt of a caller's client through a per-command middleware.
 */
import { loadPeer } from '../../src/peer.js';
import { emitEvent, type RuntimeOptions, type SignerEvent } from '../../src/signer.js';
import type { BackendError } from '../../src/errors.js';
import {
  mapKmsError,
  maxResponseBytes,
  sdkErrorName,
  type CallEnding,
  type KmsOperation,
} from './errors.js';

/** What the adapter needs from a `KMSClient`. A real `KMSClient` satisfies it. */
export interface KmsClientLike {
  send(command: unknown, options?: { abortSignal?: AbortSignal }): Promise<unknown>;
  destroy?(): void;
  config?: { region?: unknown };
}

/** AWS credentials in the SDK's shape: static values or an async provider. */
export type AwsCredentialsInput =
  | { accessKeyId: string; secretAccessKey: string; sessionToken?: string }
  | (() => Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken?: string }>);

/** Client settings used only when the adapter builds the `KMSClient` itself. */
export interface KmsClientSettings {
  region?: string;
  endpoint?: string;
  profile?: string;
  credentials?: AwsCredentialsInput;
  /** Attempts per call, counting the first. Defaults to 3, as in the SDK. */
  maxAttempts?: number;
  /** Base of the exponential backoff in ms; throttling waits five times longer. Defaults to 100. */
  retryBaseDelayMs?: number;
}

type SdkModule = typeof import('@aws-sdk/client-kms');

/** Default deadline of one KMS call, retries included. */
export const defaultTimeoutMs = 10_000;
const defaultMaxAttempts = 3;
const defaultRetryBaseDelayMs = 100;
// The SDK caps one backoff at 20 s; a signing call should never wait that long.
const maxRetryDelayMs = 2_000;
const maxTimerDelayMs = 2 ** 31 - 1;

/** Loads `@aws-sdk/client-kms`, raising `ERR_PEER_MISSING` when it is not installed. */
export function loadKmsSdk(): Promise<SdkModule> {
  return loadPeer('@aws-sdk/client-kms', () => import('@aws-sdk/client-kms'));
}

/** A KMS client with the adapter's deadline, abort, retry-event and error handling. */
export class KmsConnection {
  readonly #sdk: SdkModule;
  readonly #client: KmsClientLike;
  readonly #ownsClient: boolean;
  readonly #runtime: RuntimeOptions;

  constructor(sdk: SdkModule, client: KmsClientLike, ownsClient: boolean, runtime: RuntimeOptions) {
    this.#sdk = sdk;
    this.#client = client;
    this.#ownsClient = ownsClient;
    this.#runtime = runtime;
  }

  /** The SDK module, for building command classes. */
  get sdk(): SdkModule {
    return this.#sdk;
  }

  /** The client's configured region, or undefined when it has none or cannot say. */
  async clientRegion(): Promise<string | undefined> {
    const region = this.#client.config?.region;
    try {
      const value: unknown = typeof region === 'function' ? await region() : region;
      return typeof value === 'string' ? value : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Sends `command` for `operation` on `key` with a deadline of `timeoutMs` (the runtime
   * option, else 10 s) joined to `signal`.
   */
  async send<T>(
    operation: KmsOperation,
    key: string,
    command: { middlewareStack: object },
    signal?: AbortSignal,
  ): Promise<T> {
    const timeoutMs = this.#runtime.timeoutMs ?? defaultTimeoutMs;
    if (signal?.aborted) throw this.#fail(undefined, { operation, key, ending: 'aborted', signal });
    // A cleared timer, unlike AbortSignal.timeout, leaves nothing pending once the call is over.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(deadlineError(timeoutMs)), timeoutMs);
    const abortSignal = signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal;
    (command.middlewareStack as MiddlewareStackLike).add(
      attemptObserver((event) => this.#report({ ...event, operation, key })),
      {
        step: 'finalizeRequest',
        priority: 'low',
        name: 'kmsJwtAttemptObserver',
      },
    );

    try {
      return (await this.#client.send(command, { abortSignal })) as T;
    } catch (error) {
      const ending: CallEnding = signal?.aborted
        ? 'aborted'
        : deadline.signal.aborted
          ? 'deadline'
          : undefined;
      throw this.#fail(error, { operation, key, ending, timeoutMs, signal });
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Creates the `ERR_AWS_KMS_ABORTED` error for a wait that `signal` ended outside `send`, and
   * reports it as an error event.
   */
  abortError(operation: KmsOperation, key: string, signal: AbortSignal): BackendError {
    return this.#fail(undefined, { operation, key, ending: 'aborted', signal });
  }

  /** Destroys the client when the adapter built it; a caller's client is left open. */
  close(): void {
    if (this.#ownsClient) this.#client.destroy?.();
  }

  #fail(error: unknown, context: Parameters<typeof mapKmsError>[1]): BackendError {
    const mapped = mapKmsError(error, context);
    this.#report({
      type: 'error',
      operation: context.operation,
      key: context.key,
      code: mapped.code,
    });
    return mapped;
  }

  #report(event: SignerEvent): void {
    emitEvent(this.#runtime, event);
  }
}

/**
 * Builds a `KmsConnection`: a caller's `client` wins; otherwise a new `KMSClient` from
 * `settings` with a bounded retry strategy.
 *
 * @example
 * const kms = await connectKms({ region: 'eu-west-1' }, undefined, { timeoutMs: 5000 });
 */
export async function connectKms(
  settings: KmsClientSettings,
  client: KmsClientLike | undefined,
  runtime: RuntimeOptions,
): Promise<KmsConnection> {
  if (runtime.timeoutMs !== undefined) assertTimerDelay(runtime.timeoutMs, 'timeoutMs', 1);
  const sdk = await loadKmsSdk();
  if (client) return new KmsConnection(sdk, client, false, runtime);

  const maxAttempts = settings.maxAttempts ?? defaultMaxAttempts;
  assertPositiveInteger(maxAttempts, 'maxAttempts');
  const baseDelayMs = settings.retryBaseDelayMs ?? defaultRetryBaseDelayMs;
  assertTimerDelay(baseDelayMs, 'retryBaseDelayMs', 0);
  const built = new sdk.KMSClient({
    ...(settings.region === undefined ? {} : { region: settings.region }),
    ...(settings.endpoint === undefined ? {} : { endpoint: settings.endpoint }),
    ...(settings.profile === undefined ? {} : { profile: settings.profile }),
    ...(settings.credentials === undefined ? {} : { credentials: settings.credentials }),
    maxAttempts,
    retryStrategy: new BoundedRetryStrategy(maxAttempts, baseDelayMs),
    streamCollector: collectBoundedBody,
  });
  return new KmsConnection(sdk, built, true, runtime);
}

/**
 * Reads a response body like the SDK's own stream collector, but stops at `maxResponseBytes`
 * and destroys the stream, so that the rest of an oversized body is not read.
 */
export async function collectBoundedBody(body: unknown): Promise<Uint8Array> {
  if (body instanceof Uint8Array) return body;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Uint8Array | string>) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += bytes.length;
    if (size > maxResponseBytes) {
      (body as { destroy?: () => void }).destroy?.();
      throw responseTooLargeError();
    }
    chunks.push(bytes);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

function responseTooLargeError(): Error {
  const error = new Error(
    `The AWS KMS response body is larger than ${maxResponseBytes} bytes, far beyond any AWS KMS response.`,
  );
  error.name = 'ResponseTooLarge';
  return error;
}

function deadlineError(timeoutMs: number): Error {
  const error = new Error(`The AWS KMS call did not finish within ${timeoutMs} ms.`);
  error.name = 'TimeoutError';
  return error;
}

// setTimeout fires at once for NaN, negative values and anything above 2^31 - 1 ms, so such a
// deadline would end every call before it starts.
function assertTimerDelay(value: unknown, name: string, min: number): void {
  if (typeof value === 'number' && value >= min && value <= maxTimerDelayMs) return;
  throw new TypeError(
    `${name} must be a number of milliseconds from ${min} to ${maxTimerDelayMs}, but it is ${String(value)}.`,
  );
}

function assertPositiveInteger(value: unknown, name: string): void {
  if (!Number.isInteger(value) || (value as number) < 1) {
    throw new TypeError(`${name} must be a positive integer, but it is ${String(value)}.`);
  }
}

// --- The SDK's retry interfaces (RetryStrategyV2 in @smithy/types), declared locally so that
// the adapter's types do not depend on a transitive package.

interface RetryToken {
  getRetryCount(): number;
  getRetryDelay(): number;
}

interface RetryErrorInfo {
  errorType: 'THROTTLING' | 'TRANSIENT' | 'SERVER_ERROR' | 'CLIENT_ERROR';
}

/**
 * A retry strategy for the SDK's retry middleware: at most `maxAttempts` attempts, exponential
 * backoff with full jitter, and retries only for throttling, transient and server errors. The
 * middleware sleeps for the returned delay and cuts the sleep short when the call's
 * `AbortSignal` fires, so a deadline also bounds the waiting.
 */
export class BoundedRetryStrategy {
  readonly mode = 'standard';
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;

  constructor(maxAttempts: number, baseDelayMs: number) {
    this.#maxAttempts = maxAttempts;
    this.#baseDelayMs = baseDelayMs;
  }

  async acquireInitialRetryToken(): Promise<RetryToken> {
    return retryToken(0, 0);
  }

  async refreshRetryTokenForRetry(
    token: RetryToken,
    errorInfo: RetryErrorInfo,
  ): Promise<RetryToken> {
    const retries = token.getRetryCount();
    if (retries + 1 >= this.#maxAttempts || errorInfo.errorType === 'CLIENT_ERROR') {
      // The middleware rethrows the original error when no token is granted.
      throw new Error('No retry token available');
    }
    const base = errorInfo.errorType === 'THROTTLING' ? this.#baseDelayMs * 5 : this.#baseDelayMs;
    const ceiling = Math.min(maxRetryDelayMs, base * 2 ** retries);
    return retryToken(retries + 1, Math.floor(Math.random() * ceiling));
  }

  recordSuccess(): void {}

  async maxAttempts(): Promise<number> {
    return this.#maxAttempts;
  }
}

function retryToken(count: number, delay: number): RetryToken {
  return { getRetryCount: () => count, getRetryDelay: () => delay };
}

// --- Attempt observation. The middleware runs inside the SDK's retry loop (finalizeRequest,
// low priority, after the high-priority retry middleware), so it sees every attempt.

/** The part of the SDK's middleware stack that the adapter uses. */
export interface MiddlewareStackLike {
  add(middleware: unknown, options: { step: string; priority: string; name: string }): void;
}

type Handler = (args: { request?: { headers?: Record<string, string> } }) => Promise<unknown>;

function attemptObserver(report: (event: SignerEvent) => void) {
  let lastFailure: { reason: string; at: number } | undefined;
  return (next: Handler) => async (args: Parameters<Handler>[0]) => {
    const { attempt, maxAttempts } = parseAttemptHeader(args.request?.headers?.['amz-sdk-request']);
    if (attempt > 1 && lastFailure) {
      const delayMs = Math.round(performance.now() - lastFailure.at);
      report({ type: 'retry', attempt, maxAttempts, reason: lastFailure.reason, delayMs });
    }

    try {
      return await next(args);
    } catch (error) {
      lastFailure = { reason: sdkErrorName(error), at: performance.now() };
      throw error;
    }
  };
}

// The SDK sets `amz-sdk-request: attempt=N; max=M` on every attempt.
function parseAttemptHeader(value: string | undefined): {
  attempt: number;
  maxAttempts: number | undefined;
} {
  const attempt = /attempt=(\d+)/.exec(value ?? '')?.[1];
  const max = /max=(\d+)/.exec(value ?? '')?.[1];
  return { attempt: attempt ? Number(attempt) : 1, maxAttempts: max ? Number(max) : undefined };
}
