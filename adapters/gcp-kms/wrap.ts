/**
 * Local key wrapping for Cloud KMS ImportCryptoKeyVersion, as the Cloud KMS "Key wrapping" page
 * describes it. For the `RSA_OAEP_*_SHA256_AES_256` methods the wrapped key is the RSAES-OAEP
 * (SHA-256, MGF1-SHA-256, empty label) encryption of an ephemeral AES-256 key under the import
 * job's public key, followed by the PKCS#8 DER wrapped with that AES key by AES-KWP (RFC 5649).
 * For `RSA_OAEP_*_SHA256` it is the OAEP encryption of the PKCS#8 DER alone.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { KmsJwtError } from '../../src/errors.js';
import { describeKeyObject } from '../../src/key-description.js';
import { rsaAesKeyWrapSha256, rsaOaepSha256 } from '../../src/key-wrap.js';
import type { ImportMethodName } from './client.js';

/** Import methods this adapter can wrap for, with the RSA size each one requires. */
export const supportedImportMethods: Record<
  ImportMethodName,
  { modulusBits: number; aesKwp: boolean }
> = {
  RSA_OAEP_3072_SHA256_AES_256: { modulusBits: 3072, aesKwp: true },
  RSA_OAEP_4096_SHA256_AES_256: { modulusBits: 4096, aesKwp: true },
  RSA_OAEP_3072_SHA256: { modulusBits: 3072, aesKwp: false },
  RSA_OAEP_4096_SHA256: { modulusBits: 4096, aesKwp: false },
};

/** The default import method. */
export const defaultImportMethod: ImportMethodName = 'RSA_OAEP_3072_SHA256_AES_256';

/**
 * Asserts that `method` is one this adapter can wrap for, naming the supported ones if not.
 *
 * @example
 * assertImportMethod('RSA_OAEP_3072_SHA256_AES_256');
 */
export function assertImportMethod(method: string): asserts method is ImportMethodName {
  if (Object.hasOwn(supportedImportMethods, method)) return;
  throw new KmsJwtError(
    'ERR_GCP_KMS_IMPORT_METHOD_UNSUPPORTED',
    `The Cloud KMS import method "${method}" is not supported. Use one of ` +
      `${Object.keys(supportedImportMethods).join(', ')}; the SHA-1 and post-quantum methods ` +
      'are not offered.',
    { details: { importMethod: method } },
  );
}

/**
 * Wraps a P-256 private key for ImportCryptoKeyVersion. The PKCS#8 bytes and the AES key are
 * zeroed after use; nothing is written to disk.
 *
 * @example
 * const wrappedKey = wrapPkcs8ForImport(privateKey, importJob.publicKey.pem, defaultImportMethod);
 */
export function wrapPkcs8ForImport(
  privateKey: KeyObject,
  jobPublicKeyPem: string,
  method: string,
): Buffer {
  assertImportMethod(method);
  const { modulusBits, aesKwp } = supportedImportMethods[method];
  const wrappingKey = parseWrappingKey(jobPublicKeyPem, modulusBits, method);

  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
  try {
    return aesKwp ? rsaAesKeyWrapSha256(wrappingKey, pkcs8) : rsaOaepSha256(wrappingKey, pkcs8);
  } finally {
    pkcs8.fill(0);
  }
}

function parseWrappingKey(pem: string, modulusBits: number, method: string): KeyObject {
  let key: KeyObject | undefined;
  try {
    key = createPublicKey(pem);
  } catch {
    key = undefined;
  }
  const found = key?.asymmetricKeyDetails?.modulusLength;
  if (key?.asymmetricKeyType === 'rsa' && found === modulusBits) return key;
  throw new KmsJwtError(
    'ERR_GCP_KMS_IMPORT_FAILED',
    `The import job's public key is not the ${modulusBits}-bit RSA key that ${method} requires ` +
      `(found ${key ? describeWrappingKey(key) : 'no parsable PEM'}).`,
    { details: { step: 'wrap', importMethod: method } },
  );
}

function describeWrappingKey(key: KeyObject): string {
  const bits = key.asymmetricKeyDetails?.modulusLength;
  const description = describeKeyObject(key);
  return bits === undefined ? description : `${description} of ${bits} bits`;
}
