/**
 * Argument parsing for every command, on `node:util` `parseArgs`. The parser runs with
 * `strict: false` and checks its tokens here, so that an error names the option at fault but
 * never echoes a value: a mistyped flag must not print the token or a key reference with a PIN.
 */
import { parseArgs } from 'node:util';
import { shortenForMessage } from '../message-text.js';
import { usageError } from './errors.js';

/** One command-line option. */
export interface FlagSpec {
  type: 'string' | 'boolean';
  /** The option may be repeated, and its values are collected in order. */
  multiple?: boolean;
  short?: string;
}

/** Parsed values by option name (as written, without `--`), and the positional arguments. */
export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/**
 * Parses `args` against `flags`, always accepting `--help` (`-h`), and rejects unknown options,
 * missing values, values given to a boolean option, repeats and extra positionals.
 *
 * @example
 * const flags = { key: { type: 'string' } };
 * const { values } = parseCommandArgs('verify', ['-', '--key', 'pub.pem'], flags, 1);
 */
export function parseCommandArgs(
  command: string,
  args: string[],
  flags: Record<string, FlagSpec>,
  maxPositionals: number,
): ParsedArgs {
  const options = { ...flags, help: { type: 'boolean', short: 'h' } as FlagSpec };
  const { values, positionals, tokens } = parseArgs({
    args,
    options,
    allowPositionals: true,
    strict: false,
    tokens: true,
  });

  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    assertOptionToken(command, options, token, seen);
  }

  if (values.help !== true && positionals.length > maxPositionals) {
    const expected = maxPositionals === 0 ? 'no arguments' : `at most ${maxPositionals}`;
    // A key path written without --key is the usual cause, so name the flag when it is missing.
    const hint = 'key' in flags && values.key === undefined ? '. Give the key with --key REF' : '';
    throw usageError(
      command,
      `Too many arguments: ${command} takes ${expected}, but got ${positionals.length}${hint}`,
    );
  }
  return { values, positionals };
}

interface OptionToken {
  name: string;
  rawName: string;
  value?: string | undefined;
  inlineValue?: boolean | undefined;
}

function assertOptionToken(
  command: string,
  options: Record<string, FlagSpec>,
  token: OptionToken,
  seen: Set<string>,
): void {
  const spec = options[token.name];
  const flag = shortenForMessage(token.rawName);
  if (spec === undefined) {
    const nearest = findNearestOption(token.name, Object.keys(options));
    const hint = nearest === undefined ? '' : ` (the nearest option is --${nearest})`;
    throw usageError(command, `Unknown option ${flag}${hint}`);
  }

  if (spec.type === 'boolean' && token.inlineValue) {
    throw usageError(command, `Option ${flag} takes no value`);
  }
  if (spec.type === 'string' && token.value === undefined) {
    throw usageError(command, `Option ${flag} needs a value`);
  }
  if (spec.type === 'string' && !token.inlineValue && /^--?[A-Za-z]/.test(token.value ?? '')) {
    // parseArgs takes the next argument as the value, even when it is another option.
    throw usageError(command, `Option ${flag} needs a value, but the next argument is an option`);
  }

  if (seen.has(token.name) && !spec.multiple) {
    throw usageError(command, `Option ${flag} is given more than once`);
  }
  seen.add(token.name);
}

/**
 * Finds the option a mistyped name most likely meant: the same name in another case or without
 * dashes (`--teamId`, `--key_id`), a name one is a prefix of (`--passphrase`, `--audience`), or
 * one at most two edits away (`--formt`). Returns undefined when none is that close.
 *
 * @example
 * findNearestOption('clientid', ['team-id', 'client-id']); // 'client-id'
 */
export function findNearestOption(name: string, optionNames: string[]): string | undefined {
  const normalize = (text: string) => text.toLowerCase().replace(/[-_]/g, '');
  const normalizedName = normalize(name);
  if (normalizedName.length < 3) return undefined;

  const candidates = optionNames.filter((option) => option !== 'help');
  const sameName = candidates.find((option) => normalize(option) === normalizedName);
  if (sameName !== undefined) return sameName;
  const prefixed = candidates.find((option) => {
    const normalizedOption = normalize(option);
    return (
      normalizedOption.length >= 3 &&
      (normalizedOption.startsWith(normalizedName) || normalizedName.startsWith(normalizedOption))
    );
  });
  if (prefixed !== undefined) return prefixed;

  let best: { option: string; distance: number } | undefined;
  for (const option of candidates) {
    const distance = editDistance(normalizedName, normalize(option));
    if (distance <= 2 && (best === undefined || distance < best.distance))
      best = { option, distance };
  }
  return best?.option;
}

/** Returns the Levenshtein distance: the insertions, deletions and substitutions from a to b. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** Returns a string option's value, or undefined when it was not given. */
export function stringValue(parsed: ParsedArgs, name: string): string | undefined {
  const value = parsed.values[name];
  return typeof value === 'string' ? value : undefined;
}

/** Returns a repeatable option's values, or an empty list. */
export function listValue(parsed: ParsedArgs, name: string): string[] {
  const value = parsed.values[name];
  if (Array.isArray(value)) return value;
  return typeof value === 'string' ? [value] : [];
}

/** Returns a required string option's value, or raises a usage error naming the option. */
export function requiredValue(parsed: ParsedArgs, command: string, name: string): string {
  const value = stringValue(parsed, name);
  if (value === undefined || value === '')
    throw usageError(command, `Option --${name} is required`);
  return value;
}

/** Returns true when a boolean option was given. */
export function booleanValue(parsed: ParsedArgs, name: string): boolean {
  return parsed.values[name] === true;
}
