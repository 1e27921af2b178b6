/**
 * The steps that the signer and the importer share: read the module path and the PIN, load and
 * initialise the module once per process, find the token by its attributes, and log in once.
 */
import { KmsJwtError } from '../../src/errors.js';
import type { Pkcs11Binding } from './binding.js';
import { resolveModulePath, resolvePin, type Pkcs11AccessOptions } from './config.js';
import {
  acquireModule,
  acquireToken,
  releaseModule,
  releaseToken,
  type ModuleEntry,
  type TokenEntry,
} from './module.js';
import { findToken } from './objects.js';
import { formatPathAttributes, type Pkcs11Uri } from './uri.js';

/** Options for reaching a token. */
export interface Pkcs11ConnectOptions extends Pkcs11AccessOptions {
  /** Try a login even when the token reports that one more wrong PIN will lock it. */
  allowFinalPinTry?: boolean;
}

/** A token in use, logged in when a PIN was found. `release` undoes every acquired step. */
export interface TokenConnection {
  binding: Pkcs11Binding;
  module: ModuleEntry;
  token: TokenEntry;
  modulePath: string;
  loggedIn: boolean;
  release(): void;
}

const queryAttributeNames = new Set(['module-path', 'pin-source', 'pin-value']);

/** Names the fix for unknown path attributes that are common slips, or returns ''. */
function describeFixes(uri: Pkcs11Uri): string {
  const fixes = uri.unknownPathAttributes.map((name) => {
    if (queryAttributeNames.has(name))
      return ` "${name}" is a query attribute: write it after "?".`;
    if (name === 'label') return " The key's label (CKA_LABEL) is matched by object=LABEL.";
    return '';
  });
  return fixes.join('');
}

/** Fails early for URIs that cannot match anything, before any native code is loaded. */
export function assertUriSelectsObject(uri: Pkcs11Uri): void {
  if (uri.unknownPathAttributes.length > 0) {
    const names = uri.unknownPathAttributes.map((name) => `"${name}"`).join(', ');
    throw new KmsJwtError(
      'ERR_PKCS11_KEY_NOT_FOUND',
      `${formatPathAttributes(uri)} matches no object, because it has the path attribute ` +
        `${names}, which this adapter does not know (RFC 7512: a URI with an unknown path ` +
        `attribute matches nothing). Remove it or fix its spelling.${describeFixes(uri)}`,
      { details: { unknownAttributes: uri.unknownPathAttributes } },
    );
  }
  if (uri.object === undefined && uri.id === undefined) {
    throw new KmsJwtError(
      'ERR_KEY_REFERENCE_INVALID',
      'Invalid pkcs11 key reference: it names no object. Add object=LABEL, id=%XX or both.',
      { details: { adapter: 'pkcs11' } },
    );
  }
}

/**
 * Loads the module, finds the token and logs in. On failure everything acquired so far is
 * released again.
 *
 * @example
 * const uri = parsePkcs11Uri('pkcs11:token=apple;object=siwa');
 * const connection = await connectToken(uri, { modulePath: '/usr/lib/softhsm/libsofthsm2.so' });
 */
export async function connectToken(
  uri: Pkcs11Uri,
  options: Pkcs11ConnectOptions,
): Promise<TokenConnection> {
  const modulePath = resolveModulePath(uri, options);
  const { pin } = await resolvePin(uri, options);
  const module = await acquireModule(modulePath, options);

  let token: TokenEntry;
  try {
    const found = findToken(module.binding, uri.filter);
    token = acquireToken(module, found.slot, found.label, pin, options);
  } catch (error) {
    releaseModule(module);
    throw error;
  }

  let released = false;
  return {
    binding: module.binding,
    module,
    token,
    modulePath,
    loggedIn: pin !== undefined,
    release() {
      if (released) return;
      released = true;
      releaseToken(module, token);
      releaseModule(module);
    },
  };
}
