/**
 * `kms-jwt inspect TOKEN [--kind KIND]`: decodes a token without a key, prints its header and
 * claims with readable times, then checks it against its kind's profile and prints each problem
 * on its own line with the Apple error it would cause. It exits 1 when it finds any problem.
 */
import { escapeControlCharacters } from '../../apple/identifiers.js';
import { maxListedNames, shortName } from '../../apple/name-lists.js';
import type { AppleTokenKind, AppleTokenProblem } from '../../apple/types.js';
import { booleanValue, parseCommandArgs, stringValue, type FlagSpec } from '../args.js';
import { exitCodes, formatErrorLine, quotedWord, registerSecret, usageError } from '../errors.js';
import type { CliIo } from '../io.js';
import { formatNumericDate, readTokenArgument } from '../token-text.js';

const flags: Record<string, FlagSpec> = {
  kind: { type: 'string' },
  json: { type: 'boolean' },
};

const help = `Usage: kms-jwt inspect TOKEN [--kind KIND] [--json]

Decodes the token's header and claims, prints NumericDate claims with readable times, and checks
the token against the rules of its Apple token kind: lifetime, aud, the shape of kid and iss,
an iat ahead of the clock, times that are not integer seconds, a DER-sized signature, and
missing or extra fields. The signature itself is not checked; use "kms-jwt verify" for that.
TOKEN "-" reads the token from stdin, which keeps it out of ps output and shell history.

Options:
  --kind KIND   Check against this kind instead of the one worked out from the claims
                ("kms-jwt mint --help" lists the kinds)
  --json        Print the decoded token and the problems as JSON
  -h, --help    Show this help

Exits 0 when no problem is found, and 1 when any problem (error or warning) is found.
`;

/** Times that RFC 7519 §4.1 defines as NumericDate. */
const numericDateClaims = new Set(['iat', 'exp', 'nbf']);

/**
 * Runs `inspect` with the arguments after the command name.
 *
 * @example
 * await run(['-', '--kind', 'client-secret'], io);
 */
export async function run(args: string[], io: CliIo): Promise<number> {
  const parsed = parseCommandArgs('inspect', args, flags, 1);
  if (booleanValue(parsed, 'help')) {
    io.out(help);
    return exitCodes.ok;
  }

  const { appleTokenProfiles, inspectAppleToken } = await import('../../apple/index.js');
  const kind = stringValue(parsed, 'kind');
  if (kind !== undefined && !Object.hasOwn(appleTokenProfiles, kind)) {
    const kinds = Object.keys(appleTokenProfiles).join(', ');
    const shown = quotedWord(kind) ?? '(not shown, because it is not a kind name)';
    throw usageError('inspect', `Unknown token kind ${shown}; the kinds are ${kinds}`);
  }

  const token = await readTokenArgument('inspect', parsed.positionals[0], io);
  registerSecret(token);
  let report: ReturnType<typeof inspectAppleToken>;
  try {
    report = inspectAppleToken(token, { kind: kind as AppleTokenKind | undefined, now: io.now });
  } catch (error) {
    // A token that cannot be decoded is itself the problem found.
    io.note(formatErrorLine(error));
    return exitCodes.invalid;
  }

  const output = booleanValue(parsed, 'json')
    ? `${JSON.stringify(report, null, 2)}\n`
    : formatReport(report, io);
  io.out(escapeEachLine(output));
  return report.problems.length === 0 ? exitCodes.ok : exitCodes.invalid;
}

/**
 * Escapes control characters that came from the token, which may come from anyone, so that they
 * cannot act on the terminal. It works line by line to keep the report's own line breaks. In
 * JSON, such characters occur only inside strings, where the `\uXXXX` escape decodes to the same
 * value.
 */
function escapeEachLine(text: string): string {
  return text.split('\n').map(escapeControlCharacters).join('\n');
}

interface Report {
  kind: AppleTokenKind | undefined;
  kindGuess?: string;
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  signatureLength: number;
  problems: AppleTokenProblem[];
}

function formatReport(report: Report, io: CliIo): string {
  const nowMs = io.now();
  const guess =
    report.kindGuess === undefined
      ? ''
      : ` (a guess, because ${report.kindGuess}; pass --kind to be sure)`;
  const lines = [
    `kind: ${report.kind ?? 'unknown (no kind matches the claims; pass --kind)'}${guess}`,
  ];
  lines.push('header:', ...members(report.header, 'fields', () => undefined));
  lines.push('claims:');
  lines.push(
    ...members(report.claims, 'claims', (name, value) =>
      numericDateClaims.has(name) ? formatNumericDate(value, nowMs) : undefined,
    ),
  );
  lines.push(
    `signature: ${report.signatureLength} bytes${report.signatureLength === 64 ? ' (r||s)' : ''}`,
  );

  if (report.problems.length === 0) lines.push('problems: none');
  else lines.push(`problems: ${report.problems.length}`, ...report.problems.map(formatProblem));
  return `${lines.join('\n')}\n`;
}

/**
 * Lists the first 20 members, each name cut to 64 characters, and counts the rest, so that a
 * token with thousands of names, or very long ones, cannot flood the terminal. `--json` keeps
 * them all.
 */
function members(
  object: Record<string, unknown>,
  noun: string,
  format: (name: string, value: unknown) => string | undefined,
): string[] {
  const entries = Object.entries(object);
  const lines = entries
    .slice(0, maxListedNames)
    .map(
      ([name, value]) =>
        `  ${escapeControlCharacters(shortName(name))}: ${format(name, value) ?? JSON.stringify(value)}`,
    );
  const hidden = entries.length - lines.length;
  if (hidden > 0) lines.push(`  … and ${hidden} more ${noun} (pass --json to see them all)`);
  return lines;
}

function formatProblem(problem: AppleTokenProblem): string {
  const apple = problem.appleError === undefined ? '' : ` (Apple: ${problem.appleError})`;
  const rule = `[${problem.rule}, ${problem.source}]`;
  const field = escapeControlCharacters(problem.field);
  return `  ${problem.severity} ${field} ${rule}: ${problem.message}${apple}`;
}
