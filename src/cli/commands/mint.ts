/**
 * `kms-jwt mint KIND`: mints any Apple token kind, with flags taken from the kind's profile.
 * `kms-jwt mint --help` lists the kinds, and `kms-jwt mint KIND --help` lists a kind's fields.
 */
import type { AppleTokenKind } from '../../apple/types.js';
import { quotedWord, usageError } from '../errors.js';
import type { CliIo } from '../io.js';
import { runMint } from '../mint-core.js';

/**
 * Runs `mint` with the arguments after the command name, the first being the kind.
 *
 * @example
 * await run(['apns', '--team-id', 'DEF123GHIJ', '--key', 'AuthKey_ABC123DEFG.p8'], io);
 */
export async function run(args: string[], io: CliIo): Promise<number> {
  const { appleTokenProfiles } = await import('../../apple/index.js');
  const [kind, ...rest] = args;
  if (kind === undefined || kind === '--help' || kind === '-h') {
    io.out(kindsHelp(appleTokenProfiles));
    return 0;
  }
  if (kind.startsWith('-')) throw usageError('mint', 'KIND is missing before the options', 'kinds');
  if (!Object.hasOwn(appleTokenProfiles, kind)) {
    const kinds = Object.keys(appleTokenProfiles).join(', ');
    const shown = quotedWord(kind) ?? '(not shown, because it is not a kind name)';
    throw usageError('mint', `Unknown token kind ${shown}; the kinds are ${kinds}`, 'kinds');
  }
  return runMint(kind as AppleTokenKind, `mint ${kind}`, rest, io);
}

function kindsHelp(profiles: Record<string, { summary: string }>): string {
  const names = Object.keys(profiles);
  const width = Math.max(...names.map((name) => name.length)) + 2;
  const rows = names.map((name) => `  ${name.padEnd(width)}${profiles[name]!.summary}`);
  return [
    'Usage: kms-jwt mint KIND --key REF [options]',
    '',
    'Mints an Apple ES256 token of one kind. "kms-jwt client-secret" is short for',
    '"kms-jwt mint client-secret".',
    '',
    'Kinds:',
    ...rows,
    '',
    'Run "kms-jwt mint KIND --help" for the fields of a kind.',
    '',
  ].join('\n');
}
