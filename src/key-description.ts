/**
 * Key types in words for error messages, shared by the adapters, so that a message reads "an
 * Ed25519 key" or "an EC P-384 key" rather than Node's `ed25519` or `secp384r1`.
 */
import type { KeyObject } from 'node:crypto';

const nodeCurveNames: Record<string, string> = {
  prime256v1: 'P-256',
  secp384r1: 'P-384',
  secp521r1: 'P-521',
  secp256k1: 'secp256k1',
  secp224r1: 'P-224',
  prime192v1: 'P-192',
};

/**
 * Names the type of a KeyObject in words, such as "an EC P-384 key" or "an Ed25519 key".
 *
 * @example
 * describeKeyObject(generateKeyPairSync('ed25519').publicKey); // 'an Ed25519 key'
 */
export function describeKeyObject(key: KeyObject): string {
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? 'unnamed-curve';
    return `an EC ${nodeCurveNames[curve] ?? curve} key`;
  }
  const names: Record<string, string> = {
    rsa: 'an RSA key',
    'rsa-pss': 'an RSA-PSS key',
    dsa: 'a DSA key',
    dh: 'a DH key',
    ed25519: 'an Ed25519 key',
    ed448: 'an Ed448 key',
    x25519: 'an X25519 key',
    x448: 'an X448 key',
  };
  return names[type ?? ''] ?? `a key of type ${String(type)}`;
}
