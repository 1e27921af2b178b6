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
  if (spec === undefined) throw usageError(command, `Unknown option ${flag}`);

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
