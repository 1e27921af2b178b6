/**
 * Repeated member names in a JOSE header or a JWT claims set. RFC 7519 §4 requires claim names
 * to be unique and RFC 7515 §4 header names likewise, but `JSON.parse` silently keeps the last
 * of two equal names while other parsers keep the first or reject the token. A token with a
 * repeated name can therefore mean one thing to this package and another to Apple.
 */

/**
 * Lists the member names that occur more than once in the top-level object of `json`, each
 * once, in order of their second occurrence. Names are compared after unescaping, so `"sub"`
 * and `"\u0073ub"` are equal. `json` must already have parsed as a JSON object.
 *
 * @example
 * repeatedMemberNames('{"aud":"a","aud":"b"}'); // ['aud']
 */
export function repeatedMemberNames(json: string): string[] {
  const seen = new Set<string>();
  const repeated = new Set<string>();
  let depth = 0;
  let expectingName = false;

  for (let index = 0; index < json.length; index++) {
    const character = json[index];
    if (character === '"') {
      const end = closingQuoteIndex(json, index);
      if (depth === 1 && expectingName) {
        const name = JSON.parse(json.slice(index, end + 1)) as string;
        if (seen.has(name)) repeated.add(name);
        seen.add(name);
        expectingName = false;
      }
      index = end;
    } else if (character === '{' || character === '[') {
      depth++;
      if (depth === 1) expectingName = true;
    } else if (character === '}' || character === ']') {
      depth--;
    } else if (character === ',' && depth === 1) {
      expectingName = true;
    }
  }
  return [...repeated];
}

/** Returns the index of the quote that closes the JSON string opening at `start`. */
function closingQuoteIndex(json: string, start: number): number {
  let index = start + 1;
  while (index < json.length && json[index] !== '"') index += json[index] === '\\' ? 2 : 1;
  return index;
}
