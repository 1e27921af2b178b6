/**
 * Key text normalisation. Keys reach us through files, environment variables, secret stores and
 * form fields, and arrive mangled in a few well-known ways: a literal `\n` for each line break,
 * CRLF or CR line endings, lost line breaks, surrounding quotes, a JSON string, a byte order mark
 * or indentation. Each repair here is one that cannot change the key: base64 and PEM armour never
 * contain a backslash, a quote or a byte order mark, and RFC 7468 §3 lets parsers ignore
 * whitespace inside a PEM body. What cannot be repaired without guessing is rejected with a coded
 * error. Repairs are reported by name, never with the text they touched.
 */
import { keyError, type KeyOrigin } from './errors.js';
import { extractPemBlocks, type PemBlock } from './armour.js';
import { addRepair, type Repair } from './repairs.js';

/** Normalised key input: DER blocks from PEM, bare base64 or binary DER, or a parsed JWK. */
export type KeyInput =
  | { kind: 'der'; blocks: PemBlock[]; repairs: Repair[] }
  | { kind: 'jwk'; value: Record<string, unknown>; repairs: Repair[] };

export type { PemBlock } from './armour.js';
export type { Repair } from './repairs.js';

// Quoting layers seen in practice: a dotenv value in quotes holding a JSON string, for example.
const maxUnwrapDepth = 4;

/**
 * Turns raw key input into DER blocks or a JWK, repairing the unambiguous manglings.
 *
 * @example
 * normaliseKeyInput('"-----BEGIN PRIVATE KEY-----\\nMIGH...\\n-----END PRIVATE KEY-----"', origin);
 * // { kind: 'der', blocks: [{ label: 'PRIVATE KEY', der }], repairs: ['json-string'] }
 */
export function normaliseKeyInput(
  input: Buffer | Uint8Array | string,
  origin: KeyOrigin,
): KeyInput {
  const repairs: Repair[] = [];
  const decoded = decodeInput(input, repairs, origin);
  if (decoded instanceof Uint8Array) {
    return { kind: 'der', blocks: [{ label: undefined, der: decoded }], repairs };
  }

  const unwrapped = unwrapText(decoded, repairs, origin);
  if (typeof unwrapped !== 'string') return { kind: 'jwk', value: unwrapped, repairs };

  const text = normaliseLineBreaks(unescapeText(unwrapped, repairs), repairs).trim();
  if (text === '') throw emptyKey(origin);
  return { kind: 'der', blocks: extractPemBlocks(text, repairs, origin), repairs };
}

function decodeInput(input: Uint8Array | string, repairs: Repair[], origin: KeyOrigin) {
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else if (isBinaryDer(input)) {
    addRepair(repairs, 'binary-der');
    return Buffer.from(input);
  } else {
    text = decodeBytes(input, repairs, origin);
  }

  if (text.charCodeAt(0) === 0xfeff) {
    addRepair(repairs, 'byte-order-mark');
    text = text.slice(1);
  }
  return text;
}

function isBinaryDer(bytes: Uint8Array): boolean {
  // DER starts with a SEQUENCE tag (0x30, the digit "0" in ASCII), so the bytes count as DER
  // only when they also hold a byte that no PEM text contains.
  if (bytes[0] !== 0x30) return false;
  return bytes.some(
    (byte) => (byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) || byte > 0x7e,
  );
}

function decodeBytes(bytes: Uint8Array, repairs: Repair[], origin: KeyOrigin): string {
  // Windows tools write "Unicode" text as UTF-16 with a byte order mark.
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    addRepair(repairs, 'utf-16');
    const littleEndian = Buffer.from(bytes.subarray(2));
    if (bytes[0] === 0xfe) littleEndian.swap16();
    return littleEndian.toString('utf16le');
  }

  try {
    // ignoreBOM keeps a byte order mark in the text, so that its removal is reported as a repair.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw keyError(
      'ERR_KEY_NOT_PEM',
      origin,
      'the key is neither UTF-8 text nor DER. Export it as PEM (a PKCS#8 .p8 file).',
    );
  }
}

function unwrapText(text: string, repairs: Repair[], origin: KeyOrigin) {
  let current = trimSurrounding(text, repairs);
  for (let depth = 0; depth < maxUnwrapDepth; depth++) {
    const jsonValue = parseJsonWrapper(current, origin);
    if (jsonValue !== undefined && typeof jsonValue !== 'string') return jsonValue;
    if (typeof jsonValue === 'string') {
      addRepair(repairs, 'json-string');
      current = trimSurrounding(jsonValue, repairs);
      continue;
    }

    const quote = current.charAt(0);
    if (current.length < 2 || !`"'\``.includes(quote) || !current.endsWith(quote)) break;
    addRepair(repairs, 'quotes');
    current = trimSurrounding(current.slice(1, -1), repairs);
  }
  if (current === '') throw emptyKey(origin);
  return current;
}

function trimSurrounding(text: string, repairs: Repair[]): string {
  const trimmed = text.trim();
  // A final line break (LF, CRLF or CR) is the normal end of a file, not a repair.
  if (trimmed !== '' && trimmed !== text.replace(/(?:\r\n|\r|\n)$/, '')) {
    addRepair(repairs, 'surrounding-whitespace');
  }
  return trimmed;
}

/** Parses a JSON string or object. Returns undefined when the text is neither. */
function parseJsonWrapper(text: string, origin: KeyOrigin) {
  const isObject = text.startsWith('{') && text.endsWith('}');
  const isString = text.startsWith('"') && text.endsWith('"') && text.length >= 2;
  if (!isObject && !isString) return undefined;

  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // The SyntaxError quotes the input, so it is dropped rather than kept as the cause.
    if (isString) return undefined;
    throw keyError(
      'ERR_KEY_NOT_PEM',
      origin,
      'the text starts with "{" but is not valid JSON. Give a PEM key or a JWK.',
    );
  }

  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    return value as Record<string, unknown>;
  }
  return undefined;
}

function unescapeText(text: string, repairs: Repair[]): string {
  if (!text.includes('\\')) return text;

  // One or more backslashes before n or r: "\n", the double-escaped "\\n", "\r\n" and so on.
  let result = text.replace(/\\+(?:r\\+n|n|r)/g, '\n');
  if (result !== text) addRepair(repairs, 'escaped-newlines');

  // Some JSON encoders write "/" as "\/", and "/" is a base64 character.
  const unslashed = result.replace(/\\+\//g, '/');
  if (unslashed !== result) addRepair(repairs, 'escaped-slashes');
  result = unslashed;
  return result;
}

function normaliseLineBreaks(text: string, repairs: Repair[]): string {
  let result = text;
  if (result.includes('\r\n')) {
    addRepair(repairs, 'crlf');
    result = result.replace(/\r\n/g, '\n');
  }
  if (result.includes('\r')) {
    addRepair(repairs, 'cr');
    result = result.replace(/\r/g, '\n');
  }
  return result;
}

function emptyKey(origin: KeyOrigin) {
  return keyError(
    'ERR_KEY_EMPTY',
    origin,
    'the key is empty (no text, or only whitespace and quotes). Check that the file or variable ' +
      'holds the PEM text of the key.',
  );
}
