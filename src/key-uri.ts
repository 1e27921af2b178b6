/**
 * Key references: one parser for every backend. A reference is `SCHEME:REST`, where the scheme
 * picks the adapter and REST is handed to that adapter's parser. Without a scheme, or with a
 * one-letter "scheme" such as `C:`, the reference is a file path. Adapters whose references
 * carry attributes use the RFC 7512 layout: `;`-separated path attributes, then `?` and
 * `&`-separated query attributes, each `name=value` with percent-encoding.
 *
 * The scheme-to-adapter map lives on `globalThis` under `Symbol.for`, so the ESM and CJS builds
 * share one registry when both are loaded.
 */
import { KmsJwtError } from './errors.js';
import { shortenForMessage } from './message-text.js';
import type { RuntimeOptions, Signer } from './signer.js';
import type { KeyObject } from 'node:crypto';

/** A key reference split into its scheme and the adapter-specific rest. */
export interface KeyReference {
  /** Lower-case scheme, such as `file`, `env`, `awskms`, `gcpkms` or `pkcs11`. */
  scheme: string;
  /** Everything after `SCHEME:`, or the whole path when the reference had no scheme. */
  rest: string;
  /** The reference as given. */
  raw: string;
}

/** Options passed through to an adapter. Each adapter documents the fields it reads. */
export interface AdapterOptions extends RuntimeOptions {
  [option: string]: unknown;
}

/** The request `importKey` receives: the private key from a `.p8` and where to put it. */
export interface ImportRequest {
  privateKey: KeyObject;
  target: KeyReference;
  /** Replace an existing key or object with the same name instead of refusing. */
  overwrite?: boolean;
  options?: AdapterOptions;
}

/** The outcome of a proven import. */
export interface ImportResult {
  /** The key reference to use from now on. */
  reference: string;
  /** The imported public key, already checked against the `.p8`. */
  publicKey: KeyObject;
  /** Backend facts to print, such as the key ARN. */
  details: Record<string, string>;
}

/** The shape every adapter module exports as `adapter`. */
export interface KeyAdapter {
  /** The adapter's folder name, such as `aws-kms`. */
  readonly name: string;
  createSigner(reference: KeyReference, options?: AdapterOptions): Promise<Signer>;
  importKey?(request: ImportRequest): Promise<ImportResult>;
}

/** Loads an adapter module on first use. */
export type AdapterLoader = () => Promise<KeyAdapter>;

const registryKey = Symbol.for('kms-jwt-signer.key-schemes');
const schemePattern = /^[A-Za-z][A-Za-z0-9+.-]*$/;

function builtInSchemes(): Map<string, AdapterLoader> {
  const pem: AdapterLoader = () => import('../adapters/pem/index.js').then((m) => m.adapter);
  const awsKms: AdapterLoader = () => import('../adapters/aws-kms/index.js').then((m) => m.adapter);
  const gcpKms: AdapterLoader = () => import('../adapters/gcp-kms/index.js').then((m) => m.adapter);
  const pkcs11: AdapterLoader = () => import('../adapters/pkcs11/index.js').then((m) => m.adapter);
  return new Map([
    ['file', pem],
    ['env', pem],
    ['awskms', awsKms],
    ['gcpkms', gcpKms],
    ['cloudkms', gcpKms],
    ['pkcs11', pkcs11],
  ]);
}

function registry(): Map<string, AdapterLoader> {
  const store = globalThis as { [registryKey]?: Map<string, AdapterLoader> };
  store[registryKey] ??= builtInSchemes();
  return store[registryKey];
}

/**
 * Adds or replaces the adapter for a scheme, for example a signer for an in-house service.
 *
 * @example
 * registerKeyScheme('vault', async () => ({ name: 'vault', createSigner: createVaultSigner }));
 */
export function registerKeyScheme(scheme: string, loader: AdapterLoader): void {
  if (typeof scheme !== 'string' || !schemePattern.test(scheme) || scheme.length < 2) {
    throw new TypeError(
      `Key scheme ${JSON.stringify(scheme)} is invalid. A scheme is a letter followed by at least ` +
        'one more letter, digit, "+", "." or "-" (RFC 3986 §3.1), because one letter is a drive.',
    );
  }
  if (typeof loader !== 'function') {
    throw new TypeError(`The loader for key scheme "${scheme}" must be a function.`);
  }
  registry().set(scheme.toLowerCase(), loader);
}

/** Lists the registered schemes, for help text and error messages. */
export function listKeySchemes(): string[] {
  return [...registry().keys()];
}

