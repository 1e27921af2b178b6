/**
 * Finding tokens and key objects, and reading their attributes. Tokens are found by their
 * attributes (label, serial...), never by a remembered slot number, because SoftHSM2 and some
 * HSMs renumber slots when a token is initialised. EC keys are checked against the P-256 OID, and
 * public keys are rebuilt from CKA_EC_POINT (PKCS#11 v2.40 §2.3.3: a DER OCTET STRING around the
 * X9.62 uncompressed point).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { KeyError, KmsJwtError } from '../../src/errors.js';
import { shortenForMessage } from '../../src/message-text.js';
import {
  CKA_CLASS,
  CKA_EC_PARAMS,
  CKA_EC_POINT,
  CKA_ID,
  CKA_KEY_TYPE,
  CKA_LABEL,
  CKA_SIGN,
  CKF_TOKEN_INITIALIZED,
  CKK_DH,
  CKK_DSA,
  CKK_EC,
  CKK_RSA,
  CKO_PRIVATE_KEY,
  CKO_PUBLIC_KEY,
  readUlong,
  type Attribute,
  type Handle,
  type Pkcs11Binding,
} from './binding.js';
import { operationFailed } from './errors.js';
import { encodeUriId, type Pkcs11TokenFilter, type Pkcs11Uri } from './uri.js';

/** DER of the OID 1.2.840.10045.3.1.7 (P-256, prime256v1), as CKA_EC_PARAMS holds it. */
export const p256Parameters = Buffer.from('06082a8648ce3d030107', 'hex');

const knownCurves = new Map([
  [p256Parameters.toString('hex'), 'P-256'],
  ['06052b81040022', 'P-384'],
  ['06052b81040023', 'P-521'],
  ['06052b8104000a', 'secp256k1'],
]);

const keyTypeNames = new Map([
  [CKK_RSA, 'RSA'],
  [CKK_DSA, 'DSA'],
  [CKK_DH, 'DH'],
  [CKK_EC, 'EC'],
]);

// SPKI for id-ecPublicKey with P-256 up to the BIT STRING that carries the 65-byte point.
const p256SpkiPrefix = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

/** A token found by the URI's token attributes. */
export interface FoundToken {
  slot: Handle;
  label: string;
}

/** A private key found by the URI's object attributes, already checked to be EC P-256. */
export interface FoundKey {
  handle: Handle;
  label: string;
  id: Buffer;
}

/** Returns a space-padded PKCS#11 string field without its padding. */
export function trimPadding(value: string): string {
  return value.replace(/[\s\0]+$/, '');
}

/**
 * Finds the one slot whose token matches every token attribute of the URI, reading the slot
 * list afresh so that renumbered slots are followed.
 */
export function findToken(binding: Pkcs11Binding, filter: Pkcs11TokenFilter): FoundToken {
  if (!libraryMatches(binding, filter)) throw tokenNotFound(filter, []);
  const slots = listSlots(binding);
  const labels: string[] = [];
  const matches: FoundToken[] = [];

  for (const slot of slots) {
    const info = binding.C_GetTokenInfo(slot);
    // An uninitialised token, such as SoftHSM2's spare slot, has no label and contains no keys.
    if ((info.flags & CKF_TOKEN_INITIALIZED) === 0) continue;
    const label = trimPadding(info.label);
    labels.push(label);
    if (tokenMatches(binding, slot, info, filter)) matches.push({ slot, label });
  }

  if (matches.length === 0) throw tokenNotFound(filter, labels);
  if (matches.length > 1) {
    throw new KmsJwtError(
      'ERR_PKCS11_TOKEN_AMBIGUOUS',
      `${matches.length} tokens match ${describeFilter(filter)}: ` +
        `${matches.map((m) => `"${m.label}"`).join(', ')}. Add token=LABEL or serial=SERIAL.`,
      { details: { tokens: matches.map((m) => m.label) } },
    );
  }
  return matches[0]!;
}

function listSlots(binding: Pkcs11Binding): Handle[] {
  try {
    return binding.C_GetSlotList(true);
  } catch (error) {
    throw operationFailed('C_GetSlotList', 'the module', error);
  }
}

