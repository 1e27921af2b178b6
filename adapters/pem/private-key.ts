/**
 * Private key parsing: picks the one private key block, parses it with node:crypto as PKCS#8
 * (RFC 5958) or SEC1 (RFC 5915), decrypts encrypted PKCS#8 and legacy OpenSSL-encrypted PEM
 * with a passphrase, and checks that the result is a consistent P-256 key. The content decides
 * between PKCS#8 and SEC1, so a wrong private-key label is repaired and reported.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import type { PemBlock } from './armour.js';
import {
  assertKeyPairConsistent,
  assertP256,
  errorForStructure,
  structureError,
} from './checks.js';
import { keyError, type KeyOrigin } from './errors.js';
import { addRepair, type Repair } from './repairs.js';
import { assertCompleteDer, describeKeyStructure } from './structure.js';

/** Labels of PEM blocks that hold a private key of some kind. */
export const privateLabels = new Set([
  'PRIVATE KEY',
  'EC PRIVATE KEY',
  'ENCRYPTED PRIVATE KEY',
  'RSA PRIVATE KEY',
  'DSA PRIVATE KEY',
  'ANY PRIVATE KEY',
]);

/** Labels of PEM blocks that hold a public key or a certificate. */
export const publicLabels = new Set([
  'PUBLIC KEY',
  'RSA PUBLIC KEY',
  'CERTIFICATE',
  'TRUSTED CERTIFICATE',
  'X509 CERTIFICATE',
]);

/** Labels that carry no key and are skipped, such as the block `openssl ecparam -genkey` adds. */
export const ignoredLabels = new Set(['EC PARAMETERS', 'DH PARAMETERS', 'X509 CRL']);

/** Resolves the passphrase only when a key turns out to be encrypted. */
export type PassphraseProvider = () => string | undefined;

/** A parsed private key and whether it was encrypted. */
export interface ParsedPrivateKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  encrypted: boolean;
}

type DetectedFormat = 'pkcs8' | 'encrypted-pkcs8' | 'sec1';

const labelOfFormat: Record<DetectedFormat, string> = {
  pkcs8: 'PRIVATE KEY',
  'encrypted-pkcs8': 'ENCRYPTED PRIVATE KEY',
  sec1: 'EC PRIVATE KEY',
};

/**
 * Parses the one private key among `blocks` into a checked P-256 KeyObject.
 *
 * @example
 * const { privateKey } = await parsePrivateBlocks(blocks, () => undefined, origin, repairs);
 */
export async function parsePrivateBlocks(
  blocks: PemBlock[],
  passphrase: PassphraseProvider,
  origin: KeyOrigin,
  repairs: Repair[],
): Promise<ParsedPrivateKey> {
  const block = await selectPrivateBlock(blocks, origin);
  return parsePrivateBlock(block, passphrase, origin, repairs);
}

/** Parses one block that should hold a private key. */
export async function parsePrivateBlock(
  block: PemBlock,
  passphrase: PassphraseProvider,
  origin: KeyOrigin,
  repairs: Repair[],
): Promise<ParsedPrivateKey> {
  const where = whereOf(block);
  const { privateKey, format } =
    block.dekInfo === undefined
      ? await parseDer(block.der, passphrase, origin, where)
      : { privateKey: parseLegacyEncrypted(block, passphrase, origin), format: 'sec1' as const };

  if (block.label !== undefined && block.label !== labelOfFormat[format] && !block.dekInfo) {
    addRepair(repairs, 'label-mismatch');
  }
  assertP256(privateKey, origin, where);
  const publicKey = assertKeyPairConsistent(privateKey, origin);
  return { privateKey, publicKey, encrypted: format === 'encrypted-pkcs8' || !!block.dekInfo };
}

async function selectPrivateBlock(blocks: PemBlock[], origin: KeyOrigin): Promise<PemBlock> {
  const candidates = blocks.filter((b) => b.label === undefined || privateLabels.has(b.label));
  if (candidates.length > 1) {
    throw keyError(
      'ERR_KEY_MULTIPLE',
      origin,
      `the text holds ${candidates.length} private keys, so it is unclear which one to use. ` +
        'Keep exactly one.',
      { details: { count: candidates.length } },
    );
  }
  if (candidates[0]) return candidates[0];

  assertSupportedLabels(blocks, origin);
  const keyBlock = blocks.find((b) => b.label !== undefined && publicLabels.has(b.label));
  if (!keyBlock) {
    throw keyError('ERR_KEY_EMPTY', origin, 'the text holds parameters only, and no key.');
  }
  throw await publicBlockError(keyBlock, origin);
}

