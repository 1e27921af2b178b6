/**
 * Loading local keys: read the source once, normalise the text, parse it with node:crypto and
 * check that it is a consistent P-256 key. The raw input is wiped when it is a Buffer this module
 * read itself. Strings cannot be wiped, so none is kept: not by this module, and not by the
 * RegExp legacy static properties (`RegExp.input`, `RegExp.leftContext`), which V8 points at the
 * subject of the last successful match until the next one.
 */
import type { KeyObject } from 'node:crypto';
import { shortenForMessage } from '../../src/message-text.js';
import { emitEvent } from '../../src/signer.js';
import type { KeyOrigin } from './errors.js';
import { reportKeyFilePermissions } from './file-checks.js';
import { readJwk } from './jwk-input.js';
import { normaliseKeyInput, type Repair } from './normalise.js';
import { parsePrivateBlocks } from './private-key.js';
import { parsePublicBlocks, type ParsedPublicKey } from './public-key.js';
import {
  assertPassphraseOptions,
  assertPemSource,
  readSource,
  resolvePassphrase,
  type PemSignerOptions,
  type PemSource,
} from './source.js';

/** A loaded private key with the facts the signer reports. */
export interface LoadedPrivateKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  origin: KeyOrigin;
  repairs: Repair[];
  /** The absolute path, for file sources. */
  path?: string;
}

/**
 * Loads an Apple `.p8` (PKCS#8) or SEC1 P-256 private key from a file, an environment variable
 * or inline text, repairing mangled text that is still unambiguous.
 *
 * @example
 * const privateKey = await loadPrivateKey({ path: 'AuthKey_ABC123DEFG.p8' });
 */
export async function loadPrivateKey(
  source: PemSource,
  options: PemSignerOptions = {},
): Promise<KeyObject> {
  assertPemSource(source, 'loadPrivateKey');
  assertPassphraseOptions(options, 'loadPrivateKey');
  return (await readPrivateKey(source, options)).privateKey;
}

/** Loads a private key from a checked source and reports repairs through `onEvent`. */
export async function readPrivateKey(
  source: PemSource,
  options: PemSignerOptions,
): Promise<LoadedPrivateKey> {
  const { input, origin, path } = await readSource(source);
  const ownsInput = !('pem' in source);
  try {
    const passphrase = passphraseProvider(options, origin);
    const normalised = normaliseKeyInput(input, origin);
    const parsed =
      normalised.kind === 'jwk'
        ? { ...readJwk(normalised.value, origin, 'private'), encrypted: false }
        : await parsePrivateBlocks(normalised.blocks, passphrase.get, origin, normalised.repairs);

    reportLoad(options, origin, normalised.repairs, passphrase.given && !parsed.encrypted);
    const privateKey = parsed.privateKey as KeyObject;
    return { privateKey, publicKey: parsed.publicKey, origin, repairs: normalised.repairs, path };
  } finally {
    if (ownsInput && Buffer.isBuffer(input)) input.fill(0);
    forgetLastRegExpSubject();
  }
}

/**
 * Loads a P-256 public key for verifying: an SPKI `PUBLIC KEY` PEM, an X.509 certificate, an EC
 * JWK (or a JWK Set of one key), or the public half of a private key. A file that turns out to
 * contain a private key gets the signer's `key-file-permissions` warning when others can read it.
 *
 * @example
 * const publicKey = await loadPublicKey({ path: 'apple-siwa.pub.pem' });
 */
export async function loadPublicKey(
  source: PemSource,
  options: PemSignerOptions = {},
): Promise<KeyObject> {
  assertPemSource(source, 'loadPublicKey');
  assertPassphraseOptions(options, 'loadPublicKey');

  const { input, origin, path } = await readSource(source);
  const ownsInput = !('pem' in source);
  try {
    const normalised = normaliseKeyInput(input, origin);
    const passphrase = passphraseProvider(options, origin);
    // The parser requests the passphrase only to decrypt a private key. A passphrase that it
    // never requested was not needed, as with a public key or a plain private key.
    let passphraseRequested = false;
    const getPassphrase = () => {
      passphraseRequested = true;
      return passphrase.get();
    };
    const parsed =
      normalised.kind === 'jwk'
        ? publicKeyOfJwk(normalised.value, origin)
        : await parsePublicBlocks(normalised.blocks, getPassphrase, origin, normalised.repairs);
    reportLoad(options, origin, normalised.repairs, passphrase.given && !passphraseRequested);
    // Decided by what was parsed, not by scanning the text, because DER, UTF-16 and JWK input
    // can contain a private key without any "PRIVATE KEY" text.
    if (path !== undefined && parsed.fromPrivateKey) {
      reportKeyFilePermissions(path, origin.keyId, options);
    }
    return parsed.publicKey;
  } finally {
    if (ownsInput && Buffer.isBuffer(input)) input.fill(0);
    forgetLastRegExpSubject();
  }
}

function publicKeyOfJwk(value: Record<string, unknown>, origin: KeyOrigin): ParsedPublicKey {
  const keys = readJwk(value, origin, 'public');
  return { publicKey: keys.publicKey, fromPrivateKey: keys.privateKey !== undefined };
}

/**
 * Points the RegExp legacy static properties at an empty string. Without this, `RegExp.input`
 * keeps the key text of the last normalisation step alive for as long as the process runs.
 */
function forgetLastRegExpSubject(): void {
  // Called through Reflect.apply, because bundlers drop a bare `/(?:)/.exec('')` as pure.
  Reflect.apply(RegExp.prototype.exec, emptyPattern, ['']);
}

const emptyPattern = /(?:)/;

function passphraseProvider(options: PemSignerOptions, origin: KeyOrigin) {
  const given = options.passphrase !== undefined || options.passphraseEnv !== undefined;
  // Resolved only for an encrypted key, so an unset passphrase variable cannot break a plain key.
  return { given, get: () => resolvePassphrase(options, origin) };
}

function reportLoad(
  options: PemSignerOptions,
  origin: KeyOrigin,
  repairs: Repair[],
  passphraseUnused: boolean,
): void {
  if (repairs.length > 0) {
    emitEvent(options, { type: 'key-normalised', keyId: origin.keyId, repairs: [...repairs] });
  }
  if (passphraseUnused) {
    emitEvent(options, {
      type: 'warning',
      reason: 'passphrase-unused',
      keyId: origin.keyId,
      message: passphraseUnusedMessage(options, origin),
    });
  }
}

/** Describes the unneeded passphrase, and names its variable when that is unset or empty. */
function passphraseUnusedMessage(options: PemSignerOptions, origin: KeyOrigin): string {
  const name = options.passphraseEnv;
  if (name === undefined) {
    return `A passphrase was given, but ${origin.description} is not encrypted.`;
  }

  const variable = shortenForMessage(name);
  const value = process.env[name];
  if (value === undefined || value === '') {
    const state = value === undefined ? 'is not set' : 'is empty';
    return (
      `passphraseEnv names ${variable}, which ${state}, and ${origin.description} is not ` +
      'encrypted, so no passphrase is needed.'
    );
  }
  return `A passphrase was given in ${variable}, but ${origin.description} is not encrypted.`;
}