function libraryMatches(binding: Pkcs11Binding, filter: Pkcs11TokenFilter): boolean {
  const wanted =
    filter.libraryManufacturer !== undefined ||
    filter.libraryDescription !== undefined ||
    filter.libraryVersion !== undefined;
  if (!wanted) return true;

  const info = binding.C_GetInfo();
  const version = filter.libraryVersion;
  return (
    matchesText(filter.libraryManufacturer, info.manufacturerID) &&
    matchesText(filter.libraryDescription, info.libraryDescription) &&
    (version === undefined ||
      (version.major === info.libraryVersion.major && version.minor === info.libraryVersion.minor))
  );
}

function tokenMatches(
  binding: Pkcs11Binding,
  slot: Handle,
  info: ReturnType<Pkcs11Binding['C_GetTokenInfo']>,
  filter: Pkcs11TokenFilter,
): boolean {
  const tokenOk =
    matchesText(filter.token, info.label) &&
    matchesText(filter.manufacturer, info.manufacturerID) &&
    matchesText(filter.model, info.model) &&
    matchesText(filter.serial, info.serialNumber) &&
    (filter.slotId === undefined || readUlong(slot) === filter.slotId);
  if (!tokenOk) return false;
  if (filter.slotDescription === undefined && filter.slotManufacturer === undefined) return true;

  const slotInfo = binding.C_GetSlotInfo(slot);
  return (
    matchesText(filter.slotDescription, slotInfo.slotDescription) &&
    matchesText(filter.slotManufacturer, slotInfo.manufacturerID)
  );
}

function matchesText(wanted: string | undefined, padded: string): boolean {
  return wanted === undefined || trimPadding(padded) === wanted;
}

function describeFilter(filter: Pkcs11TokenFilter): string {
  const parts = Object.entries(filter)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `${name}=${JSON.stringify(shortenValue(value))}`);
  return parts.length === 0 ? 'the URI (it has no token attributes)' : parts.join(', ');
}

function shortenValue(value: unknown): unknown {
  return typeof value === 'string' ? shortenForMessage(value) : value;
}

function tokenNotFound(filter: Pkcs11TokenFilter, labels: string[]): KmsJwtError {
  const present =
    labels.length === 0
      ? 'The module reports no initialised token.'
      : `Tokens present: ${labels.map((l) => `"${l}"`).join(', ')}.`;
  return new KmsJwtError(
    'ERR_PKCS11_TOKEN_NOT_FOUND',
    `No PKCS#11 token matches ${describeFilter(filter)}. ${present} Token labels are matched ` +
      'exactly, after trimming the space padding; slot numbers can change, so prefer token=LABEL.',
    { details: { tokens: labels } },
  );
}

/** Runs C_FindObjectsInit / C_FindObjects / C_FindObjectsFinal and returns every handle. */
export function findObjects(
  binding: Pkcs11Binding,
  session: Handle,
  template: Attribute[],
): Handle[] {
  try {
    binding.C_FindObjectsInit(session, template);
  } catch (error) {
    throw operationFailed('C_FindObjectsInit', 'the key search', error);
  }

  let handles: Handle[];
  try {
    handles = collectHandles(binding, session);
  } catch (error) {
    finishSearchQuietly(binding, session);
    throw operationFailed('C_FindObjects', 'the key search', error);
  }

  try {
    binding.C_FindObjectsFinal(session);
  } catch (error) {
    throw operationFailed('C_FindObjectsFinal', 'the key search', error);
  }
  return handles;
}

function collectHandles(binding: Pkcs11Binding, session: Handle): Handle[] {
  const handles: Handle[] = [];
  for (;;) {
    const batch = binding.C_FindObjects(session, 64);
    handles.push(...batch);
    if (batch.length < 64) return handles;
  }
}

function finishSearchQuietly(binding: Pkcs11Binding, session: Handle): void {
  try {
    binding.C_FindObjectsFinal(session);
  } catch {
    // The search already failed; that failure is the one to report.
  }
}

/** Builds a search template from the URI's `object` and `id` for one object class. */
export function objectTemplate(objectClass: number, uri: Pick<Pkcs11Uri, 'object' | 'id'>) {
  const template: Attribute[] = [{ type: CKA_CLASS, value: objectClass }];
  if (uri.object !== undefined) template.push({ type: CKA_LABEL, value: uri.object });
  if (uri.id !== undefined) template.push({ type: CKA_ID, value: uri.id });
  return template;
}

