// The shared key wrapping for KMS imports, unwrapped here with node:crypto as a KMS would.
import {
  constants,
  createDecipheriv,
  generateKeyPairSync,
  privateDecrypt,
  randomBytes,
} from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { rsaAesKeyWrapSha256, rsaOaepSha256 } from '../../src/key-wrap.js';

const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
const oaep = { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' };
const kwpInitialValue = Buffer.from('a65959a6', 'hex');

describe('key wrapping', () => {
  it('rsaOaepSha256 decrypts with OAEP SHA-256', () => {
    const plaintext = randomBytes(138);
    const wrapped = rsaOaepSha256(publicKey, plaintext);
    expect(wrapped.length).toBe(384);
    expect(privateDecrypt(oaep, wrapped)).toEqual(plaintext);
  });

  it('rsaAesKeyWrapSha256 puts the RSA part first, then RFC 5649', () => {
    const plaintext = randomBytes(150);
    const wrapped = rsaAesKeyWrapSha256(publicKey, plaintext);
    const aesKey = privateDecrypt(oaep, wrapped.subarray(0, 384));
    expect(aesKey.length).toBe(32);

    const decipher = createDecipheriv('id-aes256-wrap-pad', aesKey, kwpInitialValue);
    const unwrapped = Buffer.concat([decipher.update(wrapped.subarray(384)), decipher.final()]);
    expect(unwrapped).toEqual(plaintext);
  });

  it('rsaAesKeyWrapSha256 uses a fresh AES key each time', () => {
    const plaintext = randomBytes(138);
    const first = rsaAesKeyWrapSha256(publicKey, plaintext);
    const second = rsaAesKeyWrapSha256(publicKey, plaintext);
    expect(first.subarray(384)).not.toEqual(second.subarray(384));
  });
});