/**
 * Splits a reference into scheme and rest. A reference with no valid scheme, or a one-letter
 * scheme (a Windows drive such as `C:`), is a file path. An empty reference, or a scheme with
 * nothing after it, raises `ERR_KEY_REFERENCE_INVALID`.
 *
 * @example
 * parseKeyReference('AWSKMS:alias/siwa'); // { scheme: 'awskms', rest: 'alias/siwa', ... }
 */
export function parseKeyReference(reference: string): KeyReference {
  if (typeof reference !== 'string') throw new TypeError('A key reference must be a string.');
  if (reference.trim() === '') {
    throw new KmsJwtError(
      'ERR_KEY_REFERENCE_INVALID',
      'The key reference is empty. Give a file path, file:PATH, env:NAME or a KMS reference.',
    );
  }

  const colon = reference.indexOf(':');
  const scheme = colon > 0 ? reference.slice(0, colon) : '';
  if (scheme.length < 2 || !schemePattern.test(scheme)) {
    return { scheme: 'file', rest: reference, raw: reference };
  }

  const rest = reference.slice(colon + 1);
  if (rest.trim() === '') {
    throw new KmsJwtError(
      'ERR_KEY_REFERENCE_INVALID',
      `The key reference "${shortenForMessage(scheme)}:" names no key: write the path, ` +
        `variable name or key identifier after the scheme.`,
      { details: { scheme: scheme.toLowerCase() } },
    );
  }
  return { scheme: scheme.toLowerCase(), rest, raw: reference };
}

/** Finds the adapter for a parsed reference, loading its module on first use. */
export async function loadAdapter(reference: KeyReference): Promise<KeyAdapter> {
  const loader = registry().get(reference.scheme);
  if (!loader) {
    throw new KmsJwtError(
      'ERR_KEY_REFERENCE_SCHEME',
      `The key reference scheme "${shortenForMessage(reference.scheme)}:" is not supported. ` +
        `Use one of ${listKeySchemes()
          .map((s) => `${s}:`)
          .join(', ')}, ` +
        'or prefix a file path that contains a colon with "file:".',
      { details: { scheme: reference.scheme } },
    );
  }
  return loader();
}

/**
 * Creates a signer from a key reference through the adapter registered for its scheme.
 *
 * @example
 * const signer = await createSigner('file:./AuthKey_ABC123DEFG.p8');
 */
export async function createSigner(reference: string, options?: AdapterOptions): Promise<Signer> {
  const parsed = parseKeyReference(reference);
  const adapter = await loadAdapter(parsed);
  return adapter.createSigner(parsed, options);
}

/** RFC 7512-style attributes: the path part before `?` and the query part after it. */
export interface ReferenceAttributes {
  path: Map<string, string>;
  query: Map<string, string>;
}

/**
 * Parses `name=value;name=value?name=value&name=value`, percent-decoding names and values.
 * A repeated attribute, an attribute without `=`, or a bad percent-escape raises
 * `ERR_KEY_REFERENCE_INVALID`, naming `label` (the adapter) in the message.
 */
export function parseReferenceAttributes(rest: string, label: string): ReferenceAttributes {
  const question = rest.indexOf('?');
  const pathPart = question === -1 ? rest : rest.slice(0, question);
  const queryPart = question === -1 ? '' : rest.slice(question + 1);
  return {
    path: parseAttributeList(pathPart, ';', label),
    query: parseAttributeList(queryPart, '&', label),
  };
}

function parseAttributeList(text: string, separator: string, label: string): Map<string, string> {
  const attributes = new Map<string, string>();
  for (const [index, item] of text.split(separator).entries()) {
    if (item === '') continue;
    const equals = item.indexOf('=');
    // Values are never echoed, because a pin-value attribute carries a secret.
    if (equals <= 0)
      throw invalidReference(label, `attribute ${index + 1} has no "name=value" form`);
    const name = decodeComponent(item.slice(0, equals), label, `attribute ${index + 1}`);
    const key = name.toLowerCase();
    if (attributes.has(key)) {
      throw invalidReference(label, `attribute "${shortenForMessage(key)}" is repeated`);
    }
    attributes.set(key, decodeComponent(item.slice(equals + 1), label, `the value of "${key}"`));
  }
  return attributes;
}

function decodeComponent(text: string, label: string, where: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw invalidReference(label, `${where} has an invalid percent-escape`);
  }
}

function invalidReference(label: string, problem: string): KmsJwtError {
  return new KmsJwtError(
    'ERR_KEY_REFERENCE_INVALID',
    `Invalid ${label} key reference: ${problem}. Percent-encode ";", "?", "&" and "=" inside values.`,
    { details: { adapter: label } },
  );
}
