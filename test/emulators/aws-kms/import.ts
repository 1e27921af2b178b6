/**
 * The import side of the AWS KMS emulator: RSA wrapping key pairs, import tokens (valid 24 hours,
 * as GetParametersForImport documents), and the unwrapping of EncryptedKeyMaterial for the
 * wrapping algorithms AWS KMS allows for ECC key material.
 */
import {
  constants,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  privateDecrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { promisify } from 'node:util';
import { KmsServiceError } from './service-error.js';
import { isKeyOfSpec, type EmulatorKey } from './keys.js';

const wrappingKeyBits: Record<string, number> = { RSA_2048: 2048, RSA_3072: 3072, RSA_4096: 4096 };
const oaepHashes: Record<string, 'sha1' | 'sha256'> = {
  RSAES_OAEP_SHA_1: 'sha1',
  RSAES_OAEP_SHA_256: 'sha256',
  RSA_AES_KEY_WRAP_SHA_1: 'sha1',
  RSA_AES_KEY_WRAP_SHA_256: 'sha256',
};
const tokenLifetimeSeconds = 24 * 60 * 60;
const generateRsaKeyPair = promisify(generateKeyPair);

interface IssuedToken {
  keyId: string;
  algorithm: string;
  wrappingKey: KeyObject;
  validTo: number;
}

/** Wrapping keys and outstanding import tokens. */
export class ImportState {
  // One RSA pair per size, made on first use: RSA-4096 generation takes about a second.
  readonly #wrappingKeys = new Map<string, Promise<KeyObject>>();
  readonly #tokens = new Map<string, IssuedToken>();

  /**
   * Issues an import token and the wrapping public key, as GetParametersForImport does.
   * `issuedKeySpec` differs from `wrappingKeySpec` only under the wrong-size fault.
   */
  async issue(key: EmulatorKey, algorithm: string, wrappingKeySpec: string, issuedKeySpec: string) {
    if (!(algorithm in oaepHashes)) {
      throw new KmsServiceError(
        'ValidationException',
        `WrappingAlgorithm ${algorithm} is not supported.`,
      );
    }
    const bits = wrappingKeyBits[wrappingKeySpec];
    if (bits === undefined)
      throw new KmsServiceError(
        'ValidationException',
        `WrappingKeySpec ${wrappingKeySpec} is not valid.`,
      );

    const wrappingKey = await this.#wrappingKey(
      issuedKeySpec,
      wrappingKeyBits[issuedKeySpec] ?? bits,
    );
    const token = randomBytes(48);
    const validTo = Math.floor(Date.now() / 1000) + tokenLifetimeSeconds;
    this.#tokens.set(token.toString('base64'), {
      keyId: key.keyId,
      algorithm,
      wrappingKey,
      validTo,
    });
    return {
      KeyId: key.arn,
      ImportToken: token.toString('base64'),
      PublicKey: createPublicKey(wrappingKey)
        .export({ type: 'spki', format: 'der' })
        .toString('base64'),
      ParametersValidTo: validTo,
    };
  }

  /** Checks the token, unwraps the key material and checks that it fits the key. */
  unwrap(key: EmulatorKey, importToken: Buffer, encrypted: Buffer): KeyObject {
    const issued = this.#tokens.get(importToken.toString('base64'));
    if (!issued || issued.keyId !== key.keyId) {
      throw new KmsServiceError(
        'InvalidImportTokenException',
        'The import token is not valid for this key.',
      );
    }
    if (issued.validTo * 1000 < Date.now())
      throw new KmsServiceError('ExpiredImportTokenException', 'The import token has expired.');

    const pkcs8 = decrypt(issued, encrypted);
    const material = parseMaterial(pkcs8);
    if (!isKeyOfSpec(material, key.keySpec)) {
      throw new KmsServiceError(
        'IncorrectKeyMaterialException',
        `The key material is not a ${key.keySpec} private key.`,
      );
    }
    if (key.privateKey && !samePublicKey(key.privateKey, material)) {
      throw new KmsServiceError(
        'IncorrectKeyMaterialException',
        'The key material differs from the material imported before.',
      );
    }
    this.#tokens.delete(importToken.toString('base64'));
    return material;
  }

  // Generation runs off the event loop, so that other requests are served meanwhile.
  #wrappingKey(spec: string, bits: number): Promise<KeyObject> {
    let key = this.#wrappingKeys.get(spec);
    if (!key) {
      key = generateRsaKeyPair('rsa', { modulusLength: bits }).then((pair) => pair.privateKey);
      this.#wrappingKeys.set(spec, key);
    }
    return key;
  }
}

function decrypt(issued: IssuedToken, encrypted: Buffer): Buffer {
  const oaepHash = oaepHashes[issued.algorithm]!;
  const modulusBytes = issued.wrappingKey.asymmetricKeyDetails!.modulusLength! / 8;
  const rsaDecrypt = (data: Buffer) =>
    privateDecrypt(
      { key: issued.wrappingKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash },
      data,
    );
  try {
    if (issued.algorithm.startsWith('RSAES_OAEP')) return rsaDecrypt(encrypted);
    // RSA_AES_KEY_WRAP: the RSA-OAEP ciphertext of the AES key comes first, then the RFC 5649
    // output.
    const aesKey = rsaDecrypt(encrypted.subarray(0, modulusBytes));
    const decipher = createDecipheriv('id-aes256-wrap-pad', aesKey, Buffer.from('a65959a6', 'hex'));
    return Buffer.concat([decipher.update(encrypted.subarray(modulusBytes)), decipher.final()]);
  } catch {
    throw new KmsServiceError(
      'InvalidCiphertextException',
      'The request was rejected because the specified ciphertext could not be decrypted with the wrapping key and algorithm of this import token.',
    );
  }
}

function parseMaterial(pkcs8: Buffer): KeyObject {
  try {
    return createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  } catch {
    throw new KmsServiceError(
      'IncorrectKeyMaterialException',
      'The key material is not a DER PKCS#8 PrivateKeyInfo.',
    );
  }
}

function samePublicKey(a: KeyObject, b: KeyObject): boolean {
  const spki = (key: KeyObject) => createPublicKey(key).export({ type: 'spki', format: 'der' });
  return spki(a).equals(spki(b));
}