/** Throws `ERR_KEY_FORMAT_UNSUPPORTED` for a PEM label that no loader here reads. */
export function assertSupportedLabels(blocks: PemBlock[], origin: KeyOrigin): void {
  const known = (label: string) =>
    privateLabels.has(label) || publicLabels.has(label) || ignoredLabels.has(label);
  const unknown = blocks.find((b) => b.label !== undefined && !known(b.label));
  if (!unknown?.label) return;

  const label = unknown.label;
  const hint =
    label === 'OPENSSH PRIVATE KEY'
      ? 'Convert it to PKCS#8 with "ssh-keygen -p -m PKCS8 -f FILE".'
      : 'Export the key as PKCS#8 ("-----BEGIN PRIVATE KEY-----").';
  throw keyError(
    'ERR_KEY_FORMAT_UNSUPPORTED',
    origin,
    `the PEM label "${label}" is not a key format this loader reads. ${hint}`,
    { details: { label } },
  );
}

async function publicBlockError(block: PemBlock, origin: KeyOrigin) {
  const where = whereOf(block);
  assertCompleteDer(block.der, origin, where);
  const structure = await describeKeyStructure(block.der);
  const holdsPrivate = ['pkcs8', 'encrypted-pkcs8', 'sec1', 'pkcs1-private'].includes(
    structure.kind,
  );
  if (!holdsPrivate) return errorForStructure(structure, block.der, origin, where, 'private');
  return labelMismatch(origin, block.label ?? '', 'a private key');
}

/** Builds `ERR_KEY_LABEL_MISMATCH` for a public label on private content, or the reverse. */
export function labelMismatch(origin: KeyOrigin, label: string, found: string) {
  return keyError(
    'ERR_KEY_LABEL_MISMATCH',
    origin,
    `the block is labelled "${label}" but holds ${found}. A private key under a public label may ` +
      'have been shared as if it were public; check where this file has been, then fix the label.',
    { details: { label, found } },
  );
}

async function parseDer(
  der: Buffer,
  passphrase: PassphraseProvider,
  origin: KeyOrigin,
  where: string,
) {
  assertCompleteDer(der, origin, where);

  let pkcs8Error: unknown;
  try {
    return {
      privateKey: createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }),
      format: 'pkcs8' as const,
    };
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ERR_MISSING_PASSPHRASE') {
      return {
        privateKey: decryptPkcs8(der, passphrase, origin, where),
        format: 'encrypted-pkcs8' as const,
      };
    }
    pkcs8Error = error;
  }

  try {
    return {
      privateKey: createPrivateKey({ key: der, format: 'der', type: 'sec1' }),
      format: 'sec1' as const,
    };
  } catch {
    // The PKCS#8 error is the more telling one; the structure walk names the failing check.
    throw await structureError(der, origin, where, 'private', pkcs8Error);
  }
}

function decryptPkcs8(
  der: Buffer,
  passphrase: PassphraseProvider,
  origin: KeyOrigin,
  where: string,
) {
  const secret = requirePassphrase(passphrase, origin, where);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8', passphrase: secret });
  } catch (error) {
    throw wrongPassphrase(origin, where, error);
  }
}

function parseLegacyEncrypted(block: PemBlock, passphrase: PassphraseProvider, origin: KeyOrigin) {
  const where = whereOf(block);
  const secret = requirePassphrase(passphrase, origin, where);
  const label = block.label ?? 'EC PRIVATE KEY';
  const body = block.der.toString('base64').replace(/.{64}/g, '$&\n');
  const pem = `-----BEGIN ${label}-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: ${block.dekInfo}\n\n${body}\n-----END ${label}-----\n`;
  try {
    return createPrivateKey({ key: pem, format: 'pem', passphrase: secret });
  } catch (error) {
    throw wrongPassphrase(origin, where, error);
  }
}

function requirePassphrase(
  passphrase: PassphraseProvider,
  origin: KeyOrigin,
  where: string,
): string {
  const secret = passphrase();
  if (secret !== undefined) return secret;
  throw keyError(
    'ERR_KEY_ENCRYPTED',
    origin,
    `${where} is encrypted and no passphrase was given. Set the passphrase option, or name an ` +
      'environment variable that holds it with passphraseEnv (in kms-jwt, --passphrase-env NAME).',
  );
}

function wrongPassphrase(origin: KeyOrigin, where: string, cause: unknown) {
  return keyError(
    'ERR_KEY_PASSPHRASE_WRONG',
    origin,
    `${where} could not be decrypted: the passphrase is wrong, or the encrypted key is corrupt.`,
    { cause },
  );
}

/** Words for a block in messages, such as "the EC PRIVATE KEY block". */
export function whereOf(block: PemBlock): string {
  return block.label === undefined ? 'the key' : `the ${block.label} block`;
}
