/**
 * The PKCS#11 signer: ES256 through any PKCS#11 module (SoftHSM2, YubiHSM 2, AWS CloudHSM,
 * Thales Luna, Entrust nShield...). It hashes the JWS signing input once with SHA-256 in Node and
 * asks the token for CKM_ECDSA over the 32-byte digest. PKCS#11 v2.40 §2.3.1 defines that
 * signature as r || s with each half as long as the order, which for P-256 is already the
 * 64-byte JOSE form of RFC 7518 §3.4, so the length is checked and nothing is converted.
 */
import { createPublicKey, randomBytes, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { BackendError, KmsJwtError, SignatureError } from '../../src/errors.js';
import {
  emitEvent,
  sha256,
  type GetPublicKeyOptions,
  type Signer,
  type SignOptions,
} from '../../src/signer.js';
import {
  CKF_SERIAL_SESSION,
  CKM_ECDSA,
  CKR_KEY_HANDLE_INVALID,
  CKR_OBJECT_HANDLE_INVALID,
  CKR_OPERATION_ACTIVE,
  CKR_SESSION_CLOSED,
  CKR_SESSION_HANDLE_INVALID,
  CKR_USER_NOT_LOGGED_IN,
  returnValueName,
  returnValueOf,
  type Handle,
} from './binding.js';
import {
  assertUriSelectsObject,
  connectToken,
  type Pkcs11ConnectOptions,
  type TokenConnection,
} from './connect.js';
import { fixFor, operationFailed } from './errors.js';
import { loginAgain } from './module.js';
import { findPrivateKey, readPublicKeyObject, type FoundKey } from './objects.js';
import { SessionPool } from './session-pool.js';
import { encodeUriId, formatPathAttributes, parsePkcs11Uri, type Pkcs11Uri } from './uri.js';

/** Options for {@link createPkcs11Signer}. Module and PIN sources are described in config.ts. */
export interface Pkcs11SignerOptions extends Pkcs11ConnectOptions {
  /**
   * The public key, for tokens that hold no public-key object: a KeyObject, or a PEM SPKI public
   * key or X.509 certificate. When the token has a public-key object too, both must agree.
   */
  publicKey?: KeyObject | string | Buffer;
  /** Sessions opened at most, which is also the number of signs in flight. Default 4. */
  maxSessions?: number;
}

const defaultMaxSessions = 4;
const defaultTimeoutMs = 10_000;
const maxTimeoutMs = 2 ** 31 - 1;
const signatureLength = 64;
// Larger than any ECDSA signature on P-256 in either form, so a module that breaks the raw r||s
// rule shows up as a wrong length instead of CKR_BUFFER_TOO_SMALL, which leaves the operation open.
const signatureBufferLength = 128;

// Return values after which a fresh session, a new login or a new key handle may succeed.
const recoverableReturnValues = new Set([
  CKR_SESSION_HANDLE_INVALID,
  CKR_SESSION_CLOSED,
  CKR_USER_NOT_LOGGED_IN,
  CKR_OBJECT_HANDLE_INVALID,
  CKR_KEY_HANDLE_INVALID,
  CKR_OPERATION_ACTIVE,
]);

/** True for a failure, direct or wrapped by a coded error, that a recovery may cure. */
function isRecoverable(error: unknown): boolean {
  const value = returnValueOf(causeOf(error));
  return value !== undefined && recoverableReturnValues.has(value);
}

/** Returns the binding's error behind an `ERR_PKCS11_OPERATION_FAILED`, or the error itself. */
function causeOf(error: unknown): unknown {
  if (error instanceof KmsJwtError && error.code === 'ERR_PKCS11_OPERATION_FAILED') {
    return error.cause;
  }
  return error;
}

/**
 * A PKCS#11 signer. `close()` returns its sessions, and finalises the module after its last user.
 */
export type Pkcs11Signer = Signer & { close(): Promise<void> };

/**
 * Creates an ES256 signer for the private key that a `pkcs11:` URI names.
 *
 * @example
 * const signer = await createPkcs11Signer(
 *   'pkcs11:token=apple;object=siwa;type=private?pin-source=file:/run/secrets/hsm-pin',
 *   { modulePath: '/usr/lib/softhsm/libsofthsm2.so' },
 * );
 * const token = await signJwt(signer, { header: { alg: 'ES256', kid: 'ABC123DEFG' }, payload });
 * await signer.close();
 */
export async function createPkcs11Signer(
  uri: string,
  options: Pkcs11SignerOptions = {},
): Promise<Pkcs11Signer> {
  assertSignerOptions(options);
  const parsed = parsePkcs11Uri(uri);
  assertUriSelectsObject(parsed);
  assertPrivateType(parsed);
  const suppliedKey = options.publicKey === undefined ? undefined : toPublicKey(options.publicKey);

  const connection = await connectToken(parsed, options);
  try {
    return await buildSigner(connection, parsed, options, suppliedKey);
  } catch (error) {
    connection.release();
    throw error;
  }
}

async function buildSigner(
  connection: TokenConnection,
  uri: Pkcs11Uri,
  options: Pkcs11SignerOptions,
  suppliedKey: KeyObject | undefined,
): Promise<Pkcs11Signer> {
  const keyId = formatPathAttributes(uri);
  const pool = new SessionPool(
    sessionFactory(connection),
    options.maxSessions ?? defaultMaxSessions,
    keyId,
  );
  const state = new SignerState(connection, uri, options, pool, keyId);

  try {
    await state.findKey();
    await state.loadPublicKey(suppliedKey);
  } catch (error) {
    await pool.close();
    throw error;
  }
  return state.toSigner();
}

function sessionFactory(connection: TokenConnection) {
  return {
    open(): Handle {
      try {
        return connection.binding.C_OpenSession(connection.token.slot, CKF_SERIAL_SESSION);
      } catch (error) {
        throw operationFailed('C_OpenSession', `token "${connection.token.label}"`, error);
      }
    },
    close(session: Handle): void {
      connection.binding.C_CloseSession(session);
    },
  };
}

/** The mutable part of one signer: the key handle, the cached public key and the pool. */
class SignerState {
  private key: FoundKey | undefined;
  private publicKey: KeyObject | undefined;
  private publicKeySupplied = false;
  private recoveries = 0;
  private recovering: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly connection: TokenConnection,
    private readonly uri: Pkcs11Uri,
    private readonly options: Pkcs11SignerOptions,
    private readonly pool: SessionPool,
    readonly keyId: string,
  ) {}

  toSigner(): Pkcs11Signer {
    return {
      keyId: this.keyId,
      sign: (signingInput, signOptions) => this.sign(signingInput, signOptions),
      getPublicKey: (getOptions) => this.getPublicKey(getOptions),
      close: () => this.close(),
    };
  }

  async findKey(): Promise<void> {
    const { binding, token, loggedIn } = this.connection;
    this.key = await this.withSession((session) =>
      findPrivateKey(binding, session, this.uri, token.label, loggedIn),
    );
  }

  async loadPublicKey(suppliedKey: KeyObject | undefined): Promise<void> {
    const fromToken = await this.readPublicKeyObject();
    if (suppliedKey && fromToken && !suppliedKey.equals(fromToken)) {
      throw new KmsJwtError(
        'ERR_PKCS11_PUBLIC_KEY_MISMATCH',
        `The publicKey option differs from the public-key object on the token for ${this.keyId}. ` +
          'Drop the option, or fix the object on the token.',
        { details: { keyId: this.keyId } },
      );
    }
    this.publicKey = suppliedKey ?? fromToken;
    this.publicKeySupplied = suppliedKey !== undefined;
  }

  /**
   * Reads the token's public-key object and proves with one test signature that it belongs to
   * the private key. A stale object left by an earlier key with the same ID would otherwise
   * make `getPublicKey` return a key that never signed.
   */
  private async readPublicKeyObject(): Promise<KeyObject | undefined> {
    const key = this.requireKey();
    const publicKey = await this.withSession((session) =>
      readPublicKeyObject(this.connection.binding, session, key),
    );
    if (publicKey) await this.assertSignsFor(publicKey, key);
    return publicKey;
  }

  private async assertSignsFor(publicKey: KeyObject, key: FoundKey): Promise<void> {
    const input = randomBytes(32);
    const signature = await this.signDigest(sha256(input), undefined);
    const format = { key: publicKey, dsaEncoding: 'ieee-p1363' as const };
    if (verify('sha256', input, format, signature)) return;

    const selector = key.id.length > 0 ? `id=${encodeUriId(key.id)}` : `label "${key.label}"`;
    throw new KmsJwtError(
      'ERR_PKCS11_PUBLIC_KEY_MISMATCH',
      `The public-key object with ${selector} on token "${this.connection.token.label}" does ` +
        `not belong to the private key of ${this.keyId}: a test signature does not verify ` +
        'against it. Remove the stale public-key object, or replace it with the right one.',
      { details: { keyId: this.keyId } },
    );
  }

  async getPublicKey(options: GetPublicKeyOptions = {}): Promise<KeyObject> {
    this.assertOpen();
    throwIfAborted(options.signal, this.keyId);
    if (options.refresh && !this.publicKeySupplied) {
      this.publicKey = await this.withRecovery('reading the public key', () =>
        this.readPublicKeyObject(),
      );
    }
    if (this.publicKey) return this.publicKey;

    const key = this.requireKey();
    throw new KmsJwtError(
      'ERR_PKCS11_PUBLIC_KEY_MISSING',
      `Token "${this.connection.token.label}" holds no public-key object with ` +
        `${key.id.length > 0 ? `id=${encodeUriId(key.id)}` : `label "${key.label}"`}, so the ` +
        'signature cannot be checked. Pass the publicKey option (a PEM public key or certificate), ' +
        'or write the public key to the token with the same label and id ' +
        '(pkcs11-tool --write-object key.pub.der --type pubkey).',
      { details: { keyId: this.keyId } },
    );
  }

  async sign(signingInput: Uint8Array, options: SignOptions = {}): Promise<Uint8Array> {
    this.assertOpen();
    if (!(signingInput instanceof Uint8Array)) {
      throw new TypeError('sign expects the JWS signing input as a Uint8Array.');
    }
    throwIfAborted(options.signal, this.keyId);

    const digest = sha256(signingInput);
    return this.withRecovery('signing', () => this.signDigest(digest, options.signal));
  }

  /**
   * Runs `operation`, and once more after a recovery when the token reports a closed session,
   * a lost login or a stale handle. Calls that start while a recovery runs wait for it, so they
   * use the new key handle.
   */
  private async withRecovery<T>(what: string, operation: () => Promise<T>): Promise<T> {
    if (this.recovering) await this.recovering.catch(() => undefined);
    const generation = this.recoveries;
    try {
      return await operation();
    } catch (error) {
      if (!isRecoverable(error)) throw this.operationError(what, error);
      emitEvent(this.options, {
        type: 'retry',
        operation: what === 'signing' ? 'C_Sign' : 'C_FindObjects',
        attempt: 1,
        reason: returnValueName(causeOf(error)),
        keyId: this.keyId,
      });
    }

    try {
      await this.recover(generation);
      return await operation();
    } catch (second) {
      throw this.operationError(what, second);
    }
  }

  private async signDigest(digest: Buffer, signal: AbortSignal | undefined): Promise<Uint8Array> {
    // One deadline covers the wait for a session too: behind a module that stopped responding,
    // the sessions never come back, and a sign waiting in line would otherwise wait forever.
    const timeoutMs = this.timeoutMs();
    const started = Date.now();
    const session = this.pool.tryAcquire() ?? (await this.waitForSession(timeoutMs, signal));
    const key = this.requireKey();
    const { binding } = this.connection;

    let pending: Promise<Buffer>;
    try {
      binding.C_SignInit(session, { mechanism: CKM_ECDSA }, key.handle);
      pending = binding.C_SignAsync(session, digest, Buffer.alloc(signatureBufferLength));
    } catch (error) {
      this.pool.discard(session);
      throw error;
    }
    // The session goes back only after the module is done with it, even if the caller gave up.
    pending.then(
      () => this.pool.release(session),
      () => this.pool.discard(session),
    );
    const remainingMs = Math.max(1, timeoutMs - (Date.now() - started));
    const deadline = { delayMs: remainingMs, timeoutMs, keyId: this.keyId };
    const signature = await withDeadline(pending, deadline, signal);
    return this.assertLength(signature);
  }

  /** Waits in the pool's line, for at most `timeoutMs`, when every session is in use. */
  private async waitForSession(timeoutMs: number, signal: AbortSignal | undefined) {
    const deadline = startDeadline(timeoutMs, signal, this.keyId);
    try {
      return await this.pool.acquire(deadline.signal);
    } catch (error) {
      throw wrapAbort(error, signal, this.keyId);
    } finally {
      deadline.clear();
    }
  }

  private assertLength(signature: Buffer): Uint8Array {
    if (signature.length === signatureLength) return new Uint8Array(signature);
    throw new SignatureError(
      'ERR_PKCS11_SIGNATURE_LENGTH',
      `The PKCS#11 module returned a CKM_ECDSA signature of ${signature.length} bytes for ` +
        `${this.keyId}, but P-256 needs exactly 64 bytes of r || s (PKCS#11 v2.40 §2.3.1). ` +
        'The module breaks the standard; report it to its vendor.',
      { details: { keyId: this.keyId, length: signature.length } },
    );
  }

  /**
   * Opens the way for a second attempt: retires the pool's sessions, logs in again with the
   * remembered PIN and finds the key handle again. Every call that failed before the recovery
   * started shares that one recovery.
   */
  private recover(generation: number): Promise<void> {
    // A recovery started after this call began: wait for it, or retry at once if it is done.
    if (generation !== this.recoveries) return this.recovering ?? Promise.resolve();

    this.recoveries += 1;
    const running = this.runRecovery();
    const settle = () => {
      if (this.recovering === running) this.recovering = undefined;
    };
    running.then(settle, settle);
    this.recovering = running;
    return running;
  }

  private async runRecovery(): Promise<void> {
    this.pool.retireAll();
    loginAgain(this.connection.module, this.connection.token);
    await this.findKey();
  }

  private operationError(what: string, error: unknown): unknown {
    if (error instanceof KmsJwtError || returnValueOf(error) === undefined) return error;
    const name = returnValueName(error);
    const code = what === 'signing' ? 'ERR_PKCS11_SIGN_FAILED' : 'ERR_PKCS11_OPERATION_FAILED';
    return new BackendError(
      code,
      `PKCS#11 ${what} with ${this.keyId} failed: ${name}. ${fixFor(error)}`,
      { cause: error, details: { operation: what, keyId: this.keyId, returnValue: name } },
    );
  }

  private async withSession<T>(run: (session: Handle) => T): Promise<T> {
    const session = await this.pool.acquire();
    try {
      const result = run(session);
      this.pool.release(session);
      return result;
    } catch (error) {
      this.pool.discard(session);
      throw error;
    }
  }

  close(): Promise<void> {
    this.closing ??= this.pool.close().finally(() => this.connection.release());
    return this.closing;
  }

  private timeoutMs(): number {
    return this.options.timeoutMs ?? defaultTimeoutMs;
  }

  private requireKey(): FoundKey {
    if (!this.key) throw new TypeError('The PKCS#11 key has not been found yet.');
    return this.key;
  }

  private assertOpen(): void {
    if (!this.closing) return;
    throw new KmsJwtError(
      'ERR_PKCS11_SIGNER_CLOSED',
      `The PKCS#11 signer for ${this.keyId} is closed. Create a new signer.`,
      { details: { keyId: this.keyId } },
    );
  }
}

