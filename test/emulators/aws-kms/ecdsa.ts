/**
 * ECDSA over a precomputed digest (SEC 1 §4.1.3), which `node:crypto` cannot do because
 * `crypto.sign` always hashes its input first. The point multiplication k·G runs in OpenSSL
 * through `createECDH`, whose public key for private value k is exactly k·G, and the scalar
 * arithmetic modulo n runs in BigInt. The nonce k is random, not RFC 6979; this is a test
 * emulator, and a random k is what AWS KMS's signatures look like from outside too.
 */
import { createECDH, randomBytes, type KeyObject } from 'node:crypto';

interface CurveInfo {
  /** Curve name for createECDH. */
  ecdhName: string;
  /** Group order n. */
  order: bigint;
  /** Byte length of a field element and of a scalar. */
  size: number;
}

const curves: Record<string, CurveInfo> = {
  prime256v1: {
    ecdhName: 'prime256v1',
    order: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
    size: 32,
  },
  secp256k1: {
    ecdhName: 'secp256k1',
    order: 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n,
    size: 32,
  },
  secp384r1: {
    ecdhName: 'secp384r1',
    order:
      // eslint-disable-next-line max-len
      0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    size: 48,
  },
};

/** An ECDSA signature as two integers. */
export interface EcdsaSignature {
  r: bigint;
  s: bigint;
}

/**
 * Signs `digest` with the EC private key `privateKey`, truncating the digest to the bit length
 * of n as SEC 1 §4.1.3 step 5 says.
 *
 * @example
 * const { r, s } = signDigest(privateKey, createHash('sha256').update(message).digest());
 */
export function signDigest(privateKey: KeyObject, digest: Uint8Array): EcdsaSignature {
  const curve = curveOf(privateKey);
  const d = bytesToBigInt(Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url'));
  const e = digestToInteger(digest, curve.order);

  for (;;) {
    const k = randomScalar(curve);
    const ecdh = createECDH(curve.ecdhName);
    ecdh.setPrivateKey(bigIntToBytes(k, curve.size));
    const point = ecdh.getPublicKey(); // 0x04 || X || Y
    const r = bytesToBigInt(point.subarray(1, 1 + curve.size)) % curve.order;
    if (r === 0n) continue;
    const s = (modInverse(k, curve.order) * (e + r * d)) % curve.order;
    if (s === 0n) continue;
    return { r, s };
  }
}

/** Encodes a signature as DER `Ecdsa-Sig-Value` (X.690 minimal INTEGERs). */
export function signatureToDer({ r, s }: EcdsaSignature): Buffer {
  const body = Buffer.concat([derInteger(r), derInteger(s)]);
  return Buffer.concat([derLength(0x30, body.length), body]);
}

/** Encodes a signature as fixed-width r || s (IEEE P1363). */
export function signatureToP1363({ r, s }: EcdsaSignature, size: number): Buffer {
  return Buffer.concat([bigIntToBytes(r, size), bigIntToBytes(s, size)]);
}

function curveOf(privateKey: KeyObject): CurveInfo {
  const name = privateKey.asymmetricKeyDetails?.namedCurve;
  const curve = name === undefined ? undefined : curves[name];
  if (!curve) throw new Error(`The emulator cannot sign with curve ${String(name)}.`);
  return curve;
}

function digestToInteger(digest: Uint8Array, order: bigint): bigint {
  const orderBits = order.toString(2).length;
  const value = bytesToBigInt(digest);
  const excess = digest.length * 8 - orderBits;
  return excess > 0 ? value >> BigInt(excess) : value;
}

function randomScalar(curve: CurveInfo): bigint {
  for (;;) {
    const k = bytesToBigInt(randomBytes(curve.size));
    if (k > 0n && k < curve.order) return k;
  }
}

function modInverse(value: bigint, modulus: bigint): bigint {
  let [oldR, r] = [value % modulus, modulus];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const quotient = oldR / r;
    [oldR, r] = [r, oldR - quotient * r];
    [oldS, s] = [s, oldS - quotient * s];
  }
  return ((oldS % modulus) + modulus) % modulus;
}

function derInteger(value: bigint): Buffer {
  let bytes = Buffer.from(
    value
      .toString(16)
      .padStart(2, '0')
      .replace(/^(.(..)*)$/, '0$1'),
    'hex',
  );
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return Buffer.concat([derLength(0x02, bytes.length), bytes]);
}

function derLength(tag: number, length: number): Buffer {
  if (length < 0x80) return Buffer.from([tag, length]);
  return Buffer.from([tag, 0x81, length]);
}

function bytesToBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
}

function bigIntToBytes(value: bigint, size: number): Buffer {
  return Buffer.from(value.toString(16).padStart(size * 2, '0'), 'hex');
}
