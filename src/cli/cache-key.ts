/**
 * The name under which `--cache FILE` stores a token: the kind, every field value and a SHA-256
 * hash of the key reference, so that a token is reused only for the same input and the same key.
 * The reference is normalised first: a file path is made absolute, and a `pkcs11:` reference
 * loses its PIN and its other login attributes, so that the file holds no hash of a PIN.
 */
import { createHash } from 'node:crypto';
import type { AppleTokenKind } from '../apple/types.js';
import { parseKeyReference } from '../key-uri.js';
import { localKeyPath } from './keys.js';

/**
 * Builds the cache key of one mint. The key reference appears only as a SHA-256 hex digest.
 *
 * @example
 * cacheKeyFor('client-secret', { teamId: 'DEF123GHIJ' }, 'AuthKey_ABC123DEFG.p8');
 * // 'client-secret:[["teamId","DEF123GHIJ"]]:key-sha256:3f5a…'
 */
export function cacheKeyFor(
  kind: AppleTokenKind,
  values: Record<string, unknown>,
  reference: string,
): string {
  // Object keys are unique, so no two entries compare equal.
  const entries = Object.entries(values).sort(([a], [b]) => (a < b ? -1 : 1));
  const keyHash = createHash('sha256').update(normaliseKeyReference(reference)).digest('hex');
  return `${kind}:${JSON.stringify(entries)}:key-sha256:${keyHash}`;
}

/**
 * Rewrites a key reference into the form that is hashed: `file:` and the absolute path for a
 * local key file, a `pkcs11:` URI without `pin-value`, `pin-source` and vendor `x-` attributes,
 * and any other reference with its scheme in lower case.
 *
 * @example
 * normaliseKeyReference('pkcs11:token=apple;object=siwa?pin-value=1234');
 * // 'pkcs11:token=apple;object=siwa'
 */
export function normaliseKeyReference(reference: string): string {
  const parsed = parseKeyReference(reference);
  if (parsed.scheme === 'file') return `file:${localKeyPath(reference)}`;
  if (parsed.scheme === 'pkcs11') return `pkcs11:${withoutLoginAttributes(parsed.rest)}`;
  return `${parsed.scheme}:${parsed.rest}`;
}

/**
 * Drops the query attributes that choose how to log in rather than which key to use (RFC 7512
 * `pin-value` and `pin-source`, and `x-` vendor attributes, which the pkcs11 adapter ignores).
 * Any attribute whose text contains `pin-value=` goes too: the adapter rejects such a reference,
 * but a PIN must not reach the hash even then.
 */
function withoutLoginAttributes(rest: string): string {
  const question = rest.indexOf('?');
  const pathPart = question === -1 ? rest : rest.slice(0, question);
  const queryPart = question === -1 ? '' : rest.slice(question + 1);

  const path = pathPart.split(';').filter((item) => !isPinText(item));
  const query = queryPart.split('&').filter((item) => item !== '' && !isLoginAttribute(item));
  return query.length === 0 ? path.join(';') : `${path.join(';')}?${query.join('&')}`;
}

function isLoginAttribute(item: string): boolean {
  const name = percentDecode(item.split('=', 1)[0]!).toLowerCase();
  return name === 'pin-source' || name.startsWith('x-') || isPinText(item);
}

function isPinText(item: string): boolean {
  const text = percentDecode(item).toLowerCase();
  return text.includes('pin-value=') || text === 'pin-value';
}

/** Decodes percent-escapes, or returns the text as it is when an escape is malformed. */
function percentDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