function throwIfAborted(signal: AbortSignal | undefined, keyId: string): void {
  if (signal?.aborted) throw wrapAbort(signal.reason, signal, keyId);
}

function wrapAbort(error: unknown, signal: AbortSignal | undefined, keyId: string): unknown {
  if (!signal?.aborted || error !== signal.reason) return error;
  return new BackendError('ERR_PKCS11_ABORTED', `Signing with ${keyId} was aborted.`, {
    cause: error,
    details: { keyId },
  });
}

/**
 * Starts the deadline of one sign: an AbortSignal that aborts with `ERR_PKCS11_TIMEOUT` after
 * `timeoutMs`, or with the caller's reason when the caller's signal aborts first.
 */
function startDeadline(
  timeoutMs: number,
  signal: AbortSignal | undefined,
  keyId: string,
): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(timeoutError(keyId, timeoutMs)), timeoutMs);
  const onAbort = () => controller.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });

  return {
    signal: controller.signal,
    clear() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    },
  };
}

function timeoutError(keyId: string, timeoutMs: number): BackendError {
  return new BackendError(
    'ERR_PKCS11_TIMEOUT',
    `The PKCS#11 module did not finish signing with ${keyId} within ${timeoutMs} ms. ` +
      'Check the HSM connection, or raise timeoutMs.',
    { details: { keyId, timeoutMs } },
  );
}

