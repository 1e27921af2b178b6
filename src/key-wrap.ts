/**
 * Key wrapping for importing a private key into a KMS: RSAES-OAEP with SHA-256 and MGF1-SHA-256
 * (RFC 8017 §7.1, empty label), alone or in front of AES Key Wrap with Padding (RFC 5649). The
 * second is the layout of PKCS#11 CKM_RSA_AES_KEY_WRAP, which both AWS KMS
 * (RSA_AES_KEY_WRAP_SHA_256) and Cloud KMS (RSA_OAEP_*_SHA256_AES_256) take.
 */
import { constants, createCipheriv, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';

// RFC 5649 §3: the alternative initial value of AES Key Wrap with Padding. OpenSSL's
// id-aes256-wrap-pad cipher takes it as the 4-byte IV and rejects a null IV.
const kwpInitialValue = Buffer.from('a65959a6', 'hex');

/**
 * Encrypts `plaintext` under an RSA public key with RSAES-OAEP, SHA-256 and MGF1-SHA-256.
 *
 * @example
 * const wrapped = rsaOaepSha256(wrappingKey, pkcs8Der);
 */
export function rsaOaepSha256(rsaKey: KeyObject, plaintext: Uint8Array): Buffer {
  return publicEncrypt(
    { key: rsaKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
    plaintext,
  );
}

/**
 * Wraps `plaintext` as CKM_RSA_AES_KEY_WRAP does: a fresh AES-256 key encrypted with
 * {@link rsaOaepSha256}, followed by `plaintext` wrapped under that AES key with RFC 5649. The
 * RSA part is as long as the modulus, which is how the receiver splits the two. The AES key is
 * zeroed before this returns.
 *
 * @example
 * const wrapped = rsaAesKeyWrapSha256(wrappingKey, pkcs8Der);
 */
export function rsaAesKeyWrapSha256(rsaKey: KeyObject, plaintext: Uint8Array): Buffer {
  const aesKey = randomBytes(32);
  try {
    const cipher = createCipheriv('id-aes256-wrap-pad', aesKey, kwpInitialValue);
    const wrapped = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([rsaOaepSha256(rsaKey, aesKey), wrapped]);
  } finally {
    aesKey.fill(0);
  }
}
