/**
 * PEM armour and base64 bodies (RFC 7468). Finds each `-----BEGIN LABEL-----` ...
 * `-----END LABEL-----` block in normalised text and decodes its body, or decodes a bare base64
 * body that lost its armour. The body may have lost its line breaks or use another line length,
 * because RFC 7468 §3 lets parsers ignore whitespace. Everything that would need a guess is
 * rejected: a BEGIN without its END, END labels that differ, padding in the middle of a body, or
 * base64 text outside the armour.
 */
import { keyError, type KeyOrigin } from './errors.js';
import { addRepair, type Repair } from './repairs.js';

/** One decoded PEM block. `label` is undefined for bare base64 and binary DER. */
export interface PemBlock {
  label: string | undefined;
  der: Buffer;
  /** The `DEK-Info` of a legacy OpenSSL-encrypted block (`Proc-Type: 4,ENCRYPTED`). */
  dekInfo?: string;
}

// Label words may be separated by any whitespace, because spaces and newlines get swapped.
const label = '[A-Z0-9]+(?:\\s+[A-Z0-9]+)*';
const blockPattern = new RegExp(
  `-----BEGIN (${label})-----([\\s\\S]*?)-----END (${label})-----`,
  'g',
);
const beginPattern = new RegExp(`-----BEGIN (${label})-----`);
const endPattern = new RegExp(`-----END (${label})-----`);
const base64LinePattern = /^[A-Za-z0-9+/=_-]{16,}$/;
const pemLineLength = 64;

/**
 * Decodes every PEM block in `text`, or the whole text as a bare base64 body.
 *
 * @example
 * extractPemBlocks('-----BEGIN PRIVATE KEY-----\nMIGH...\n-----END PRIVATE KEY-----', [], origin);
 * // [{ label: 'PRIVATE KEY', der: <Buffer 30 81 87 ...> }]
 */
export function extractPemBlocks(text: string, repairs: Repair[], origin: KeyOrigin): PemBlock[] {
  const blocks: PemBlock[] = [];
  const outside: string[] = [];
  let end = 0;

  for (const match of text.matchAll(blockPattern)) {
    outside.push(text.slice(end, match.index));
    end = match.index + match[0].length;
    blocks.push(decodeBlock(match, repairs, origin));
  }
  outside.push(text.slice(end));

  if (blocks.length === 0) return [decodeBareBody(text, repairs, origin)];
  assertNothingKeyLikeOutside(outside.join('\n'), repairs, origin);
  return blocks;
}

function decodeBlock(match: RegExpMatchArray, repairs: Repair[], origin: KeyOrigin): PemBlock {
  const begin = (match[1] ?? '').replace(/\s+/g, ' ');
  const endLabel = (match[3] ?? '').replace(/\s+/g, ' ');
  if (begin !== endLabel) {
    throw keyError(
      'ERR_KEY_ARMOUR_INVALID',
      origin,
      `the block starts with BEGIN ${begin} but ends with END ${endLabel}. ` +
        'Two keys may have been joined; keep one complete block.',
      { details: { label: begin, endLabel } },
    );
  }

  assertNoArmourInBody(match[2] ?? '', begin, origin);
  const { body, dekInfo } = takeLegacyHeaders(match[2] ?? '', begin, origin);
  noteLayout(body, repairs);
  const der = decodeBase64(body.replace(/\s+/g, ''), repairs, origin, `the ${begin} block`);
  return dekInfo === undefined ? { label: begin, der } : { label: begin, der, dekInfo };
}

function assertNoArmourInBody(body: string, label: string, origin: KeyOrigin): void {
  // "-" is a base64url character, so a stray armour line would otherwise reach the decoder.
  if (!/-{2,}\s*(?:BEGIN|END)\b/i.test(body)) return;
  throw keyError(
    'ERR_KEY_ARMOUR_INVALID',
    origin,
    `the ${label} block has a further BEGIN or END line inside its body, so the armour was ` +
      'doubled or one block was pasted inside another. Keep one BEGIN line, the body and one ' +
      'END line.',
    { details: { label } },
  );
}

