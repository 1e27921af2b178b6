/**
 * Key material for the Cloud KMS emulator: real keys from node:crypto, ECDSA over a precomputed
 * digest with @noble/curves (node:crypto always hashes its input first), CRC32C, and the
 * unwrapping side of the ImportJob methods (RSAES-OAEP, then AES-KWP per RFC 5649).
 */
import { crc32c } from '@aws-crypto/crc32c';
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import {
  constants,
  createDecipheriv,
  createPrivateKey,
  generateKeyPair,
  generateKeyPairSync,
  privateDecrypt,
  type KeyObject,
} from 'node:crypto';
import { promisify } from 'node:util';

/** Algorithms the emulator can hold keys for. Only the EC ones can sign. */
export const keyAlgorithms = {
  EC_SIGN_P256_SHA256: { curve: 'prime256v1' },
  EC_SIGN_SECP256K1_SHA256: { curve: 'secp256k1' },
  EC_SIGN_P384_SHA384: { curve: 'secp384r1' },
  RSA_SIGN_PKCS1_2048_SHA256: { modulusLength: 2048 },
} as const;

export type KeyAlgorithm = keyof typeof keyAlgorithms;

/** ImportJob methods the emulator accepts, with their RSA size and whether AES-KWP follows. */
export const importMethods: Record<string, { modulusBits: number; aesKwp: boolean }> = {
  RSA_OAEP_3072_SHA256_AES_256: { modulusBits: 3072, aesKwp: true },
  RSA_OAEP_4096_SHA256_AES_256: { modulusBits: 4096, aesKwp: true },
  RSA_OAEP_3072_SHA256: { modulusBits: 3072, aesKwp: false },
  RSA_OAEP_4096_SHA256: { modulusBits: 4096, aesKwp: false },
};

const kwpInitialValue = Buffer.from('a65959a6', 'hex');

/** Returns the CRC32C of `data` as a decimal string, the Int64Value form under `longs: String`. */
export function crc32cString(data: Uint8Array): string {
  return String(crc32c(data));
}

/** Generates a private key for `algorithm`. */
export function generatePrivateKey(algorithm: KeyAlgorithm): KeyObject {
  const spec = keyAlgorithms[algorithm];
  if ('curve' in spec) return generateKeyPairSync('ec', { namedCurve: spec.curve }).privateKey;
  return generateKeyPairSync('rsa', { modulusLength: spec.modulusLength }).privateKey;
}

/** Generates the RSA key pair of an ImportJob. */
export async function generateWrappingKey(modulusBits: number): Promise<KeyObject> {
  const { privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: modulusBits });
  return privateKey;
}

/** Signs a digest as given, with no further hashing, and returns the DER signature. */
export function signDigest(privateKey: KeyObject, algorithm: string, digest: Uint8Array): Buffer {
  const d = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
  const curve = algorithm === 'EC_SIGN_SECP256K1_SHA256' ? secp256k1 : p256;
  const der = curve.sign(digest, d, { prehash: false, format: 'der' });
  d.fill(0);
  return Buffer.from(der);
}

/**
 * Unwraps a wrapped key for `method` with the job's RSA private key and returns the PKCS#8 key.
 * Throws with the reason Cloud KMS would put in importFailureReason.
 */
export function unwrapImportedKey(wrapped: Buffer, method: string, jobKey: KeyObject): KeyObject {
  const spec = importMethods[method]!;
  const rsaLength = spec.modulusBits / 8;
  const oaep = { key: jobKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' };
  if (!spec.aesKwp) return parsePkcs8(privateDecrypt(oaep, wrapped));

  if (wrapped.length <= rsaLength) throw new Error('wrapped key is shorter than the RSA block');
  const aesKey = privateDecrypt(oaep, wrapped.subarray(0, rsaLength));
  if (aesKey.length !== 32) throw new Error('the unwrapped AES key is not 256 bits');
  const decipher = createDecipheriv('id-aes256-wrap-pad', aesKey, kwpInitialValue);
  const pkcs8 = Buffer.concat([decipher.update(wrapped.subarray(rsaLength)), decipher.final()]);
  return parsePkcs8(pkcs8);
}

function parsePkcs8(der: Buffer): KeyObject {
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

/** Returns the curve or RSA name of a key, as compared against an algorithm. */
export function describeKey(key: KeyObject): string {
  return key.asymmetricKeyDetails?.namedCurve ?? `rsa-${key.asymmetricKeyDetails?.modulusLength}`;
}

/** True when `key` fits `algorithm`. */
export function keyFitsAlgorithm(key: KeyObject, algorithm: string): boolean {
  const spec = keyAlgorithms[algorithm as KeyAlgorithm];
  if (!spec) return false;
  if ('curve' in spec) return key.asymmetricKeyDetails?.namedCurve === spec.curve;
  return key.asymmetricKeyDetails?.modulusLength === spec.modulusLength;
}
