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
  if (text.length <= maxQuotedLength) return text;

  // Code points, so that a cut never splits a surrogate pair.
  const characters = Array.from(text);
  if (characters.length <= maxQuotedLength) return text;
  const head = characters.slice(0, headLength).join('');
  const tail = characters.slice(-tailLength).join('');
  const cut = characters.length - headLength - tailLength;
  return `${head}[... ${cut} characters cut ...]${tail}`;
}
