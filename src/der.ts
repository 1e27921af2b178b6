/**
 * Strict conversion between ECDSA P-256 signatures in ASN.1 DER (X.690, as SEC 1 and RFC 3279
 * define `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`) and the 64-byte JOSE form of
 * RFC 7518 §3.4 (r || s, each left-padded to 32 bytes).
 *
 * The decoder is written by hand instead of using a general ASN.1 parser, because it sits on the
 * signing hot path and in the CLI's start-up. It accepts DER only, never BER: one SEQUENCE of two
 * INTEGERs, definite short-form lengths, minimal positive integers, no trailing bytes, and each
 * integer in the range 1 <= value < n.
 */
import { SignatureError } from './errors.js';

/** Byte length of one P-256 scalar, and half of a JOSE signature. */
const scalarLength = 32;

/** The order n of the P-256 base point (FIPS 186-4, D.1.2.3). */
const curveOrder = Buffer.from(
  'ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551',
  'hex',
);

const tagSequence = 0x30;
const tagInteger = 0x02;

/**
 * Converts a DER `Ecdsa-Sig-Value` to the 64-byte JOSE signature, rejecting anything that is
 * not strict DER for P-256 with `ERR_SIGNATURE_DER_INVALID`.
 *
 * @example
 * const jose = derToJose(derSignatureFromKms); // jose.length === 64
 */
export function derToJose(der: Uint8Array): Buffer {
  if (!(der instanceof Uint8Array)) throw new TypeError('derToJose expects a Uint8Array.');
  if (der.length < 8) throw derError(`it is ${der.length} bytes, shorter than any valid one`);
  if (der[0] !== tagSequence) throw derError(`it starts with tag 0x${hex(der[0])}, not SEQUENCE`);

  const contentLength = readShortLength(der, 1, 'SEQUENCE');
  if (2 + contentLength !== der.length) {
    const problem = 2 + contentLength < der.length ? 'trailing bytes follow' : 'it is truncated';
    throw derError(`SEQUENCE length is ${contentLength} but ${problem}`);
  }

  // allocUnsafe takes the bytes from Node's shared pool, and readInteger writes all 64 of them.
  const jose = Buffer.allocUnsafe(2 * scalarLength);
  const afterR = readInteger(der, 2, jose, 0, 'r');
  const afterS = readInteger(der, afterR, jose, scalarLength, 's');
  if (afterS !== der.length) throw derError('bytes follow the second INTEGER inside the SEQUENCE');
  return jose;
}

/**
 * Converts a 64-byte JOSE signature to minimal DER, rejecting other lengths and out-of-range
 * scalars with `ERR_SIGNATURE_JOSE_INVALID`.
 *
 * @example
 * const der = joseToDer(joseSignature); // for APIs that expect X9.62 DER, such as OpenSSL
 */
export function joseToDer(jose: Uint8Array): Buffer {
  if (!(jose instanceof Uint8Array)) throw new TypeError('joseToDer expects a Uint8Array.');
  if (jose.length !== 2 * scalarLength) {
    throw joseError(`it is ${jose.length} bytes, but ES256 needs exactly 64 (RFC 7518 §3.4)`);
  }

  const rStart = firstSignificantByte(jose, 0, 'r');
  const sStart = firstSignificantByte(jose, scalarLength, 's');
  const rLength = integerLength(jose, rStart, scalarLength);
  const sLength = integerLength(jose, sStart, 2 * scalarLength);
  const contentLength = 2 + rLength + 2 + sLength;

  const der = Buffer.allocUnsafe(2 + contentLength);
  der[0] = tagSequence;
  der[1] = contentLength;
  const afterR = writeInteger(der, 2, jose, rStart, scalarLength, rLength);
  writeInteger(der, afterR, jose, sStart, 2 * scalarLength, sLength);
  return der;
}

/** Reads a definite short-form length at `offset`. P-256 signatures never need the long form. */
function readShortLength(der: Uint8Array, offset: number, what: string): number {
  const first = der[offset];
  if (first === undefined) throw derError(`it is truncated inside the ${what} header`);
  if (first === 0x80) throw derError(`${what} uses the indefinite length, which DER forbids`);
  if (first > 0x80) {
    // Content of at most 70 bytes fits the short form, so X.690 §10.1 forbids the long form.
    throw derError(`${what} uses a long-form length where DER requires the short form`);
  }
  return first;
}

