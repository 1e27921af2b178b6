/**
 * Key records of the AWS KMS emulator: key specs, usages and signing algorithms as the AWS KMS
 * "Key spec reference" page lists them, with real key pairs made by node:crypto.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';

/** The asymmetric key specs the emulator can hold. */
export type EmulatorKeySpec = 'ECC_NIST_P256' | 'ECC_NIST_P384' | 'ECC_SECG_P256K1' | 'RSA_2048';

/** The AWS KMS key states that matter to signing and import. */
export type EmulatorKeyState = 'Enabled' | 'Disabled' | 'PendingDeletion' | 'PendingImport';

/** One key held by the emulator. */
export interface EmulatorKey {
  keyId: string;
  arn: string;
  keySpec: EmulatorKeySpec;
  keyUsage: 'SIGN_VERIFY' | 'ENCRYPT_DECRYPT';
  origin: 'AWS_KMS' | 'EXTERNAL';
  state: EmulatorKeyState;
  description: string;
  creationDate: number;
  /** Undefined until key material exists (an EXTERNAL key before import). */
  privateKey: KeyObject | undefined;
}

/** Signing algorithms per key spec. */
export const signingAlgorithms: Record<EmulatorKeySpec, string[]> = {
  ECC_NIST_P256: ['ECDSA_SHA_256'],
  ECC_NIST_P384: ['ECDSA_SHA_384'],
  ECC_SECG_P256K1: ['ECDSA_SHA_256'],
  RSA_2048: [
    'RSASSA_PKCS1_V1_5_SHA_256',
    'RSASSA_PKCS1_V1_5_SHA_384',
    'RSASSA_PKCS1_V1_5_SHA_512',
    'RSASSA_PSS_SHA_256',
    'RSASSA_PSS_SHA_384',
    'RSASSA_PSS_SHA_512',
  ],
};

/** The node:crypto curve of each EC key spec. */
export const namedCurves: Partial<Record<EmulatorKeySpec, string>> = {
  ECC_NIST_P256: 'prime256v1',
  ECC_NIST_P384: 'secp384r1',
  ECC_SECG_P256K1: 'secp256k1',
};

/** Makes a fresh private key of `keySpec`. */
export function generatePrivateKey(keySpec: EmulatorKeySpec): KeyObject {
  if (keySpec === 'RSA_2048') return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  return generateKeyPairSync('ec', { namedCurve: namedCurves[keySpec]! }).privateKey;
}

/** Returns true when `privateKey` has the type and curve of `keySpec`. */
export function isKeyOfSpec(privateKey: KeyObject, keySpec: EmulatorKeySpec): boolean {
  if (keySpec === 'RSA_2048') {
    return (
      privateKey.asymmetricKeyType === 'rsa' &&
      privateKey.asymmetricKeyDetails?.modulusLength === 2048
    );
  }
  return (
    privateKey.asymmetricKeyType === 'ec' &&
    privateKey.asymmetricKeyDetails?.namedCurve === namedCurves[keySpec]
  );
}
