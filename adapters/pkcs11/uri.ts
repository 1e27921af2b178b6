/**
 * PKCS#11 URIs (RFC 7512): `pkcs11:` + `;`-separated path attributes that select a token and an
 * object, then `?` + `&`-separated query attributes that say how to reach them. Attribute values
 * are percent-encoded, and `id` is a string of percent-encoded bytes (CKA_ID).
 */
import { KmsJwtError } from '../../src/errors.js';
import { shortenForMessage } from '../../src/message-text.js';
import { parseKeyReference, parseReferenceAttributes } from '../../src/key-uri.js';

/** The object classes a `type` attribute may name (RFC 7512 `pk11-type`). */
export type Pkcs11ObjectType = 'cert' | 'data' | 'private' | 'public' | 'secret-key';

/** Token and slot attributes, each compared with the module's space-trimmed value. */
export interface Pkcs11TokenFilter {
  token?: string;
  manufacturer?: string;
  model?: string;
  serial?: string;
  slotId?: number;
  slotDescription?: string;
  slotManufacturer?: string;
  libraryManufacturer?: string;
  libraryDescription?: string;
  libraryVersion?: { major: number; minor: number };
}

/** A parsed `pkcs11:` URI. The PIN fields are secrets: never print them. */
export interface Pkcs11Uri {
  filter: Pkcs11TokenFilter;
  /** CKA_LABEL of the object. */
  object?: string;
  /** CKA_ID of the object, as bytes. */
  id?: Buffer;
  type?: Pkcs11ObjectType;
  /** Path attributes this parser does not know. RFC 7512 says such a URI matches nothing. */
  unknownPathAttributes: string[];
  modulePath?: string;
  pinSource?: string;
  pinValue?: string;
}

const objectTypes = new Set<string>(['cert', 'data', 'private', 'public', 'secret-key']);

const filterAttributes: Record<string, keyof Pkcs11TokenFilter> = {
  token: 'token',
  manufacturer: 'manufacturer',
  model: 'model',
  serial: 'serial',
  'slot-description': 'slotDescription',
  'slot-manufacturer': 'slotManufacturer',
  'library-manufacturer': 'libraryManufacturer',
  'library-description': 'libraryDescription',
};

/**
 * Parses a `pkcs11:` URI. Malformed input raises `ERR_KEY_REFERENCE_INVALID`; unknown path
 * attributes are collected so that the caller can report that the URI matches nothing.
 *
 * @example
 * parsePkcs11Uri('pkcs11:token=apple;object=siwa;id=%01?module-path=/usr/lib/libsofthsm2.so');
 */
export function parsePkcs11Uri(uri: string): Pkcs11Uri {
  const reference = parseKeyReference(uri);
  if (reference.scheme !== 'pkcs11') {
    throw invalidUri(`the scheme is "${reference.scheme}:", expected "pkcs11:"`);
  }

  // CKA_ID bytes need not be UTF-8, so `id` is decoded byte by byte before the generic parser.
  const { rest, idText } = extractId(reference.rest);
  const attributes = parseReferenceAttributes(rest, 'pkcs11');
  assertNoHiddenPin(attributes.path, attributes.query, idText);
  const parsed: Pkcs11Uri = { filter: {}, unknownPathAttributes: [] };
  if (idText !== undefined) parsed.id = decodeIdBytes(idText);

  for (const [name, value] of attributes.path) applyPathAttribute(parsed, name, value);
  for (const [name, value] of attributes.query) applyQueryAttribute(parsed, name, value);
  return parsed;
}

const hiddenPinValue = /pin-value=/i;

/**
 * Rejects a URI where "pin-value=" sits inside another attribute, as after a typo such as
 * `module-path=/p11.so?pin-value=...` (a second "?") or `;pin-value=` in the query. Such a value
 * would be echoed by later errors, with the PIN in it, so the error here names no value.
 */
function assertNoHiddenPin(
  path: Map<string, string>,
  query: Map<string, string>,
  idText: string | undefined,
): void {
  const entries = [...path, ...query];
  if (idText !== undefined) entries.push(['id', idText]);

  for (const [name, value] of entries) {
    const inName = hiddenPinValue.test(name);
    if (!inName && (name === 'pin-value' || !hiddenPinValue.test(value))) continue;
    const where = inName ? 'an attribute name' : `the value of "${name}"`;
    throw invalidUri(
      `${where} contains "pin-value=", so two attributes run together. Start the query with ` +
        'one "?" and separate query attributes with "&"',
    );
  }
}

function extractId(rest: string): { rest: string; idText: string | undefined } {
  const question = rest.indexOf('?');
  const pathPart = question === -1 ? rest : rest.slice(0, question);
  const queryPart = question === -1 ? '' : rest.slice(question);
  const items = pathPart.split(';');
  const idItems = items.filter((item) => item.toLowerCase().startsWith('id='));

  if (idItems.length === 0) return { rest, idText: undefined };
  if (idItems.length > 1) throw invalidUri('attribute "id" is repeated');
  const others = items.filter((item) => !item.toLowerCase().startsWith('id='));
  return { rest: others.join(';') + queryPart, idText: idItems[0]!.slice(3) };
}

function decodeIdBytes(text: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i += 1) {
    if (text[i] !== '%') {
      bytes.push(...Buffer.from(text[i]!, 'utf8'));
      continue;
    }
    const hex = text.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex))
      throw invalidUri('the value of "id" has an invalid percent-escape');
    bytes.push(Number.parseInt(hex, 16));
    i += 2;
  }
  return Buffer.from(bytes);
}

