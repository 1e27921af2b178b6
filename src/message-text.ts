/**
 * Shortening of long values, such as paths, before a message quotes them. A path can be far
 * longer than any file system accepts (Linux's PATH_MAX is 4096 bytes) when a script passes the
 * wrong value, and a message that repeats 100 KB of it buries the problem and the fix.
 */

/** The maximum length, in characters, of a value that a message quotes whole. */
export const maxQuotedLength = 200;
const headLength = 60;
const tailLength = 120;

/**
 * Returns `text` as it is when it has at most {@link maxQuotedLength} characters, and otherwise
 * its start and its end around a count of the characters cut out. The end is kept longer,
 * because a path's file name is there.
 *
 * @example
 * shortenForMessage(`/tmp/${'a'.repeat(1000)}.p8`);
 * // '/tmp/aa…aa[... 828 characters cut ...]aa…aa.p8': 60 characters, the count, 120 characters
 */
export function shortenForMessage(text: string): string {
  const characters = charactersIfLonger(text, maxQuotedLength);
  if (characters === undefined) return text;
  const head = characters.slice(0, headLength).join('');
  const tail = characters.slice(-tailLength).join('');
  const cut = characters.length - headLength - tailLength;
  return `${head}[... ${cut} characters cut ...]${tail}`;
}

/**
 * Splits `text` into its characters (code points) when it has more than `limit` of them, and
 * returns undefined when it fits. Messages cut long values by code point, so that a cut never
 * leaves half of a surrogate pair.
 *
 * @example
 * charactersIfLonger('abc', 2); // ['a', 'b', 'c']
 * charactersIfLonger('abc', 3); // undefined
 */
export function charactersIfLonger(text: string, limit: number): string[] | undefined {
  // A string of at most `limit` UTF-16 code units has at most `limit` code points.
  if (text.length <= limit) return undefined;
  const characters = Array.from(text);
  return characters.length > limit ? characters : undefined;
}
