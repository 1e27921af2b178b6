/**
 * Header field and claim names from a token under inspection, shown in problems and reports.
 * A token may carry thousands of names, each of any length, so reports list the first 20 and
 * count the rest, and cut each name to 64 characters.
 */
import { charactersIfLonger } from '../message-text.js';

/** How many names from a token a report lists one by one before it counts the rest. */
export const maxListedNames = 20;

/** How many characters (code points) of a name from a token a report shows. */
export const maxNameLength = 64;

/**
 * Cuts a name from a token to its first 64 characters, then `…` and the full length. It counts
 * code points, so that a cut never splits a surrogate pair.
 *
 * @example
 * shortName('sub'); // 'sub'
 * shortName('x'.repeat(100)); // 'xxxx…x… (100 characters)', with 64 x's
 */
export function shortName(name: string): string {
  const characters = charactersIfLonger(name, maxNameLength);
  if (characters === undefined) return name;
  return `${characters.slice(0, maxNameLength).join('')}… (${characters.length} characters)`;
}

/**
 * Joins names from a token for a message: the first 20, each cut by {@link shortName}, then
 * "and N more".
 *
 * @example
 * listNames(['alg', 'kid']); // 'alg, kid'
 */
export function listNames(names: readonly string[]): string {
  const listed = names.slice(0, maxListedNames).map(shortName);
  const hidden = names.length - listed.length;
  return hidden > 0 ? `${listed.join(', ')} and ${hidden} more` : listed.join(', ');
}
