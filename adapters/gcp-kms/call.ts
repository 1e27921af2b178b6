/**
 * Runs one Cloud KMS RPC with a deadline, the caller's AbortSignal and a bounded retry loop.
 *
 * The Google client's own retries are switched off for every call (`retry: null`). Its
 * defaults retry UNAVAILABLE and DEADLINE_EXCEEDED for a long time: the client config of
 * @google-cloud/kms 5.7.0 says 600 s, and google-gax 5.0.8 stopped after 60 s in a test
 * against an always-UNAVAILABLE server. The per-call `maxRetries` option is never used,
 * because it rewrites the settings that every later call on the client shares. This loop
 * retries transient failures and failed integrity checks instead, at most `maxAttempts` times
 * in all, and reports each retry through `onEvent`.
 */
import { BackendError, KmsJwtError, isKmsJwtError } from '../../src/errors.js';
import { shortenForMessage } from '../../src/message-text.js';
import { emitEvent, type RuntimeOptions } from '../../src/signer.js';
import type { GcpKmsCallOptions, GcpKmsReply } from './client.js';
import {
  credentialsError,
  grpcCode,
  grpcStatus,
  mapKmsError,
  type KmsOperation,
} from './errors.js';

/** Default deadline of one attempt, in milliseconds. */
export const defaultTimeoutMs = 10_000;
/** Default number of attempts for one operation, the first included. */
export const defaultMaxAttempts = 3;
/**
 * The maximum delay `setTimeout` honours, 2^31 - 1 ms (about 24.8 days). Node runs a timer with
 * a longer delay after 1 ms instead.
 */
export const maxTimerMs = 2_147_483_647;

const firstRetryDelayMs = 100;
const maxRetryDelayMs = 2_000;

/** Settings shared by every call of one signer or import. */
export interface CallSettings {
  timeoutMs: number;
  maxAttempts: number;
  signal: AbortSignal | undefined;
  events: RuntimeOptions;
}

/** A check of a response that failed; the response is discarded and the call retried. */
export interface IntegrityProblem {
  /** The field or rule that failed, such as `signatureCrc32c` or `name`. */
  check: string;
  /** A sentence saying what was wrong, without any key or signature bytes. */
  problem: string;
}

/** One RPC to run. */
export interface KmsCall<T> {
  operation: KmsOperation;
  resource: string;
  /** Only idempotent RPCs are retried after a transient failure. */
  idempotent: boolean;
  invoke(options: GcpKmsCallOptions): GcpKmsReply<T>;
  /** Returns a problem when the response fails an integrity check. */
  check?(response: T): IntegrityProblem | undefined;
}

/**
 * Runs `call` until it succeeds and passes its check, or the attempts run out.
 *
 * @example
 * const key = await runKmsCall(settings, {
 *   operation: 'GetPublicKey', resource: name, idempotent: true,
 *   invoke: (options) => client.getPublicKey({ name }, options),
 * }, signal);
 */
export async function runKmsCall<T>(
  settings: CallSettings,
  call: KmsCall<T>,
  callSignal?: AbortSignal,
): Promise<T> {
  const signal = combineSignals(settings.signal, callSignal);
  for (let attempt = 1; ; attempt++) {
    assertNotAborted(signal, call);
    const isLast = attempt >= settings.maxAttempts;

    let response: T;
    try {
      response = await attemptCall(settings, call, signal);
    } catch (error) {
      if (isLast || !isRetryable(error, call))
        throw mapKmsError(error, call.operation, call.resource);
      await backOff(settings, call, attempt, signal, {
        reason: 'transient',
        code: grpcCode(error),
      });
      continue;
    }

    const problem = call.check?.(response);
    if (!problem) return response;
    if (isLast) throw integrityError(call, problem, attempt);
    await backOff(settings, call, attempt, signal, { reason: 'integrity', check: problem.check });
  }
}

/** Runs one attempt, raced against the deadline and the signal so that neither waits on gRPC. */
async function attemptCall<T>(
  settings: CallSettings,
  call: KmsCall<T>,
  signal: AbortSignal | undefined,
): Promise<T> {
  // NOTE: google-gax 5 copies `timeout` into the method's shared retry settings until the next
  // call on the client sets them again, which can shorten the retry window of a caller's own call.
  const pending = call.invoke({ timeout: settings.timeoutMs, retry: null });
  // The local guard fires 250 ms after gRPC's own deadline, which reports DEADLINE_EXCEEDED first.
  const [response] = await raceDeadline(pending, {
    guardMs: Math.min(settings.timeoutMs + 250, maxTimerMs),
    signal,
    timeoutError: () => localTimeout(settings.timeoutMs),
    abortError: () => abortError(signal!, call),
  });
  return response;
}

/**
 * Waits until the client has loaded its credentials and built its gRPC stub, within the
 * deadline and the signal. The Google client does this on its first call, and when it fails,
 * every call method of @google-cloud/kms 5.7.0 rethrows the failure from a detached promise
 * (`this.initialize().catch((err) => { throw err; })`), an unhandled rejection that ends the
 * process. Waiting for `initialize()` first, and making no call when it fails, turns that into
 * a coded error. A client without `initialize` is used as it is.
 *
 * @example
 * await initializeClient(settings, client);
 */
