/**
 * Key references for local keys: `file:PATH`, a bare path, a `file://` URL (RFC 8089) and
 * `env:NAME`. A relative path is resolved against the working directory, and a leading `~/`
 * against the home directory, because a shell does not expand `~` after `file:`.
 */
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KmsJwtError } from '../../src/errors.js';
import type { KeyReference } from '../../src/key-uri.js';
import type { PemSource } from './source.js';

const environmentNamePattern = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Turns a parsed `file:` or `env:` reference into a key source.
 *
 * @example
 * pemSourceFromReference(parseKeyReference('env:APPLE_KEY')); // { env: 'APPLE_KEY' }
 */
export function pemSourceFromReference(reference: KeyReference): PemSource {
  if (reference.scheme === 'env') return { env: parseEnvironmentName(reference.rest) };
  if (reference.scheme === 'file') return { path: resolveKeyPath(reference.rest) };
  throw new KmsJwtError(
    'ERR_KEY_REFERENCE_SCHEME',
    `The pem adapter reads file: and env: references, not "${reference.scheme}:".`,
    { details: { scheme: reference.scheme } },
  );
}

/**
 * Resolves the path part of a `file:` reference to an absolute path.
 *
 * @example
 * resolveKeyPath('~/keys/AuthKey_ABC123DEFG.p8'); // '/home/me/keys/AuthKey_ABC123DEFG.p8'
 */
export function resolveKeyPath(rest: string): string {
  if (rest.trim() === '') throw invalid('file: needs a path, as in file:./AuthKey_ABC123DEFG.p8');
  if (rest.startsWith('//')) return fileUrlToPath(rest);
  if (rest === '~' || rest.startsWith('~/')) return resolve(homedir(), rest.slice(2));
  return resolve(rest);
}

function fileUrlToPath(rest: string): string {
  try {
    return fileURLToPath(`file:${rest}`);
  } catch {
    throw invalid('the file:// URL is not a local file URL; write file:///absolute/path');
  }
}

function parseEnvironmentName(rest: string): string {
  if (environmentNamePattern.test(rest)) return rest;
  throw invalid(
    'env: needs the name of an environment variable (letters, digits and "_", not starting ' +
      'with a digit), as in env:APPLE_PRIVATE_KEY',
  );
}

function invalid(problem: string): KmsJwtError {
  return new KmsJwtError('ERR_KEY_REFERENCE_INVALID', `Invalid pem key reference: ${problem}.`, {
    details: { adapter: 'pem' },
  });
}