function takeLegacyHeaders(body: string, label: string, origin: KeyOrigin) {
  // OpenSSL's traditional encryption writes RFC 1421 headers before the base64 body.
  const procType = /Proc-Type:\s*4,ENCRYPTED\s*/.exec(body);
  const dekInfo = /DEK-Info:\s*([A-Za-z0-9-]+,[0-9A-Fa-f]+)\s*/.exec(body);
  if (!procType && !dekInfo) {
    if (body.includes(':')) {
      throw keyError(
        'ERR_KEY_ARMOUR_INVALID',
        origin,
        `the ${label} block holds a "Name: value" header line, which only legacy encrypted PEM ` +
          'has, and this one is not a Proc-Type/DEK-Info pair. Export the key as PKCS#8.',
        { details: { label } },
      );
    }
    return { body };
  }
  if (!procType || !dekInfo) {
    throw keyError(
      'ERR_KEY_ARMOUR_INVALID',
      origin,
      `the ${label} block has only one of the Proc-Type and DEK-Info headers of legacy ` +
        'encrypted PEM, so it cannot be decrypted. Export the key again.',
      { details: { label } },
    );
  }
  const rest = body.replace(procType[0], '').replace(dekInfo[0], '');
  return { body: rest, dekInfo: dekInfo[1] };
}

function noteLayout(body: string, repairs: Repair[]): void {
  const lines = body.split('\n');
  // The first piece shares its line with BEGIN, so a space there is a lost line break instead.
  if (lines.slice(1).some((line) => /^[ \t]+\S/.test(line))) addRepair(repairs, 'indentation');

  const content = lines.map((line) => line.trim()).filter((line) => line !== '');
  const wrapped = content.every((line, index) =>
    index === content.length - 1 ? line.length <= pemLineLength : line.length === pemLineLength,
  );
  const onOwnLines = body.startsWith('\n') && /\n[ \t]*$/.test(body);
  if (!wrapped || !onOwnLines || content.some((line) => /\s/.test(line))) {
    addRepair(repairs, 'line-breaks');
  }
}

function decodeBareBody(text: string, repairs: Repair[], origin: KeyOrigin): PemBlock {
  assertNoStrayArmour(text, origin);
  const compact = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(compact)) throw notPem(text, origin);

  addRepair(repairs, 'missing-armour');
  if (/\s/.test(text)) noteLayout(`\n${text}\n`, repairs);
  return { label: undefined, der: decodeBase64(compact, repairs, origin, 'the base64 text') };
}

function assertNothingKeyLikeOutside(outside: string, repairs: Repair[], origin: KeyOrigin): void {
  assertNoStrayArmour(outside, origin);
  const lines = outside
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  if (lines.length === 0) return;

  if (lines.some((line) => base64LinePattern.test(line))) {
    throw keyError(
      'ERR_KEY_ARMOUR_INVALID',
      origin,
      'a line of base64 text lies outside the BEGIN/END armour, so part of a key body may be ' +
        'cut off or a second key may have lost its armour. Keep exactly one complete block.',
    );
  }
  // Text such as OpenSSL's "Bag Attributes" or a comment is allowed around a block (RFC 7468 §2).
  addRepair(repairs, 'text-outside-armour');
}

function assertNoStrayArmour(text: string, origin: KeyOrigin): void {
  const begin = beginPattern.exec(text);
  if (begin) {
    const name = (begin[1] ?? '').replace(/\s+/g, ' ');
    throw keyError(
      'ERR_KEY_ARMOUR_INVALID',
      origin,
      `BEGIN ${name} has no matching END line, so the key looks truncated. Copy the whole ` +
        'block, including the -----END line.',
      { details: { label: name } },
    );
  }
  if (endPattern.test(text)) {
    throw keyError(
      'ERR_KEY_ARMOUR_INVALID',
      origin,
      'an -----END line has no BEGIN line before it, so the start of the key is missing.',
    );
  }
  if (/-{2,}\s*(?:BEGIN|END)\b/i.test(text)) {
    throw keyError(
      'ERR_KEY_ARMOUR_INVALID',
      origin,
      'an armour line is malformed. RFC 7468 armour is five dashes, BEGIN or END, an upper-case ' +
        'label and five dashes, as in -----BEGIN PRIVATE KEY-----.',
    );
  }
}

