/**
 * Durations written the way people type them on a command line: `180d`, `12h`, `20m`, `3600s`,
 * a bare number of seconds, or a sequence such as `1h30m`. Token lifetimes and clock-skew
 * allowances are whole seconds, so fractions and milliseconds are rejected.
 */
import { ClaimsError } from './errors.js';

const unitSeconds: Readonly<Record<string, number>> = {
  s: 1,
  m: 60,
  h: 3600,
  d: 86_400,
  w: 604_800,
};
const wholePattern = /^(?:\d+[smhdw])+$/;
const partPattern = /(\d+)([smhdw])/g;

/**
 * Parses a duration into whole seconds, or throws `ERR_DURATION_INVALID`.
 *
 * @example
 * parseDuration('180d'); // 15552000
 * parseDuration('1h30m'); // 5400
 * parseDuration('3600'); // 3600
 */
export function parseDuration(text: string): number {
  if (typeof text !== 'string') throw new TypeError('parseDuration expects a string.');
  if (/^\d+$/.test(text)) return checkedSeconds(Number(text), text);
  if (!wholePattern.test(text)) throw invalidDuration(text);

  let seconds = 0;
  for (const [, amount, unit] of text.matchAll(partPattern)) {
    seconds += Number(amount) * unitSeconds[unit!]!;
  }
  return checkedSeconds(seconds, text);
}

function checkedSeconds(seconds: number, text: string): number {
  if (Number.isSafeInteger(seconds)) return seconds;
  throw invalidDuration(text);
}

function invalidDuration(text: string): ClaimsError {
  const shown = JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
  return new ClaimsError(
    'ERR_DURATION_INVALID',
    `Invalid duration ${shown}: write whole seconds ("3600") or whole numbers with the units ` +
      's, m, h, d or w, such as "180d", "12h", "20m" or "1h30m".',
    { details: { value: text.slice(0, 40) } },
  );
}