export async function initializeClient(
  settings: CallSettings,
  client: { initialize?(): Promise<unknown> },
): Promise<void> {
  const { signal, timeoutMs } = settings;
  if (typeof client.initialize !== 'function') return;
  if (signal?.aborted) throw setupAborted(signal);

  try {
    await raceDeadline(
      Promise.resolve().then(() => client.initialize!()),
      {
        guardMs: timeoutMs,
        signal,
        timeoutError: () => setupTimedOut(timeoutMs),
        abortError: () => setupAborted(signal!),
      },
    );
  } catch (error) {
    throw isKmsJwtError(error) ? error : credentialsError(error);
  }
}

/** The deadline and the signal that end a {@link raceDeadline} wait early, with their errors. */
interface DeadlineGuard {
  guardMs: number;
  signal: AbortSignal | undefined;
  timeoutError(): Error;
  abortError(): Error;
}

/** Settles with `pending`, or rejects when the guard's deadline passes or its signal fires. */
async function raceDeadline<T>(pending: Promise<T>, guard: DeadlineGuard): Promise<T> {
  // The race may abandon this promise; a late rejection must not become an unhandled one.
  pending.catch(() => undefined);
  const { signal } = guard;

  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(guard.timeoutError()), guard.guardMs);
    onAbort = () => reject(guard.abortError());
    // NOTE: more than 10 calls in flight on one signal make Node print a
    // MaxListenersExceededWarning, although each listener is removed when its call ends.
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([pending, stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

function isRetryable<T>(error: unknown, call: KmsCall<T>): boolean {
  if (!call.idempotent || error instanceof KmsJwtError) return false;
  const code = grpcCode(error);
  if (code === grpcStatus.unavailable || code === grpcStatus.deadlineExceeded) return true;
  // This loop never cancels a call (it abandons one on abort or deadline instead), so CANCELLED
  // comes from the other side: grpc-js reports it when the server shuts down mid-call.
  if (code === grpcStatus.cancelled) return true;
  // Cloud KMS returns INVALID_ARGUMENT when digestCrc32c does not match the digest it received.
  // A corrupted request causes that, so Google's integrity guide says to retry a few times.
  const details = String((error as { details?: unknown }).details ?? '');
  return code === grpcStatus.invalidArgument && /crc32c/i.test(details);
}

async function backOff<T>(
  settings: CallSettings,
  call: KmsCall<T>,
  attempt: number,
  signal: AbortSignal | undefined,
  why: Record<string, unknown>,
): Promise<void> {
  // Exponential backoff with jitter between half and all of the step, as Google's retry
  // strategy page recommends.
  const step = Math.min(maxRetryDelayMs, firstRetryDelayMs * 2 ** (attempt - 1));
  const delayMs = Math.round(step / 2 + (Math.random() * step) / 2);
  emitEvent(settings.events, {
    type: 'retry',
    backend: 'gcp-kms',
    operation: call.operation,
    resource: call.resource,
    attempt,
    delayMs,
    ...why,
  });
  await sleep(delayMs, signal, call);
}

function sleep<T>(ms: number, signal: AbortSignal | undefined, call: KmsCall<T>): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal!, call));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function combineSignals(a?: AbortSignal, b?: AbortSignal): AbortSignal | undefined {
  if (!a) return b;
  if (!b) return a;
  return AbortSignal.any([a, b]);
}

function assertNotAborted<T>(signal: AbortSignal | undefined, call: KmsCall<T>): void {
  if (signal?.aborted) throw abortError(signal, call);
}

function abortError<T>(signal: AbortSignal, call: KmsCall<T>): KmsJwtError {
  return new KmsJwtError(
    'ERR_GCP_KMS_ABORTED',
    `Cloud KMS ${call.operation} on ${shortenForMessage(call.resource)} was aborted by the ` +
      "caller's signal.",
    { cause: signal.reason, details: { operation: call.operation, resource: call.resource } },
  );
}

function setupAborted(signal: AbortSignal): KmsJwtError {
  return new KmsJwtError(
    'ERR_GCP_KMS_ABORTED',
    "Cloud KMS client set-up (the credential lookup) was aborted by the caller's signal.",
    { cause: signal.reason, details: { operation: 'initialize' } },
  );
}

function setupTimedOut(timeoutMs: number): KmsJwtError {
  return new BackendError(
    'ERR_GCP_KMS_TIMEOUT',
    `Cloud KMS client set-up did not finish within ${timeoutMs} ms: the Google client was still ` +
      'looking up credentials, which can include querying the GCE metadata server. Retry ' +
      'later, raise timeoutMs, or pass a KeyManagementServiceClient that has credentials.',
    { details: { operation: 'initialize', timeoutMs } },
  );
}

/** Builds the local deadline's error, with gRPC's DEADLINE_EXCEEDED code so it maps alike. */
function localTimeout(timeoutMs: number): Error {
  return Object.assign(new Error(`no response within ${timeoutMs} ms`), {
    code: grpcStatus.deadlineExceeded,
  });
}

function integrityError<T>(call: KmsCall<T>, problem: IntegrityProblem, attempts: number) {
  return new KmsJwtError(
    'ERR_GCP_KMS_INTEGRITY',
    `Cloud KMS ${call.operation} on ${shortenForMessage(call.resource)} failed its integrity ` +
      `check ${attempts} ` +
      `time(s): ${problem.problem} Each response was discarded. The data was corrupted between ` +
      'this process and Cloud KMS, or the endpoint is not Cloud KMS; retry later, and report ' +
      'it to Google Cloud support if it persists.',
    {
      details: {
        operation: call.operation,
        resource: call.resource,
        check: problem.check,
        attempts,
      },
    },
  );
}
