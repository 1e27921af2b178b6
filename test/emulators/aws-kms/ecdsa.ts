/**
 * ECDSA over a precomputed digest for the AWS KMS emulator, with @noble/curves. `node:crypto`
 * cannot do this, because `crypto.sign` always hashes its input first, while AWS KMS signs the
 * 32 bytes of a `MessageType: DIGEST` request as given. Signatures are hedged (RFC 6979 with
 * extra random input) and not normalised to low S, so, like AWS KMS signatures, they differ on
 * every call and half of them have a high S.
 */
import { p256, p384 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import type { KeyObject } from 'node:crypto';

type Curve = typeof p256;

const curves: Record<string, Curve> = {
  prime256v1: p256,
  secp384r1: p384,
  secp256k1,
};

/** An ECDSA signature in the two encodings the emulator can return. */
export interface EcdsaSignature {
  /** DER `Ecdsa-Sig-Value` (X.690 minimal INTEGERs), as AWS KMS returns it. */
  der: Buffer;
  /** Fixed-width r || s (IEEE P1363), which AWS KMS never returns. */
  p1363: Buffer;
}

/**
 * Signs `digest` with the EC private key `privateKey`, without hashing it again. A digest longer
 * than the group order is truncated to its bit length, as SEC 1 §4.1.3 step 5 requires.
 *
 * @example
 * const { der } = signDigest(privateKey, createHash('sha256').update(message).digest());
 */
export function signDigest(privateKey: KeyObject, digest: Uint8Array): EcdsaSignature {
  const curve = curveOf(privateKey);
  const secretKey = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
  const options = { prehash: false, lowS: false, extraEntropy: true } as const;
  try {
    const compact = curve.sign(digest, secretKey, { ...options, format: 'compact' });
    const signature = curve.Signature.fromBytes(compact, 'compact');
    return { der: Buffer.from(signature.toBytes('der')), p1363: Buffer.from(compact) };
  } finally {
    secretKey.fill(0);
  }
}

function curveOf(privateKey: KeyObject): Curve {
  const name = privateKey.asymmetricKeyDetails?.namedCurve;
  const curve = name === undefined ? undefined : curves[name];
  if (!curve) throw new Error(`The emulator cannot sign with curve ${String(name)}.`);
  return curve;
}