/** Reads the listed attributes of one object, each as raw bytes. */
export function readAttributes(
  binding: Pkcs11Binding,
  session: Handle,
  handle: Handle,
  types: number[],
): Buffer[] {
  try {
    const values = binding.C_GetAttributeValue(
      session,
      handle,
      types.map((type) => ({ type })),
    );
    return values.map((attribute) => attribute.value as Buffer);
  } catch (error) {
    throw operationFailed('C_GetAttributeValue', 'a key object', error);
  }
}

/**
 * Finds the one private key that the URI names and checks that it is an EC P-256 key that may
 * sign. `loggedIn` only changes the hint when nothing is found.
 */
export function findPrivateKey(
  binding: Pkcs11Binding,
  session: Handle,
  uri: Pkcs11Uri,
  token: string,
  loggedIn: boolean,
): FoundKey {
  const handles = findObjects(binding, session, objectTemplate(CKO_PRIVATE_KEY, uri));
  if (handles.length === 0) throw keyNotFound(uri, token, loggedIn);

  const keys = handles.map((handle) => describeKey(binding, session, handle));
  if (keys.length > 1) {
    throw new KmsJwtError(
      'ERR_PKCS11_KEY_AMBIGUOUS',
      `${keys.length} private keys on token "${token}" match ${describeObject(uri)}: ` +
        `${keys.map((k) => `id=${encodeUriId(k.id)} (${k.found})`).join(', ')}. ` +
        ambiguityFix(keys),
      {
        details: {
          token,
          matches: keys.map((k) => ({ id: k.id.toString('hex'), found: k.found })),
        },
      },
    );
  }

  const key = keys[0]!;
  assertP256SigningKey(key, token);
  return { handle: key.handle, label: key.label, id: key.id };
}

/** Says how to pick one key: by ID, else by label, unless the keys share both. */
function ambiguityFix(keys: FoundKey[]): string {
  const ids = new Set(keys.map((key) => key.id.toString('hex')));
  const labels = new Set(keys.map((key) => key.label));
  if (ids.size > 1) return 'Add id=... to the URI to pick one.';
  if (labels.size > 1) return 'They share one ID; add object=LABEL to the URI to pick one.';
  return (
    'They have the same label and ID, so no URI can tell them apart, as after an import that ' +
    "was stopped halfway. Remove the duplicates with the HSM vendor's tool, or import the key " +
    'again with kms-jwt import --overwrite, which replaces them all.'
  );
}

interface DescribedKey extends FoundKey {
  keyType: number;
  parameters: Buffer | undefined;
  canSign: boolean;
  found: string;
}

function describeKey(binding: Pkcs11Binding, session: Handle, handle: Handle): DescribedKey {
  const [keyType, label, id, sign] = readAttributes(binding, session, handle, [
    CKA_KEY_TYPE,
    CKA_LABEL,
    CKA_ID,
    CKA_SIGN,
  ]) as [Buffer, Buffer, Buffer, Buffer];
  const type = readUlong(keyType);
  const parameters =
    type === CKK_EC ? readAttributes(binding, session, handle, [CKA_EC_PARAMS])[0] : undefined;
  return {
    handle,
    label: label.toString('utf8'),
    id: Buffer.from(id),
    keyType: type,
    parameters,
    canSign: sign[0] === 1,
    found: describeKeyType(type, parameters),
  };
}

function describeKeyType(keyType: number, parameters: Buffer | undefined): string {
  if (keyType !== CKK_EC) return keyTypeNames.get(keyType) ?? `key type 0x${keyType.toString(16)}`;
  const curve = parameters ? knownCurves.get(parameters.toString('hex')) : undefined;
  return `EC ${curve ?? `with CKA_EC_PARAMS ${parameters?.toString('hex') ?? 'missing'}`}`;
}

