/**
 * Imports an existing P-256 private key (such as an Apple `.p8`) into a PKCS#11 token as two
 * token objects with the URI's label and ID: a private key that is private, sensitive,
 * non-extractable and may sign, and the matching public key. The import then proves itself: the
 * public-key object must hold the `.p8`'s point, a test signature must verify, and the private
 * key's attributes are read back. When a step fails, the new objects are destroyed again.
 */
import { createHash, KeyObject, randomBytes, verify } from 'node:crypto';
import { isKmsJwtError, KeyError, KmsJwtError } from '../../src/errors.js';
import type { ImportResult } from '../../src/key-uri.js';
import { sha256 } from '../../src/signer.js';
import {
  CKA_CLASS,
  CKA_DERIVE,
  CKA_EC_PARAMS,
  CKA_EC_POINT,
  CKA_EXTRACTABLE,
  CKA_ID,
  CKA_KEY_TYPE,
  CKA_LABEL,
  CKA_PRIVATE,
  CKA_SENSITIVE,
  CKA_SIGN,
  CKA_TOKEN,
  CKA_VALUE,
  CKA_VERIFY,
  CKF_RW_SESSION,
  CKF_SERIAL_SESSION,
  CKK_EC,
  CKM_ECDSA,
  CKO_PRIVATE_KEY,
  CKO_PUBLIC_KEY,
  returnValueName,
  type Attribute,
  type Handle,
  type Pkcs11Binding,
} from './binding.js';
import { connectToken, type Pkcs11ConnectOptions, type TokenConnection } from './connect.js';
import { fixFor, operationFailed } from './errors.js';
import {
  ecPointToPublicKey,
  findObjects,
  findPrivateKey,
  p256Parameters,
  readAttributes,
} from './objects.js';
import {
  encodeQueryValue,
  encodeUriId,
  formatPathAttributes,
  parsePkcs11Uri,
  type Pkcs11Uri,
} from './uri.js';

/** Options for {@link importP8ToPkcs11}. */
export interface Pkcs11ImportOptions extends Pkcs11ConnectOptions {
  /** Replace the objects that already have the label or the ID, after the new key is proven. */
  overwrite?: boolean;
}

/** An object already on the token with the target label or ID. */
interface Conflict {
  handle: Handle;
  label: string;
  id: string;
}

/**
 * Imports a P-256 private key into the token that `target` names and returns the URI to sign
 * with. Without `overwrite`, an existing object with the same label or ID makes it fail with
 * `ERR_PKCS11_OBJECT_EXISTS` before anything is written. Without `id` in the URI, the ID is the
 * SHA-1 of the uncompressed public point.
 *
 * @example
 * const privateKey = createPrivateKey(readFileSync('AuthKey_ABC123DEFG.p8'));
 * const { reference } = await importP8ToPkcs11(
 *   privateKey,
 *   'pkcs11:token=apple;object=siwa?pin-source=file:/run/secrets/hsm-pin',
 *   { modulePath: '/usr/lib/softhsm/libsofthsm2.so' },
 * );
 */
export async function importP8ToPkcs11(
  privateKey: KeyObject,
  target: string,
  options: Pkcs11ImportOptions = {},
): Promise<ImportResult> {
  const material = readKeyMaterial(privateKey);
  const uri = parseTarget(target, material.point);
  const connection = await connectToken(uri, options);

  try {
    if (!connection.loggedIn) throw pinMissing(connection.token.label);
    return await importWithSession(connection, uri, material, options);
  } finally {
    connection.release();
  }
}

interface KeyMaterial {
  privateKey: KeyObject;
  publicKey: KeyObject;
  scalar: Buffer;
  point: Buffer;
}