/**
 * Settles with `pending`, or rejects when `deadline.delayMs` passes (with `ERR_PKCS11_TIMEOUT`
 * naming the whole `timeoutMs`) or the caller's signal aborts first.
 */
function withDeadline<T>(
  pending: Promise<T>,
  deadline: { delayMs: number; timeoutMs: number; keyId: string },
  signal: AbortSignal | undefined,
): Promise<T> {
  const { delayMs, timeoutMs, keyId } = deadline;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(timeoutError(keyId, timeoutMs));
    }, delayMs);
    const onAbort = () => {
      cleanup();
      reject(wrapAbort(signal?.reason, signal, keyId));
    };
    const cleanup = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };

    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    pending.then(
      (value) => {
        cleanup();
        resolve(value);
      },
      (error: unknown) => {
        cleanup();
        reject(error);
      },
    );
  });
}

function assertPrivateType(uri: Pkcs11Uri): void {
  if (uri.type === undefined || uri.type === 'private') return;
  throw new KmsJwtError(
    'ERR_PKCS11_KEY_NOT_FOUND',
    `${formatPathAttributes(uri)} names ${uri.type} objects, but signing needs a private key. ` +
      'Use type=private or leave type out.',
    { details: { type: uri.type } },
  );
}

function assertSignerOptions(options: Pkcs11SignerOptions): void {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('createPkcs11Signer options must be an object.');
  }
  for (const name of ['modulePath', 'pin', 'pinEnv'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'string') {
      throw new TypeError(`The ${name} option must be a string.`);
    }
  }
  const { maxSessions, timeoutMs } = options;
  if (
    maxSessions !== undefined &&
    (!Number.isInteger(maxSessions) || maxSessions < 1 || maxSessions > 256)
  ) {
    throw new TypeError('The maxSessions option must be an integer from 1 to 256.');
  }
  // Node.js timers hold at most 2^31 - 1 ms, and a larger delay fires after 1 ms.
  if (
    timeoutMs !== undefined &&
    (!Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > maxTimeoutMs)
  ) {
    throw new TypeError(
      `The timeoutMs option must be a positive number of milliseconds, at most ${maxTimeoutMs}.`,
    );
  }
}