function notPem(text: string, origin: KeyOrigin) {
  const trimmed = text.trim();
  let hint = 'Give the PEM text of a PKCS#8 (.p8) or SEC1 P-256 private key.';
  if (/^(?:\/|\.{1,2}\/|~\/|[A-Za-z]:\\)/.test(trimmed) || /\.(?:p8|pem|key)$/i.test(trimmed)) {
    hint = 'It looks like a file path; pass { path } or a file:PATH reference instead.';
  } else if (/^(?:ssh-|ecdsa-sha2-)/.test(trimmed)) {
    hint = 'It looks like an SSH public key, which cannot sign JWTs.';
  }
  return keyError(
    'ERR_KEY_NOT_PEM',
    origin,
    `no PEM armour was found and the text is not base64. ${hint}`,
  );
}

/**
 * Decodes a base64 body with whitespace already removed. Missing padding and the base64url
 * alphabet are repaired. Other characters, impossible lengths and stray bits are rejected.
 */
export function decodeBase64(
  compact: string,
  repairs: Repair[],
  origin: KeyOrigin,
  where: string,
): Buffer {
  if (compact === '') {
    throw keyError('ERR_KEY_EMPTY', origin, `${where} has an empty body.`);
  }
  assertBase64Characters(compact, origin, where);

  let text = compact;
  if (/[-_]/.test(text)) {
    addRepair(repairs, 'base64url-alphabet');
    text = text.replace(/-/g, '+').replace(/_/g, '/');
  }
  text = repairPadding(text, repairs, origin, where);

  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) {
    throw base64Error(
      origin,
      `${where} ends in a character whose unused bits are set, which no encoder writes, so the body was altered.`,
    );
  }
  return bytes;
}

function assertBase64Characters(text: string, origin: KeyOrigin, where: string): void {
  const position = text.search(/[^A-Za-z0-9+/=_-]/);
  if (position !== -1) {
    throw base64Error(
      origin,
      `${where} has ${describeCharacter(text.charAt(position))} at position ${position + 1}, ` +
        'which is not a base64 character.',
    );
  }
  if (/[-_]/.test(text) && /[+/]/.test(text)) {
    throw base64Error(origin, `${where} mixes the base64 and base64url alphabets.`);
  }
}

function repairPadding(text: string, repairs: Repair[], origin: KeyOrigin, where: string): string {
  const data = text.replace(/=+$/, '');
  if (data.includes('=')) {
    throw base64Error(
      origin,
      `${where} has "=" padding in the middle, so two bodies were probably joined.`,
    );
  }
  if (data.length % 4 === 1) {
    throw base64Error(
      origin,
      `${where} has ${data.length} base64 characters, a length no encoding produces, so characters were lost or added.`,
    );
  }

  const padding = text.length - data.length;
  const expected = (4 - (data.length % 4)) % 4;
  if (padding === expected) return text;
  if (padding === 0) {
    addRepair(repairs, 'missing-padding');
    return data + '='.repeat(expected);
  }
  throw base64Error(
    origin,
    `${where} ends with ${padding} "=" characters, but its length needs ${expected}.`,
  );
}

function describeCharacter(character: string): string {
  const code = character.codePointAt(0) ?? 0;
  // Only characters outside the base64 alphabet reach here, so naming one reveals no key data.
  if (code > 0x20 && code < 0x7f) return `the character ${JSON.stringify(character)}`;
  return `the character U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
}

function base64Error(origin: KeyOrigin, problem: string) {
  return keyError(
    'ERR_KEY_BASE64_INVALID',
    origin,
    `${problem} Copy the key again from its source.`,
  );
}