function readKeyMaterial(privateKey: KeyObject): KeyMaterial {
  if (!(privateKey instanceof KeyObject) || privateKey.type !== 'private') {
    throw new TypeError(
      'importP8ToPkcs11 expects a private KeyObject, such as createPrivateKey(p8).',
    );
  }
  const curve = privateKey.asymmetricKeyDetails?.namedCurve;
  if (privateKey.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    const found =
      privateKey.asymmetricKeyType === 'ec' ? `EC ${curve}` : privateKey.asymmetricKeyType;
    throw new KeyError(
      'ERR_KEY_NOT_P256',
      `The key to import is ${found}, but ES256 needs a P-256 (prime256v1) key.`,
      { details: { found } },
    );
  }

  const jwk = privateKey.export({ format: 'jwk' });
  const field = (value: string | undefined) => Buffer.from(value ?? '', 'base64url');
  const point = Buffer.concat([Buffer.from([0x04]), pad32(field(jwk.x)), pad32(field(jwk.y))]);
  return {
    privateKey,
    publicKey: ecPointToPublicKey(point, 'the key to import'),
    scalar: pad32(field(jwk.d)),
    point,
  };
}

function pad32(bytes: Buffer): Buffer {
  return bytes.length >= 32 ? bytes : Buffer.concat([Buffer.alloc(32 - bytes.length), bytes]);
}

function parseTarget(target: string, point: Buffer): Pkcs11Uri {
  const uri = parsePkcs11Uri(target);
  const problems: string[] = [];
  if (uri.unknownPathAttributes.length > 0) {
    problems.push(`it has unknown path attributes (${uri.unknownPathAttributes.join(', ')})`);
  }
  if (uri.object === undefined || uri.object === '') problems.push('it has no object=LABEL');
  if (uri.type !== undefined && uri.type !== 'private')
    problems.push(`type=${uri.type} is not private`);
  if (uri.id !== undefined && uri.id.length === 0) problems.push('id is empty');

  if (problems.length > 0) {
    throw new KmsJwtError(
      'ERR_KEY_REFERENCE_INVALID',
      `Invalid pkcs11 import target: ${problems.join('; ')}. Expected ` +
        'pkcs11:token=LABEL;object=LABEL;id=%01?module-path=/ABSOLUTE/PATH.so&pin-source=file:/PATH.',
      { details: { adapter: 'pkcs11' } },
    );
  }
  uri.id ??= createHash('sha1').update(point).digest();
  return uri;
}

async function importWithSession(
  connection: TokenConnection,
  uri: Pkcs11Uri,
  material: KeyMaterial,
  options: Pkcs11ImportOptions,
): Promise<ImportResult> {
  const { binding, token } = connection;
  const session = openReadWriteSession(connection);

  try {
    const conflicts = findConflicts(binding, session, uri);
    if (conflicts.length > 0 && !options.overwrite) throw objectExists(token.label, uri, conflicts);

    const target = describeTarget(token.label, uri);
    const created = createKeyObjects(binding, session, uri, material, target);
    try {
      await proveImport(binding, session, created, material, target);
    } catch (error) {
      for (const handle of [created.privateKey, created.publicKey])
        destroyQuietly(binding, session, handle);
      throw isKmsJwtError(error) ? error : importFailed(target, 'proving the new key', error);
    }

    // Old objects go only once the new key is proven, so a failed import keeps the old key.
    for (const conflict of conflicts) destroy(binding, session, conflict.handle);
    findPrivateKey(binding, session, uri, token.label, true);
    return importResult(connection, uri, material, conflicts.length);
  } finally {
    closeQuietly(binding, session);
  }
}

function openReadWriteSession(connection: TokenConnection): Handle {
  try {
    return connection.binding.C_OpenSession(
      connection.token.slot,
      CKF_SERIAL_SESSION | CKF_RW_SESSION,
    );
  } catch (error) {
    throw operationFailed('C_OpenSession', `token "${connection.token.label}"`, error);
  }
}

function findConflicts(binding: Pkcs11Binding, session: Handle, uri: Pkcs11Uri): Conflict[] {
  const byLabel = findObjects(binding, session, [{ type: CKA_LABEL, value: uri.object! }]);
  const byId = findObjects(binding, session, [{ type: CKA_ID, value: uri.id! }]);
  const unique = new Map([...byLabel, ...byId].map((handle) => [handle.toString('hex'), handle]));

  return [...unique.values()].map((handle) => {
    const [label, id] = readAttributes(binding, session, handle, [CKA_LABEL, CKA_ID]) as [
      Buffer,
      Buffer,
    ];
    return { handle, label: label.toString('utf8'), id: id.toString('hex') };
  });
}