function assertP256SigningKey(key: DescribedKey, token: string): void {
  const details = { token, id: key.id.toString('hex'), label: key.label, found: key.found };
  if (key.keyType !== CKK_EC) {
    throw new KeyError(
      'ERR_PKCS11_KEY_NOT_EC',
      `The private key "${key.label}" (id=${encodeUriId(key.id)}) on token "${token}" is ` +
        `${key.found}, but ES256 needs an EC P-256 key. Point the URI at a P-256 key.`,
      { details },
    );
  }
  if (!key.parameters?.equals(p256Parameters)) {
    throw new KeyError(
      'ERR_PKCS11_KEY_NOT_P256',
      `The private key "${key.label}" (id=${encodeUriId(key.id)}) on token "${token}" is ` +
        `${key.found}, but ES256 needs P-256 (prime256v1). Point the URI at a P-256 key.`,
      { details },
    );
  }
  if (!key.canSign) {
    throw new KeyError(
      'ERR_PKCS11_KEY_CANNOT_SIGN',
      `The private key "${key.label}" (id=${encodeUriId(key.id)}) on token "${token}" has ` +
        'CKA_SIGN=false. Import the key again with CKA_SIGN=true.',
      { details },
    );
  }
}

function describeObject(uri: Pick<Pkcs11Uri, 'object' | 'id'>): string {
  const parts: string[] = [];
  if (uri.object !== undefined)
    parts.push(`object=${JSON.stringify(shortenForMessage(uri.object))}`);
  if (uri.id !== undefined) parts.push(`id=${encodeUriId(uri.id)}`);
  return parts.join(', ');
}

function keyNotFound(uri: Pkcs11Uri, token: string, loggedIn: boolean): KmsJwtError {
  const hint = loggedIn
    ? 'Check the label and id, for example with pkcs11-tool --list-objects --login.'
    : 'No PIN was given, and private keys are only visible after login: set pin-source, the ' +
      'pin option or KMS_JWT_PKCS11_PIN.';
  return new KmsJwtError(
    'ERR_PKCS11_KEY_NOT_FOUND',
    `No private key on token "${token}" matches ${describeObject(uri)}. ${hint}`,
    { details: { token, object: uri.object, id: uri.id?.toString('hex') } },
  );
}

/**
 * Reads the public key that belongs to a private key: the public-key object with the same
 * CKA_ID, or with the same label when the key has no ID. Returns undefined when there is none.
 */
export function readPublicKeyObject(
  binding: Pkcs11Binding,
  session: Handle,
  key: FoundKey,
): KeyObject | undefined {
  const selector = key.id.length > 0 ? { id: key.id } : { object: key.label };
  const handles = findObjects(binding, session, objectTemplate(CKO_PUBLIC_KEY, selector));
  if (handles.length === 0) return undefined;

  const points = handles.map(
    (handle) => readAttributes(binding, session, handle, [CKA_EC_POINT])[0]!,
  );
  const first = points[0]!;
  if (points.some((point) => !point.equals(first))) {
    throw new KmsJwtError(
      'ERR_PKCS11_PUBLIC_KEY_INVALID',
      `Several public-key objects share ${describeObject(selector)} but hold different points. ` +
        'Remove the stale ones.',
      { details: { id: key.id.toString('hex'), label: key.label } },
    );
  }
  return ecPointToPublicKey(first, key.label);
}

/**
 * Turns CKA_EC_POINT into a P-256 KeyObject. PKCS#11 v2.40 wraps the point in a DER OCTET
 * STRING (04 41 04 X Y); some older modules return the bare 65-byte point, which is also taken.
 * The two forms differ in length, so no byte is guessed at.
 */
export function ecPointToPublicKey(ecPoint: Buffer, label: string): KeyObject {
  let point = ecPoint;
  if (ecPoint.length === 67 && ecPoint[0] === 0x04 && ecPoint[1] === 0x41)
    point = ecPoint.subarray(2);

  if (point.length !== 65 || point[0] !== 0x04) {
    throw new KmsJwtError(
      'ERR_PKCS11_PUBLIC_KEY_INVALID',
      `The public-key object for "${label}" has a CKA_EC_POINT of ${ecPoint.length} bytes that is ` +
        'not an uncompressed P-256 point (04 || X || Y), bare or in a DER OCTET STRING.',
      { details: { label, length: ecPoint.length } },
    );
  }
  try {
    return createPublicKey({
      key: Buffer.concat([p256SpkiPrefix, point]),
      format: 'der',
      type: 'spki',
    });
  } catch (error) {
    throw new KmsJwtError(
      'ERR_PKCS11_PUBLIC_KEY_INVALID',
      `The CKA_EC_POINT of the public-key object for "${label}" is not a point on P-256.`,
      { cause: error, details: { label } },
    );
  }
}
