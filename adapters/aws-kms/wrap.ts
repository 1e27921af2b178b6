/**
 * Local wrapping of key material for AWS KMS ImportKeyMaterial. AWS KMS takes the private key as
 * PKCS#8 DER PrivateKeyInfo, encrypted under the RSA wrapping public key that
 * GetParametersForImport returns:
 *
 * - RSAES_OAEP_SHA_256: RSA-OAEP with SHA-256 and MGF1-SHA-256 over the PKCS#8 DER.
 * - RSA_AES_KEY_WRAP_SHA_256: RSA-OAEP-SHA-256 of a fresh AES-256 key, followed by the PKCS#8
 *   DER wrapped under that AES key with AES key wrap with padding (RFC 5649), the layout of
 *   PKCS#11 CKM_RSA_AES_KEY_WRAP.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { describeKeyObject } from '../../src/key-description.js';
import { rsaAesKeyWrapSha256, rsaOaepSha256 } from '../../src/key-wrap.js';

/** The wrapping algorithms this package offers for ECC key material. */
export type WrappingAlgorithm = 'RSA_AES_KEY_WRAP_SHA_256' | 'RSAES_OAEP_SHA_256';

/** The RSA wrapping key sizes AWS KMS offers. */
export type WrappingKeySpec = 'RSA_2048' | 'RSA_3072' | 'RSA_4096';

const wrappingKeyBits: Record<WrappingKeySpec, number> = {
  RSA_2048: 2048,
  RSA_3072: 3072,
  RSA_4096: 4096,
};

/**
 * Wraps `privateKey` for ImportKeyMaterial under the DER SPKI `wrappingPublicKey`. The PKCS#8
 * bytes and the AES key are zeroed before it returns.
 *
 * @example
 * const algorithm = 'RSA_AES_KEY_WRAP_SHA_256';
 * const blob = wrapKeyMaterial(privateKey, parameters.PublicKey, algorithm, 'RSA_4096');
 */
export function wrapKeyMaterial(
  privateKey: KeyObject,
  wrappingPublicKey: Uint8Array,
  algorithm: WrappingAlgorithm,
  keySpec: WrappingKeySpec,
): Buffer {
  const rsaKey = parseWrappingKey(wrappingPublicKey, keySpec);
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
  try {
    if (algorithm === 'RSAES_OAEP_SHA_256') return rsaOaepSha256(rsaKey, pkcs8);
    if (algorithm === 'RSA_AES_KEY_WRAP_SHA_256') return rsaAesKeyWrapSha256(rsaKey, pkcs8);
    throw new TypeError(
      `Wrapping algorithm ${String(algorithm)} is not RSA_AES_KEY_WRAP_SHA_256 or RSAES_OAEP_SHA_256.`,
    );
  } finally {
    pkcs8.fill(0);
  }
}

function parseWrappingKey(der: Uint8Array, keySpec: WrappingKeySpec): KeyObject {
  const key = createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' });
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (key.asymmetricKeyType === 'rsa' && bits === wrappingKeyBits[keySpec]) return key;

  const found =
    key.asymmetricKeyType === 'rsa' ? `an RSA key of ${bits} bits` : describeKeyObject(key);
  throw new Error(`the wrapping public key is ${found}, not ${keySpec}.`);
}