function objectExists(token: string, uri: Pkcs11Uri, conflicts: Conflict[]): KmsJwtError {
  const listed = conflicts.map(
    (c) => `label "${c.label}" id=${encodeUriId(Buffer.from(c.id, 'hex'))}`,
  );
  return new KmsJwtError(
    'ERR_PKCS11_OBJECT_EXISTS',
    `Token "${token}" already holds ${conflicts.length} object(s) with label "${uri.object}" or ` +
      `id=${encodeUriId(uri.id!)}: ${listed.join('; ')}. Nothing was written. Choose another ` +
      'label and id, or pass overwrite (kms-jwt import --overwrite) to replace them.',
    { details: { token, conflicts: conflicts.map((c) => ({ label: c.label, id: c.id })) } },
  );
}

interface CreatedObjects {
  privateKey: Handle;
  publicKey: Handle;
}

/** The token, label and ID of an import, as its error messages and details name them. */
interface ImportTarget {
  token: string;
  object: string;
  /** The CKA_ID, percent-encoded as in a pkcs11: URI. */
  id: string;
}

function describeTarget(token: string, uri: Pkcs11Uri): ImportTarget {
  return { token, object: uri.object!, id: encodeUriId(uri.id!) };
}

function createKeyObjects(
  binding: Pkcs11Binding,
  session: Handle,
  uri: Pkcs11Uri,
  material: KeyMaterial,
  target: ImportTarget,
): CreatedObjects {
  const common: Attribute[] = [
    { type: CKA_KEY_TYPE, value: CKK_EC },
    { type: CKA_TOKEN, value: true },
    { type: CKA_LABEL, value: uri.object! },
    { type: CKA_ID, value: uri.id! },
    { type: CKA_EC_PARAMS, value: p256Parameters },
  ];
  const privateTemplate: Attribute[] = [
    { type: CKA_CLASS, value: CKO_PRIVATE_KEY },
    ...common,
    { type: CKA_PRIVATE, value: true },
    { type: CKA_SENSITIVE, value: true },
    { type: CKA_EXTRACTABLE, value: false },
    { type: CKA_SIGN, value: true },
    { type: CKA_DERIVE, value: false },
    { type: CKA_VALUE, value: material.scalar },
  ];
  // CKA_EC_POINT is a DER OCTET STRING (04 41) around the uncompressed point
  // (PKCS#11 v2.40 §2.3.3).
  const publicTemplate: Attribute[] = [
    { type: CKA_CLASS, value: CKO_PUBLIC_KEY },
    ...common,
    { type: CKA_PRIVATE, value: false },
    { type: CKA_VERIFY, value: true },
    { type: CKA_EC_POINT, value: Buffer.concat([Buffer.from([0x04, 0x41]), material.point]) },
  ];

  const privateKey = createObject(binding, session, privateTemplate, 'private key', target);
  try {
    const publicKey = createObject(binding, session, publicTemplate, 'public key', target);
    return { privateKey, publicKey };
  } catch (error) {
    destroyQuietly(binding, session, privateKey);
    throw error;
  }
}

function createObject(
  binding: Pkcs11Binding,
  session: Handle,
  template: Attribute[],
  what: string,
  target: ImportTarget,
): Handle {
  try {
    return binding.C_CreateObject(session, template);
  } catch (error) {
    throw importFailed(target, `C_CreateObject for the ${what}`, error);
  }
}

function importFailed(target: ImportTarget, step: string, error: unknown): KmsJwtError {
  const name = returnValueName(error);
  return new KmsJwtError(
    'ERR_PKCS11_IMPORT_FAILED',
    `The import of "${target.object}" (id=${target.id}) into token "${target.token}" failed at ` +
      `${step}: ${name}. The new objects were destroyed. ${fixFor(error)} Some HSMs forbid ` +
      'importing private keys by policy.',
    { cause: error, details: { ...target, step, returnValue: name } },
  );
}