/**
 * Reads one INTEGER at `offset`, writes it left-padded into the 32 bytes of `out` at
 * `outOffset`, and returns the next offset. Plain loops over the bytes keep this free of
 * per-call views and allocations, because it runs for every signature a KMS returns.
 */
function readInteger(
  der: Uint8Array,
  offset: number,
  out: Buffer,
  outOffset: number,
  name: 'r' | 's',
): number {
  if (der[offset] !== tagInteger) {
    const found = der[offset] === undefined ? 'nothing' : `tag 0x${hex(der[offset])}`;
    throw derError(`expected INTEGER ${name} but found ${found}`);
  }

  const length = readShortLength(der, offset + 1, `INTEGER ${name}`);
  const start = offset + 2;
  const end = start + length;
  if (length === 0) throw derError(`INTEGER ${name} is empty`);
  if (end > der.length) throw derError(`INTEGER ${name} runs past the end of the signature`);

  const leading = der[start]!;
  if (leading & 0x80) throw derError(`INTEGER ${name} is negative`);
  if (leading === 0 && length > 1 && !(der[start + 1]! & 0x80)) {
    throw derError(`INTEGER ${name} has a superfluous leading zero byte (X.690 §8.3.2)`);
  }

  const valueStart = leading === 0 && length > 1 ? start + 1 : start;
  const valueLength = end - valueStart;
  if (valueLength > scalarLength) throw derError(`INTEGER ${name} is longer than 32 bytes`);
  // A minimal INTEGER is zero only as the single byte 0x00, so this one test finds zero.
  if (length === 1 && leading === 0) throw derError(`${name} is zero`);
  if (valueLength === scalarLength && !isBelowOrder(der, valueStart)) {
    throw derError(`${name} is not less than the P-256 group order n`);
  }

  const padding = scalarLength - valueLength;
  for (let i = 0; i < padding; i++) out[outOffset + i] = 0;
  for (let i = 0; i < valueLength; i++) out[outOffset + padding + i] = der[valueStart + i]!;
  return end;
}

/**
 * Returns the index of the first non-zero byte of the 32-byte scalar at `offset` in `jose`,
 * after asserting 1 <= value < n.
 */
function firstSignificantByte(jose: Uint8Array, offset: number, name: 'r' | 's'): number {
  let first = offset;
  const end = offset + scalarLength;
  while (first < end && jose[first] === 0) first++;
  if (first === end) throw joseError(`${name} is zero`);
  if (first === offset && !isBelowOrder(jose, offset)) {
    throw joseError(`${name} is not less than the P-256 group order n`);
  }
  return first;
}

/** Returns the DER content length of the scalar bytes `[start, end)`: one more for a high bit. */
function integerLength(jose: Uint8Array, start: number, end: number): number {
  return end - start + (jose[start]! & 0x80 ? 1 : 0);
}

/** Writes one INTEGER of content length `length` at `offset`, and returns the next offset. */
function writeInteger(
  der: Buffer,
  offset: number,
  jose: Uint8Array,
  start: number,
  end: number,
  length: number,
): number {
  der[offset] = tagInteger;
  der[offset + 1] = length;
  let next = offset + 2;
  if (length > end - start) der[next++] = 0;
  for (let i = start; i < end; i++) der[next++] = jose[i]!;
  return next;
}

/** Returns true when the 32 bytes at `offset` are, big-endian, less than the group order n. */
function isBelowOrder(bytes: Uint8Array, offset: number): boolean {
  for (let i = 0; i < scalarLength; i++) {
    const byte = bytes[offset + i]!;
    const limit = curveOrder[i]!;
    if (byte !== limit) return byte < limit;
  }
  return false;
}

function derError(problem: string): SignatureError {
  return new SignatureError(
    'ERR_SIGNATURE_DER_INVALID',
    `The DER ECDSA signature is invalid: ${problem}. A P-256 signature in DER must be a ` +
      'SEQUENCE of two minimal positive INTEGERs below the group order, with nothing after it.',
    { details: { problem } },
  );
}

function joseError(problem: string): SignatureError {
  return new SignatureError(
    'ERR_SIGNATURE_JOSE_INVALID',
    `The JOSE ES256 signature is invalid: ${problem}.`,
    { details: { problem } },
  );
}

function hex(byte: number | undefined): string {
  return (byte ?? 0).toString(16).padStart(2, '0');
}
