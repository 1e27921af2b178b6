/**
 * Compact JWS assembly for ES256 (RFC 7515 §7.1, RFC 7518 §3.4), with the package's single
 * verify-after-sign step: no token leaves `signJwt` until its signature has been checked
 * against the signer's public key.
 */
import { KeyObject, verify } from 'node:crypto';
import { base64urlEncode } from './base64url.js';
import { KeyError, KmsJwtError, SignatureError } from './errors.js';
import { isTrustedLocalSigner } from './internal.js';
import { emitEvent, type RuntimeOptions, type Signer } from './signer.js';

/** A JOSE header for ES256. Extra fields such as `kid`, `typ` or `id` are emitted as given. */
export interface JwsHeader {
  alg: 'ES256';
  [field: string]: unknown;
}

/** The header and claims of a token to sign. */
export interface JwtParts {
  header: JwsHeader;
  payload: Record<string, unknown>;
}

const signatureLength = 64;

/**
 * Signs a JWT as a compact JWS and verifies the signature before returning it. When the first
 * check fails, the public key is fetched once more with `refresh: true` and checked again.
 * A `signal` that is already aborted raises `ERR_SIGN_ABORTED` (the reason is `cause`) before
 * the signer is called. Later aborts come from the signer, as its adapter's coded error.
 *
 * @example
 * const token = await signJwt(signer, {
 *   header: { alg: 'ES256', kid: 'ABC123DEFG' },
 *   payload: { iss: 'DEF123GHIJ', iat: 1700000000 },
 * });
 */
export async function signJwt(
  signer: Signer,
  parts: JwtParts,
  options: RuntimeOptions = {},
): Promise<string> {
  assertSigner(signer);
  assertParts(parts);

  const headerJson = serialiseHeader(parts.header);
  const payloadJson = serialisePayload(parts.payload);
  const signingInput = `${base64urlEncode(headerJson)}.${base64urlEncode(payloadJson)}`;
  const inputBytes = Buffer.from(signingInput, 'ascii');
  assertNotAborted(options.signal, signer);
  const returned = await signer.sign(inputBytes, { signal: options.signal });
  assertSignatureShape(returned, signer);
  // Copy at once, so that a signer reusing its output buffer cannot change the bytes between the
  // check below and the encoding: the token carries exactly the signature that verified.
  const signature = Buffer.from(returned);

  if (!isTrustedLocalSigner(signer)) await verifyAfterSign(signer, inputBytes, signature, options);
  return `${signingInput}.${base64urlEncode(signature)}`;
}

function assertNotAborted(signal: AbortSignal | undefined, signer: Signer): void {
  if (signal?.aborted !== true) return;
  throw new KmsJwtError(
    'ERR_SIGN_ABORTED',
    `Signing with ${signer.keyId} was aborted by the caller's signal before the signer was ` +
      "called. The signal's reason is the cause.",
    { cause: signal.reason, details: { keyId: signer.keyId } },
  );
}

function assertSigner(signer: Signer): void {
  const candidate = signer as Partial<Signer> | null | undefined;
  if (typeof candidate?.sign === 'function' && typeof candidate.getPublicKey === 'function') return;
  throw new TypeError(
    'signJwt expects a Signer, with sign and getPublicKey. For a key path or reference, create ' +
      "one first: await createSigner('file:AuthKey_KEYID.p8').",
  );
}

function assertParts(parts: JwtParts): void {
  if (typeof parts !== 'object' || parts === null) {
    throw new TypeError('signJwt expects { header, payload }.');
  }
  if (typeof parts.payload !== 'object' || parts.payload === null || Array.isArray(parts.payload)) {
    throw new TypeError('signJwt expects payload to be a plain object of claims.');
  }
  if (parts.header?.alg !== 'ES256') {
    throw new TypeError(
      `signJwt signs ES256 only, but header.alg is ${JSON.stringify(parts.header?.alg)}.`,
    );
  }
}

/**
 * Serialises the header and checks the JSON itself, because `toJSON`, a getter or an array can
 * make the text differ from the fields that `assertParts` read (RFC 7515 §4.1.1 puts `alg` in
 * the serialised header).
 */
function serialiseHeader(header: JwsHeader): string {
  const json = toJson(header, 'header');
  const parsed: unknown = json === undefined ? undefined : JSON.parse(json);
  const alg = isJsonObject(parsed) ? parsed.alg : undefined;
  if (json === undefined || !isJsonObject(parsed) || alg !== 'ES256') {
    throw new TypeError(
      'signJwt expects the header to serialise to a JSON object with alg "ES256", but its JSON ' +
        `is ${describeJson(json, parsed)}. Pass a plain object without toJSON or getters.`,
    );
  }
  return json;
}