async function proveImport(
  binding: Pkcs11Binding,
  session: Handle,
  created: CreatedObjects,
  material: KeyMaterial,
  target: ImportTarget,
): Promise<void> {
  const [point] = readAttributes(binding, session, created.publicKey, [CKA_EC_POINT]) as [Buffer];
  if (!ecPointToPublicKey(point, 'the imported public key').equals(material.publicKey)) {
    throw proofFailed(target, 'the public-key object does not hold the public key of the .p8');
  }

  const input = randomBytes(32);
  binding.C_SignInit(session, { mechanism: CKM_ECDSA }, created.privateKey);
  const signature = await binding.C_SignAsync(session, sha256(input), Buffer.alloc(128));
  const valid =
    signature.length === 64 &&
    verify('sha256', input, { key: material.publicKey, dsaEncoding: 'ieee-p1363' }, signature);
  if (!valid) {
    throw proofFailed(target, `a test signature (${signature.length} bytes) does not verify`);
  }

  assertProtected(binding, session, created.privateKey, target);
}

function assertProtected(
  binding: Pkcs11Binding,
  session: Handle,
  handle: Handle,
  target: ImportTarget,
): void {
  const flags = readAttributes(binding, session, handle, [
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_SENSITIVE,
    CKA_EXTRACTABLE,
    CKA_SIGN,
  ]).map((value) => value[0] === 1);
  const [isToken, isPrivate, sensitive, extractable, canSign] = flags;
  if (!isToken || !isPrivate || !sensitive || extractable || !canSign) {
    throw proofFailed(
      target,
      `the private key reads back as CKA_TOKEN=${isToken}, CKA_PRIVATE=${isPrivate}, ` +
        `CKA_SENSITIVE=${sensitive}, CKA_EXTRACTABLE=${extractable}, CKA_SIGN=${canSign}`,
    );
  }

  let readable = true;
  try {
    readAttributes(binding, session, handle, [CKA_VALUE]);
  } catch {
    readable = false;
  }
  if (readable) throw proofFailed(target, 'the token returns CKA_VALUE of the private key');
}

function proofFailed(target: ImportTarget, problem: string): KmsJwtError {
  return new KmsJwtError(
    'ERR_PKCS11_IMPORT_VERIFY_FAILED',
    `The import of "${target.object}" (id=${target.id}) into token "${target.token}" did not ` +
      `prove itself: ${problem}. The new objects were destroyed. The token does not keep ` +
      "imported keys as requested: report this message to the token's vendor, and do not " +
      'import keys into it.',
    { details: { ...target, problem } },
  );
}

function importResult(
  connection: TokenConnection,
  uri: Pkcs11Uri,
  material: KeyMaterial,
  replaced: number,
): ImportResult {
  const pathUri: Pkcs11Uri = {
    filter: { token: connection.token.label, serial: uri.filter.serial },
    object: uri.object,
    id: uri.id,
    type: 'private',
    unknownPathAttributes: [],
  };
  // The PIN never goes into the printed URI: pin-source is kept, pin-value is not.
  const query: string[] = [];
  if (uri.modulePath !== undefined) query.push(`module-path=${encodeQueryValue(uri.modulePath)}`);
  if (uri.pinSource !== undefined) query.push(`pin-source=${encodeQueryValue(uri.pinSource)}`);
  const reference = formatPathAttributes(pathUri) + (query.length > 0 ? `?${query.join('&')}` : '');

  return {
    reference,
    publicKey: material.publicKey,
    details: {
      token: connection.token.label,
      object: uri.object!,
      id: uri.id!.toString('hex'),
      modulePath: connection.modulePath,
      replacedObjects: String(replaced),
    },
  };
}

function pinMissing(token: string): KmsJwtError {
  return new KmsJwtError(
    'ERR_PKCS11_PIN_MISSING',
    `Importing into token "${token}" needs the user PIN, because private token objects can only ` +
      'be created after login. Set pin-source=file:/PATH, the pin option or KMS_JWT_PKCS11_PIN.',
    { details: { token } },
  );
}

function destroy(binding: Pkcs11Binding, session: Handle, handle: Handle): void {
  try {
    binding.C_DestroyObject(session, handle);
  } catch (error) {
    throw operationFailed('C_DestroyObject', 'an object being replaced', error);
  }
}

function destroyQuietly(binding: Pkcs11Binding, session: Handle, handle: Handle): void {
  try {
    binding.C_DestroyObject(session, handle);
  } catch {
    // Already gone, or the session broke; nothing more can be undone here.
  }
}

function closeQuietly(binding: Pkcs11Binding, session: Handle): void {
  try {
    binding.C_CloseSession(session);
  } catch {
    // The session may already be invalid.
  }
}