function applyPathAttribute(parsed: Pkcs11Uri, name: string, value: string): void {
  const filterField = filterAttributes[name];
  if (filterField) {
    (parsed.filter as Record<string, unknown>)[filterField] = value;
    return;
  }

  switch (name) {
    case 'object':
      parsed.object = value;
      return;
    case 'type':
      parsed.type = parseObjectType(value);
      return;
    case 'slot-id':
      parsed.filter.slotId = parseSlotId(value);
      return;
    case 'library-version':
      parsed.filter.libraryVersion = parseLibraryVersion(value);
      return;
    default:
      parsed.unknownPathAttributes.push(name);
  }
}

function applyQueryAttribute(parsed: Pkcs11Uri, name: string, value: string): void {
  switch (name) {
    case 'module-path':
      parsed.modulePath = value;
      return;
    case 'pin-source':
      parsed.pinSource = value;
      return;
    case 'pin-value':
      parsed.pinValue = value;
      return;
    case 'module-name':
      throw invalidUri('"module-name" is not supported; give the absolute "module-path" instead');
    default:
      // Vendor extensions (`x-...`) are ignored; any other name is most likely a typo.
      if (name.startsWith('x-')) return;
      throw invalidUri(
        `query attribute "${shortenForMessage(name)}" is unknown; the known ones are ` +
          'module-path, pin-source and pin-value',
      );
  }
}

function parseObjectType(value: string): Pkcs11ObjectType {
  if (objectTypes.has(value)) return value as Pkcs11ObjectType;
  const shown = shortenForMessage(value);
  throw invalidUri(`type "${shown}" is not one of cert, data, private, public or secret-key`);
}

function parseSlotId(value: string): number {
  if (/^[0-9]{1,19}$/.test(value) && Number.isSafeInteger(Number(value))) return Number(value);
  throw invalidUri(`slot-id "${shortenForMessage(value)}" is not a decimal number`);
}

function parseLibraryVersion(value: string): { major: number; minor: number } {
  const match = /^([0-9]{1,3})(?:\.([0-9]{1,3}))?$/.exec(value);
  if (!match) {
    const shown = shortenForMessage(value);
    throw invalidUri(`library-version "${shown}" is not MAJOR or MAJOR.MINOR`);
  }
  return { major: Number(match[1]), minor: Number(match[2] ?? 0) };
}

function invalidUri(problem: string): KmsJwtError {
  return new KmsJwtError(
    'ERR_KEY_REFERENCE_INVALID',
    `Invalid pkcs11 key reference: ${problem}. Expected pkcs11:token=LABEL;object=LABEL;id=%01` +
      '?module-path=/ABSOLUTE/PATH.so&pin-source=file:/PATH (RFC 7512).',
    { details: { adapter: 'pkcs11' } },
  );
}

// RFC 7512 keeps unreserved characters and a few sub-delimiters unescaped. "=" and "&" are
// escaped too, although the grammar allows them in some places, because parsers split on them.
const plainPathCharacter = /^[A-Za-z0-9\-._~:@!$'()*+,]$/;
// pk11-qchar also allows "/" and "?", so a module path or pin-source file URI stays readable.
const plainQueryCharacter = /^[A-Za-z0-9\-._~:@!$'()*+,/?]$/;

/** Percent-encodes a path attribute value for a `pkcs11:` URI. */
export function encodeUriValue(value: string): string {
  return encodeWith(value, plainPathCharacter);
}

/** Percent-encodes a query attribute value, such as a module path, for a `pkcs11:` URI. */
export function encodeQueryValue(value: string): string {
  return encodeWith(value, plainQueryCharacter);
}

function encodeWith(value: string, plain: RegExp): string {
  let encoded = '';
  for (const character of value) {
    if (plain.test(character)) {
      encoded += character;
      continue;
    }
    for (const byte of Buffer.from(character, 'utf8')) encoded += percentByte(byte);
  }
  return encoded;
}

/** Percent-encodes every byte of a CKA_ID, as RFC 7512 writes `id`. */
export function encodeUriId(id: Buffer): string {
  return [...id].map(percentByte).join('');
}

function percentByte(byte: number): string {
  return `%${byte.toString(16).padStart(2, '0')}`;
}

/**
 * Formats the path part of a URI: the attributes that select the token and the object. It never
 * contains a PIN, so it is safe as a `keyId` and in messages.
 */
export function formatPathAttributes(uri: Pkcs11Uri): string {
  const parts: string[] = [];
  const filter = uri.filter;
  if (filter.token !== undefined) parts.push(`token=${encodeUriValue(filter.token)}`);
  if (filter.manufacturer !== undefined) {
    parts.push(`manufacturer=${encodeUriValue(filter.manufacturer)}`);
  }
  if (filter.model !== undefined) parts.push(`model=${encodeUriValue(filter.model)}`);
  if (filter.serial !== undefined) parts.push(`serial=${encodeUriValue(filter.serial)}`);
  if (filter.slotId !== undefined) parts.push(`slot-id=${filter.slotId}`);
  if (uri.object !== undefined) parts.push(`object=${encodeUriValue(uri.object)}`);
  if (uri.id !== undefined) parts.push(`id=${encodeUriId(uri.id)}`);
  if (uri.type !== undefined) parts.push(`type=${uri.type}`);
  return `pkcs11:${parts.join(';')}`;
}