/** Serialises the claims, which RFC 7519 §4 defines as a JSON object. */
function serialisePayload(payload: Record<string, unknown>): string {
  const json = toJson(payload, 'payload');
  // JSON.stringify writes an object, and only an object, with a leading "{".
  if (json === undefined || !json.startsWith('{')) {
    throw new TypeError(
      'signJwt expects the payload to serialise to a JSON object of claims, but its JSON is ' +
        `${describeJson(json, json === undefined ? undefined : JSON.parse(json))}.`,
    );
  }
  return json;
}

function toJson(value: unknown, name: 'header' | 'payload'): string | undefined {
  try {
    return JSON.stringify(value);
  } catch (error) {
    // The cause, not the message, carries JSON.stringify's words, so no value is echoed here.
    throw new TypeError(
      `signJwt failed to serialise the ${name} as JSON, because it contains a BigInt, a cycle ` +
        'or a toJSON method that throws.',
      { cause: error },
    );
  }
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeJson(json: string | undefined, parsed: unknown): string {
  if (json === undefined) return 'undefined';
  if (Array.isArray(parsed)) return 'an array';
  if (isJsonObject(parsed)) return `an object with alg ${JSON.stringify(parsed.alg) ?? 'missing'}`;
  return `a ${parsed === null ? 'null' : typeof parsed}`;
}

function assertSignatureShape(signature: unknown, signer: Signer): asserts signature is Uint8Array {
  if (!(signature instanceof Uint8Array) || signature.length !== signatureLength) {
    const size = signature instanceof Uint8Array ? `${signature.length} bytes` : typeof signature;
    throw new SignatureError(
      'ERR_SIGNATURE_LENGTH',
      `Signer ${signer.keyId} returned a signature of ${size}, but ES256 needs exactly 64 bytes ` +
        '(r || s, RFC 7518 §3.4). A DER signature must go through derToJose first.',
      { details: { keyId: signer.keyId } },
    );
  }
}

async function verifyAfterSign(
  signer: Signer,
  signingInput: Buffer,
  signature: Uint8Array,
  options: RuntimeOptions,
): Promise<void> {
  // A cached key of another type or curve is treated like a stale key: it gets the one refresh,
  // and only the refreshed key must be P-256.
  const publicKey = await signer.getPublicKey({ signal: options.signal });
  if (isP256PublicKey(publicKey) && isValidSignature(publicKey, signingInput, signature, signer)) {
    return;
  }

  emitEvent(options, { type: 'refresh', reason: 'verify-failed', keyId: signer.keyId });
  const refreshed = await signer.getPublicKey({ refresh: true, signal: options.signal });
  if (isValidSignature(refreshed, signingInput, signature, signer)) return;

  throw new SignatureError(
    'ERR_SIGNATURE_VERIFY_FAILED',
    `The signature from ${signer.keyId} does not verify against its public key, even after ` +
      'fetching the key again. Likely causes: the reference names a different key than the one ' +
      'that signed, the backend hashed an already hashed input (send the digest with a ' +
      'digest-type flag), or the DER-to-JOSE conversion is wrong. No token was returned.',
    { details: { keyId: signer.keyId } },
  );
}

/**
 * Checks a 64-byte ES256 signature with node:crypto, after asserting that the key is P-256
 * (`ERR_KEY_NOT_P256` otherwise).
 *
 * @example
 * const [header, payload, signature] = token.split('.');
 * isValidSignature(publicKey, Buffer.from(`${header}.${payload}`), base64urlDecode(signature)!);
 */
export function isValidSignature(
  publicKey: KeyObject,
  signingInput: Uint8Array,
  signature: Uint8Array,
  signer?: Signer,
): boolean {
  assertP256PublicKey(publicKey, signer?.keyId ?? 'the signer');
  return verify('sha256', signingInput, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);
}

function isP256PublicKey(publicKey: KeyObject): boolean {
  return (
    publicKey instanceof KeyObject &&
    publicKey.asymmetricKeyType === 'ec' &&
    publicKey.asymmetricKeyDetails?.namedCurve === 'prime256v1'
  );
}

function assertP256PublicKey(publicKey: KeyObject, keyId: string): void {
  if (isP256PublicKey(publicKey)) return;
  const found = describePublicKey(publicKey);
  throw new KeyError(
    'ERR_KEY_NOT_P256',
    `The public key of ${keyId} is ${found}, but ES256 needs a P-256 (prime256v1) key.`,
    { details: { keyId, found } },
  );
}

function describePublicKey(publicKey: unknown): string {
  if (!(publicKey instanceof KeyObject)) {
    return `not a KeyObject but ${publicKey === null ? 'null' : typeof publicKey}`;
  }
  if (publicKey.asymmetricKeyType === 'ec') {
    return `EC ${publicKey.asymmetricKeyDetails?.namedCurve}`;
  }
  return publicKey.asymmetricKeyType ?? 'a secret key';
}
