/**
 * Public key parsing for verification: an SPKI `PUBLIC KEY` (RFC 5280 §4.1.2.7), an X.509
 * certificate, or the public half of a private key. Only the certificate's public key is used;
 * its dates, issuer and extensions are not checked.
 */
import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import type { PemBlock } from './armour.js';
import { assertP256, errorForStructure } from './checks.js';
import { keyError, type KeyOrigin } from './errors.js';
import {
  assertSupportedLabels,
  ignoredLabels,
  labelMismatch,
  parsePrivateBlock,
  privateLabels,
  whereOf,
  type PassphraseProvider,
} from './private-key.js';
import { addRepair, type Repair } from './repairs.js';
import { assertCompleteDer, describeKeyStructure } from './structure.js';

const certificateLabels = new Set(['CERTIFICATE', 'TRUSTED CERTIFICATE', 'X509 CERTIFICATE']);

/** A public key read for verifying, and whether it was derived from a private key. */
export interface ParsedPublicKey {
  publicKey: KeyObject;
  /** True when the input contained a private key, so that a readable file is a leak. */
  fromPrivateKey: boolean;
}

/**
 * Reads the one key among `blocks` as a P-256 public key.
 *
 * @example
 * const { publicKey } = await parsePublicBlocks(blocks, () => undefined, origin, repairs);
 */
export async function parsePublicBlocks(
  blocks: PemBlock[],
  passphrase: PassphraseProvider,
  origin: KeyOrigin,
  repairs: Repair[],
): Promise<ParsedPublicKey> {
  assertSupportedLabels(blocks, origin);
  const candidates = blocks.filter((b) => b.label === undefined || !ignoredLabels.has(b.label));
  if (candidates.length > 1) {
    throw keyError(
      'ERR_KEY_MULTIPLE',
      origin,
      `the text holds ${candidates.length} keys or certificates, so it is unclear which one to ` +
        'verify with. Keep exactly one.',
      { details: { count: candidates.length } },
    );
  }
  const [block] = candidates;
  if (!block)
    throw keyError('ERR_KEY_EMPTY', origin, 'the text holds parameters only, and no key.');

  if (block.label !== undefined && privateLabels.has(block.label)) {
    const { publicKey } = await parsePrivateBlock(block, passphrase, origin, repairs);
    return { publicKey, fromPrivateKey: true };
  }
  const parsed = await parsePublicDer(block, passphrase, origin, repairs);
  assertP256(parsed.publicKey, origin, whereOf(block));
  return parsed;
}

async function parsePublicDer(
  block: PemBlock,
  passphrase: PassphraseProvider,
  origin: KeyOrigin,
  repairs: Repair[],
): Promise<ParsedPublicKey> {
  const where = whereOf(block);
  assertCompleteDer(block.der, origin, where);

  const spki = trySpki(block.der);
  if (spki) {
    if (block.label !== undefined && block.label !== 'PUBLIC KEY')
      addRepair(repairs, 'label-mismatch');
    return { publicKey: spki, fromPrivateKey: false };
  }
  const certificate = tryCertificate(block.der);
  if (certificate) {
    if (block.label !== undefined && !certificateLabels.has(block.label))
      addRepair(repairs, 'label-mismatch');
    return { publicKey: certificate, fromPrivateKey: false };
  }
  return publicKeyFromOtherContent(block, passphrase, origin, repairs);
}

async function publicKeyFromOtherContent(
  block: PemBlock,
  passphrase: PassphraseProvider,
  origin: KeyOrigin,
  repairs: Repair[],
): Promise<ParsedPublicKey> {
  const where = whereOf(block);
  const structure = await describeKeyStructure(block.der);
  const holdsPrivate = ['pkcs8', 'encrypted-pkcs8', 'sec1'].includes(structure.kind);
  // A bare body may be a private key; under a public label, private content is refused.
  if (holdsPrivate && block.label === undefined) {
    const { publicKey } = await parsePrivateBlock(block, passphrase, origin, repairs);
    return { publicKey, fromPrivateKey: true };
  }
  if (holdsPrivate) throw labelMismatch(origin, block.label ?? '', 'a private key');
  throw errorForStructure(structure, block.der, origin, where, 'public');
}

function trySpki(der: Buffer): KeyObject | undefined {
  try {
    return createPublicKey({ key: der, format: 'der', type: 'spki' });
  } catch {
    return undefined;
  }
}

function tryCertificate(der: Buffer): KeyObject | undefined {
  try {
    return new X509Certificate(der).publicKey;
  } catch {
    return undefined;
  }
}
