/**
 * CRC32C (Castagnoli) checksums and the response checks of Google's "Verifying end-to-end data
 * integrity" guide for Cloud KMS: send `digestCrc32c`, require `verifiedDigestCrc32c`, compare
 * the returned `name` with the version requested, and recompute `signatureCrc32c` and
 * `pemCrc32c`. Node's `zlib.crc32` is CRC-32/IEEE, a different polynomial, so the checksum comes
 * from @aws-crypto/crc32c.
 */
import { crc32c as computeCrc32c } from '@aws-crypto/crc32c';
import { createPublicKey } from 'node:crypto';
import { derToJose } from '../../src/der.js';
import { isKmsJwtError } from '../../src/errors.js';
import type { IntegrityProblem } from './call.js';
import type { AsymmetricSignResponse, Int64Value, PublicKeyResponse } from './client.js';
import { quoteServerText } from './errors.js';

/**
 * Computes the CRC32C of `data` as an unsigned 32-bit number.
 *
 * @example
 * crc32c(Buffer.from('123456789')); // 0xe3069283
 */
export function crc32c(data: Uint8Array): number {
  return computeCrc32c(data);
}

/**
 * Checks an AsymmetricSign response for `versionName`. It returns undefined when every check
 * passes, so the signature is safe to convert.
 *
 * @example
 * const problem = checkSignResponse(response, versionName);
 */
export function checkSignResponse(
  response: AsymmetricSignResponse,
  versionName: string,
): IntegrityProblem | undefined {
  if (response.verifiedDigestCrc32c !== true) {
    return {
      check: 'verifiedDigestCrc32c',
      problem:
        'Cloud KMS did not confirm that the digest arrived intact (verifiedDigestCrc32c is false).',
    };
  }
  if (response.name !== versionName) return nameProblem('name', response.name, versionName);

  const signature = response.signature;
  if (!(signature instanceof Uint8Array) || signature.length === 0) {
    return { check: 'signature', problem: 'the response carries no signature bytes.' };
  }
  return checksumProblem('signatureCrc32c', signature, response.signatureCrc32c, 'signature');
}

/**
 * Converts a DER signature that passed {@link checkSignResponse} to the 64-byte form of
 * RFC 7518 §3.4. A signature that is not strict DER although its CRC32C matched was damaged
 * before Cloud KMS computed the checksum, or comes from something that is not Cloud KMS, so it
 * is reported as a problem to retry, like a failed checksum.
 *
 * @example
 * const converted = convertSignature(response.signature as Uint8Array);
 * if ('jose' in converted) return converted.jose;
 */
export function convertSignature(
  der: Uint8Array,
): { jose: Buffer } | { problem: IntegrityProblem } {
  try {
    return { jose: derToJose(der) };
  } catch (error) {
    if (!isKmsJwtError(error)) throw error;
    const detail = String(error.details.problem ?? error.message);
    return {
      problem: { check: 'signature', problem: `the signature is not strict DER: ${detail}.` },
    };
  }
}

/**
 * Checks a GetPublicKey response for `versionName`: its name, the CRC32C of its PEM, and, when
 * `expectedSpki` is given, that the PEM contains that same key. Cloud KMS never changes the key
 * material of a version (a re-import must supply the original key), so a second fetch that
 * returns another key is a corrupt or forged response.
 *
 * @example
 * const expectedSpki = cachedKey.export({ type: 'spki', format: 'der' });
 * const problem = checkPublicKeyResponse(response, versionName, expectedSpki);
 */
export function checkPublicKeyResponse(
  response: PublicKeyResponse,
  versionName: string,
  expectedSpki?: Uint8Array,
): IntegrityProblem | undefined {
  if (response.name !== versionName) return nameProblem('name', response.name, versionName);
  if (typeof response.pem !== 'string' || response.pem === '') {
    return { check: 'pem', problem: 'the response carries no PEM public key.' };
  }
  const pemBytes = Buffer.from(response.pem, 'utf8');
  const problem = checksumProblem('pemCrc32c', pemBytes, response.pemCrc32c, 'PEM');
  if (problem || expectedSpki === undefined) return problem;
  return changedKeyProblem(response.pem, expectedSpki);
}

function changedKeyProblem(pem: string, expectedSpki: Uint8Array): IntegrityProblem | undefined {
  let spki: Buffer;
  try {
    spki = createPublicKey(pem).export({ type: 'spki', format: 'der' });
  } catch {
    // Not a public key at all: the signer reports that with ERR_GCP_KMS_PUBLIC_KEY_INVALID.
    return undefined;
  }
  if (spki.equals(expectedSpki)) return undefined;
  return {
    check: 'publicKey',
    problem:
      'the PEM contains another public key than the one this version returned when the signer ' +
      'was created, but the key material of a CryptoKeyVersion never changes.',
  };
}

function nameProblem(check: string, found: unknown, expected: string): IntegrityProblem {
  return {
    check,
    problem: `the response names ${quoteServerText(found)}, not the requested ${expected}.`,
  };
}

function checksumProblem(
  check: string,
  data: Uint8Array,
  field: Int64Value | null | undefined,
  what: string,
): IntegrityProblem | undefined {
  const expected = parseUint32(field?.value);
  if (expected === undefined) {
    return { check, problem: `the response has no valid ${check} for its ${what}.` };
  }
  if (crc32c(data) === expected) return undefined;
  return { check, problem: `the CRC32C of the returned ${what} does not match ${check}.` };
}

/** Reads an Int64Value payload, which the client returns as a string, a number or a Long. */
function parseUint32(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  const text = typeof value === 'object' ? String(value) : String(value as number | string);
  if (!/^[0-9]{1,10}$/.test(text)) return undefined;
  const number = Number(text);
  return number <= 0xffff_ffff ? number : undefined;
}
