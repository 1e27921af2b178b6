/**
 * Checks shared by private and public key loading: the key must be EC P-256, a private key's
 * public half must match its private scalar, and a structure that node:crypto rejects is
 * described by the first check it fails.
 */
import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { describeKeyObject } from '../../src/key-description.js';
import { keyError, type KeyOrigin } from './errors.js';
import {
  describeKeyStructure,
  describeStructure,
  hasApplePrefix,
  type KeyStructure,
} from './structure.js';

/** Whether a key is wanted to sign (private) or to verify (public). */
export type KeyPurpose = 'private' | 'public';

/** Throws `ERR_KEY_NOT_P256` unless `key` is an EC P-256 key. */
export function assertP256(key: KeyObject, origin: KeyOrigin, where: string): void {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType === 'ec' && curve === 'prime256v1') return;
  const found = describeKeyObject(key);
  throw notP256(origin, `${where} holds ${found}`, found, hintFor(key.asymmetricKeyType, curve));
}

function hintFor(type: string | undefined, curve: string | undefined): string {
  if (type === 'rsa' || type === 'rsa-pss') return 'RSA keys sign RS256 or PS256, not ES256.';
  if (type === 'ed25519' || type === 'ed448') return 'EdDSA keys sign EdDSA, not ES256.';
  if (type === 'x25519' || type === 'x448')
    return 'X25519 and X448 keys agree keys; they cannot sign.';
  if (curve === 'secp384r1') return 'A P-384 key signs ES384, not ES256.';
  if (curve === 'secp521r1') return 'A P-521 key signs ES512, not ES256.';
  if (curve === 'secp256k1') return 'A secp256k1 key signs ES256K, which Apple does not accept.';
  return '';
}

function notP256(origin: KeyOrigin, subject: string, found: string, hint: string) {
  return keyError(
    'ERR_KEY_NOT_P256',
    origin,
    `${subject}, but ES256 needs an EC P-256 (prime256v1) key.${hint ? ` ${hint}` : ''} ` +
      'Apple .p8 keys are P-256; check that this is the right file.',
    { details: { found } },
  );
}

/**
 * Signs a fixed message and verifies it against the key's public half. OpenSSL accepts a
 * PKCS#8 or SEC1 key whose embedded public point belongs to another key, and then derives that
 * wrong public key. This package does not verify its own local signatures after signing, so
 * such a key must be caught here.
 */
export function assertKeyPairConsistent(privateKey: KeyObject, origin: KeyOrigin): KeyObject {
  const publicKey = createPublicKey(privateKey);
  const message = Buffer.from('kms-jwt-signer pairwise consistency check');
  const signature = sign('sha256', message, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const valid = verify('sha256', message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);
  if (valid) return publicKey;
  throw keyError(
    'ERR_KEY_PUBLIC_POINT_MISMATCH',
    origin,
    'the public key stored inside the private key does not match its private scalar, so the file ' +
      'is corrupt or was assembled from two keys. Download or export the key again.',
  );
}

/**
 * Builds the error for DER that node:crypto rejected, naming what the structure is and the check
 * it failed.
 */
export async function structureError(
  der: Uint8Array,
  origin: KeyOrigin,
  where: string,
  purpose: KeyPurpose,
  nodeError: unknown,
) {
  const structure = await describeKeyStructure(der);
  return errorForStructure(structure, der, origin, where, purpose, nodeError);
}

/** Maps a described structure to the coded error for a key that cannot be used. */
export function errorForStructure(
  structure: KeyStructure,
  der: Uint8Array,
  origin: KeyOrigin,
  where: string,
  purpose: KeyPurpose,
  nodeError?: unknown,
) {
  const found = describeStructure(structure);
  const details = { found, structure: structure.kind };
  const problem = 'problem' in structure ? structure.problem : undefined;
  if (problem)
    return asn1Error(origin, `${where} is not a valid key: ${problem}.`, der, details, nodeError);

  const isPublic = ['spki', 'certificate', 'pkcs1-public'].includes(structure.kind);
  if (purpose === 'private' && isPublic) return notPrivate(origin, where, found);
  if (structure.kind === 'pkcs12') {
    return keyError(
      'ERR_KEY_FORMAT_UNSUPPORTED',
      origin,
      `${where} is ${found}. Extract the key with "openssl pkcs12 -in FILE -nocerts -nodes" ` +
        'and then "openssl pkcs8 -topk8 -nocrypt".',
      { details },
    );
  }
  if (structure.kind === 'encrypted-pkcs8') {
    return asn1Error(
      origin,
      `${where} is ${found} that node:crypto cannot read, probably because of an unsupported cipher.`,
      der,
      details,
      nodeError,
    );
  }
  if (!isP256Structure(structure)) return notP256(origin, `${where} holds ${found}`, found, '');
  return asn1Error(
    origin,
    `${where} is ${found}, but node:crypto rejected it (${nodeCode(nodeError)}).`,
    der,
    details,
    nodeError,
  );
}

function isP256Structure(structure: KeyStructure): boolean {
  if (structure.kind === 'sec1')
    return structure.curve === undefined || structure.curve === 'P-256';
  if (structure.kind === 'pkcs8' || structure.kind === 'spki' || structure.kind === 'certificate') {
    return structure.algorithm === 'EC' && structure.curve === 'P-256';
  }
  return false;
}

/**
 * Builds `ERR_KEY_NOT_PRIVATE` for a public key or certificate given where a private key belongs.
 */
export function notPrivate(origin: KeyOrigin, where: string, found: string) {
  return keyError(
    'ERR_KEY_NOT_PRIVATE',
    origin,
    `${where} is ${found}, but signing needs the private key. Use the .p8 file that Apple let ` +
      'you download once, or the private key the public key came from.',
    { details: { found } },
  );
}

function asn1Error(
  origin: KeyOrigin,
  message: string,
  der: Uint8Array,
  details: Record<string, unknown>,
  cause: unknown,
) {
  const apple = hasApplePrefix(der)
    ? ' It starts like an Apple .p8 key, so part of it was probably altered in transit.'
    : '';
  return keyError(
    'ERR_KEY_ASN1_INVALID',
    origin,
    `${message}${apple} Copy the key again from its source.`,
    {
      cause,
      details,
    },
  );
}

function nodeCode(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'no reason given';
}
