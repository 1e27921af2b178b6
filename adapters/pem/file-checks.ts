/**
 * Facts about key files that the CLI reports: loose file permissions, and the key ID in an
 * Apple key file name. Apple names downloaded keys `AuthKey_<KEYID>.p8`; it does not promise
 * that name in a specification, so it is only a default that a given key ID overrides.
 */
import { realpathSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { emitEvent, type RuntimeOptions } from '../../src/signer.js';
import { resolveKeyPath } from './reference.js';

// A browser saves a second download of the same file as "AuthKey_ABC123DEFG (1).p8".
const appleKeyFilePattern = /^AuthKey_([A-Z0-9]{10})(?: \(\d+\))?\.p8$/;

/**
 * Returns a warning when a key file can be read or written by its group or by others, or
 * undefined when the mode is tight, the file cannot be examined, or the platform is Windows,
 * where POSIX mode bits do not describe access.
 *
 * @example
 * describeKeyFilePermissions('AuthKey_ABC123DEFG.p8');
 * // 'Key file /home/me/AuthKey_ABC123DEFG.p8 is readable by group and others (mode 0644). ...'
 */
export function describeKeyFilePermissions(path: string): string | undefined {
  if (process.platform === 'win32') return undefined;

  let absolute: string;
  let mode: number;
  try {
    absolute = resolveKeyPath(stripFileScheme(path));
    const stats = statSync(absolute);
    if (!stats.isFile()) return undefined;
    mode = stats.mode & 0o777;
  } catch {
    // A missing or unreadable file is reported by the loader with a coded error.
    return undefined;
  }

  const problems = listLooseBits(mode);
  if (problems.length === 0) return undefined;
  const octal = mode.toString(8).padStart(4, '0');
  const target = realPathOf(absolute);
  return (
    `Key file ${absolute}${target === absolute ? '' : ` (${target})`} is ` +
    `${problems.join(' and ')} (mode ${octal}). Restrict it with: chmod 600 ${quoteForShell(target)}`
  );
}

/**
 * Returns the file that a path resolves to, so that the chmod command names the file itself. For
 * `/dev/stdin` redirected from a key file, chmod on the path given would change the shell's own
 * stdin, usually the terminal.
 */
function realPathOf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/**
 * Reports a `key-file-permissions` warning event when the private key file at `path` can be
 * read or written by its group or by others.
 *
 * @example
 * reportKeyFilePermissions('/keys/AuthKey_ABC123DEFG.p8', 'file:/keys/AuthKey_ABC123DEFG.p8', {
 *   onEvent: (event) => console.warn(event.message),
 * });
 */
export function reportKeyFilePermissions(
  path: string,
  keyId: string,
  options: RuntimeOptions,
): void {
  const message = describeKeyFilePermissions(path);
  if (message === undefined) return;
  emitEvent(options, { type: 'warning', reason: 'key-file-permissions', keyId, message });
}

function listLooseBits(mode: number): string[] {
  const readers = [mode & 0o040 ? 'group' : '', mode & 0o004 ? 'others' : ''].filter(Boolean);
  const writers = [mode & 0o020 ? 'group' : '', mode & 0o002 ? 'others' : ''].filter(Boolean);
  const problems: string[] = [];
  if (readers.length > 0) problems.push(`readable by ${readers.join(' and ')}`);
  if (writers.length > 0) problems.push(`writable by ${writers.join(' and ')}`);
  return problems;
}

function quoteForShell(path: string): string {
  return /^[A-Za-z0-9_./-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
}

/**
 * Returns the Apple key ID from a file named `AuthKey_<KEYID>.p8`, or undefined for any other
 * name. Accepts a path or a `file:` reference.
 *
 * @example
 * keyIdFromFileName('/secrets/AuthKey_ABC123DEFG.p8'); // 'ABC123DEFG'
 */
export function keyIdFromFileName(path: string): string | undefined {
  if (typeof path !== 'string') return undefined;
  const match = appleKeyFilePattern.exec(basename(stripFileScheme(path).replace(/\\/g, '/')));
  return match?.[1];
}

function stripFileScheme(path: string): string {
  return path.startsWith('file:') ? path.slice(5) : path;
}
