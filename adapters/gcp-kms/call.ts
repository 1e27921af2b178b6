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
import { KmsJwtError } from '../../src/errors.js';
import { emitEvent, type RuntimeOptions } from '../../src/signer.js';
import type { GcpKmsCallOptions, GcpKmsReply } from './client.js';
import { grpcCode, grpcStatus, mapKmsError, type KmsOperation } from './errors.js';

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
  // The race may abandon this promise; a late rejection must not become an unhandled one.
  pending.catch(() => undefined);

  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const guard = new Promise<never>((_, reject) => {
    const guardMs = Math.min(settings.timeoutMs + 250, maxTimerMs);
    timer = setTimeout(() => reject(localTimeout(settings.timeoutMs)), guardMs);
    onAbort = () => reject(abortError(signal!, call));
    // NOTE: more than 10 calls in flight on one signal make Node print a
    // MaxListenersExceededWarning, although each listener is removed when its call ends.
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    const [response] = await Promise.race([pending, guard]);
    return response;
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
    `Cloud KMS ${call.operation} on ${call.resource} was aborted by the caller's signal.`,
    { cause: signal.reason, details: { operation: call.operation, resource: call.resource } },
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
    `Cloud KMS ${call.operation} on ${call.resource} failed its integrity check ${attempts} ` +
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