/** Reads the caller's public key: a KeyObject, or PEM text of an SPKI key or a certificate. */
function toPublicKey(value: KeyObject | string | Buffer): KeyObject {
  let key: KeyObject;
  try {
    if (typeof value === 'object' && !Buffer.isBuffer(value)) {
      key = value.type === 'private' ? createPublicKey(value) : value;
    } else if (value.toString().includes('-----BEGIN CERTIFICATE-----')) {
      key = new X509Certificate(value).publicKey;
    } else {
      key = createPublicKey(value);
    }
  } catch (error) {
    if (error instanceof TypeError && typeof value !== 'string' && !Buffer.isBuffer(value))
      throw error;
    throw new KmsJwtError(
      'ERR_PKCS11_PUBLIC_KEY_INVALID',
      'The publicKey option is neither a PEM public key nor a PEM X.509 certificate.',
      { cause: error },
    );
  }

  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType === 'ec' && curve === 'prime256v1') return key;
  throw new KmsJwtError(
    'ERR_PKCS11_PUBLIC_KEY_INVALID',
    `The publicKey option is ${key.asymmetricKeyType === 'ec' ? `EC ${curve}` : key.asymmetricKeyType}, but ES256 needs P-256.`,
    { details: { found: key.asymmetricKeyType } },
  );
}
