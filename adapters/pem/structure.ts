/**
 * What a DER key structure is, and which check a bad one fails. `assertCompleteDer` is a
 * hand-written length check on the outer SEQUENCE (X.690 §8.1.3), run on every key. The full
 * structure walk uses asn1js, loaded lazily, and runs only when node:crypto rejects a key or
 * the key is not the one expected, so that a good key never pays for it. It recognises PKCS#8
 * (RFC 5958), encrypted PKCS#8 (RFC 5958 §3), SEC1 (RFC 5915), SPKI (RFC 5280 §4.1.2.7), X.509
 * certificates, PKCS#1 RSA keys (RFC 8017 appendix A.1), OpenSSL DSA keys and PKCS#12 files.
 */
import { keyError, type KeyOrigin } from './errors.js';

/** What a DER structure turned out to be. `problem` names the first check it failed. */
export type KeyStructure =
  | { kind: 'pkcs8'; algorithm: string; curve?: string; problem?: string }
  | { kind: 'encrypted-pkcs8' }
  | { kind: 'sec1'; curve?: string; problem?: string }
  | { kind: 'spki'; algorithm: string; curve?: string; problem?: string }
  | { kind: 'certificate'; algorithm?: string; curve?: string; problem?: string }
  | { kind: 'pkcs1-private' }
  | { kind: 'pkcs1-public' }
  | { kind: 'dsa-private' }
  | { kind: 'pkcs12' }
  | { kind: 'unknown'; problem: string };

const algorithmNames: Record<string, string> = {
  '1.2.840.10045.2.1': 'EC',
  '1.2.840.113549.1.1.1': 'RSA',
  '1.2.840.113549.1.1.10': 'RSA-PSS',
  '1.3.101.112': 'Ed25519',
  '1.3.101.113': 'Ed448',
  '1.3.101.110': 'X25519',
  '1.3.101.111': 'X448',
  '1.2.840.10040.4.1': 'DSA',
  '1.2.840.113549.1.3.1': 'DH',
  '1.2.840.10046.2.1': 'DH',
  '1.3.132.1.12': 'ECDH',
  '1.2.156.10197.1.301': 'SM2',
};

const curveNames: Record<string, string> = {
  '1.2.840.10045.3.1.7': 'P-256',
  '1.3.132.0.34': 'P-384',
  '1.3.132.0.35': 'P-521',
  '1.3.132.0.10': 'secp256k1',
  '1.3.132.0.33': 'P-224',
  '1.2.840.10045.3.1.1': 'P-192',
  '1.3.36.3.3.2.8.1.1.7': 'brainpoolP256r1',
  '1.3.36.3.3.2.8.1.1.11': 'brainpoolP384r1',
  '1.3.36.3.3.2.8.1.1.13': 'brainpoolP512r1',
  '1.2.156.10197.1.301': 'SM2',
};

const ecPublicKeyOid = '1.2.840.10045.2.1';
const p256Oid = '1.2.840.10045.3.1.7';
const pkcs7DataOid = '1.2.840.113549.1.7.1';

// Every Apple .p8 key is 138 bytes of DER whose first 36 bytes (48 base64 characters,
// "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg") are fixed: a PKCS#8 header naming
// id-ecPublicKey on prime256v1, then the SEC1 header of a 32-byte private key.
const appleKeyLength = 138;
const applePrefix = Buffer.from('MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg', 'base64');

/** Returns the display name of an algorithm OID, or the OID itself. */
export function algorithmName(oid: string): string {
  return algorithmNames[oid] ?? `unknown algorithm (OID ${oid})`;
}

/** Returns the display name of a curve OID, or the OID itself. */
export function curveName(oid: string): string {
  return curveNames[oid] ?? `unknown curve (OID ${oid})`;
}

/** Returns true when `der` starts like a P-256 PKCS#8 key from Apple. */
export function hasApplePrefix(der: Uint8Array): boolean {
  const length = Math.min(der.length, applePrefix.length);
  return length > 8 && Buffer.from(der.subarray(0, length)).equals(applePrefix.subarray(0, length));
}

/**
 * Checks that `der` is one complete SEQUENCE: not cut short, with no bytes after it. The
 * message gives sizes only, and compares a key that starts like an Apple .p8 with its fixed size.
 *
 * @example
 * assertCompleteDer(der.subarray(0, 100), origin); // throws ERR_KEY_TRUNCATED
 */
export function assertCompleteDer(der: Uint8Array, origin: KeyOrigin, where: string): void {
  const outer = readOuterLength(der);
  if (outer === 'not-sequence') {
    throw keyError(
      'ERR_KEY_ASN1_INVALID',
      origin,
      `${where} does not start with a DER SEQUENCE, so it is not a PKCS#8, SEC1 or SPKI key. ` +
        'Copy the key again from its source.',
    );
  }

  const declared = outer === 'short' ? undefined : outer.header + outer.content;
  if (declared === undefined || declared > der.length) {
    throw keyError('ERR_KEY_TRUNCATED', origin, truncatedMessage(der, declared, where), {
      details: { bytes: der.length, declaredBytes: declared },
    });
  }
  if (declared < der.length) {
    throw keyError(
      'ERR_KEY_ASN1_INVALID',
      origin,
      `${where} has ${der.length - declared} bytes after the end of its DER structure ` +
        `(${declared} bytes). Two keys may have been joined; keep one.`,
      { details: { bytes: der.length, declaredBytes: declared } },
    );
  }
}

function truncatedMessage(der: Uint8Array, declared: number | undefined, where: string): string {
  const size = declared === undefined ? '' : `its DER header announces ${declared} bytes but `;
  const base = `${where} is truncated: ${size}only ${der.length} bytes are present.`;
  if (!hasApplePrefix(der)) return `${base} Copy the whole key again.`;
  return (
    `${base} It starts like an Apple .p8 key, which is ${appleKeyLength} bytes ` +
    '(184 base64 characters in lines of 64, 64 and 56). Copy the whole file again.'
  );
}

function readOuterLength(der: Uint8Array) {
  if (der.length < 2) return 'short' as const;
  if (der[0] !== 0x30) return 'not-sequence' as const;

  const first = der[1] ?? 0;
  if (first < 0x80) return { header: 2, content: first };
  const count = first & 0x7f;
  // 0x80 is BER's indefinite length, which DER forbids (X.690 §10.1).
  if (count === 0 || count > 3) return 'not-sequence' as const;
  if (der.length < 2 + count) return 'short' as const;

  let content = 0;
  for (let i = 0; i < count; i++) content = content * 256 + (der[2 + i] ?? 0);
  return { header: 2 + count, content };
}

/** A decoded ASN.1 element, reduced to what the checks below need. */
interface Asn1Node {
  tagClass: number;
  tagNumber: number;
  constructed: boolean;
  children: Asn1Node[];
  content: Uint8Array;
  oid?: string;
}

const universal = 1;
const contextSpecific = 3;
const tags = { integer: 2, bitString: 3, octetString: 4, oid: 6, sequence: 16, set: 17 };

/**
 * Works out which key structure `der` holds, naming the first check that fails.
 *
 * @example
 * await describeKeyStructure(rsaPkcs8Der); // { kind: 'pkcs8', algorithm: 'RSA' }
 */
export async function describeKeyStructure(der: Uint8Array): Promise<KeyStructure> {
  const root = await parseAsn1(der);
  if (typeof root === 'string') return { kind: 'unknown', problem: root };
  if (!isUniversal(root, tags.sequence)) {
    return { kind: 'unknown', problem: 'the outer element is not a SEQUENCE' };
  }

  const [first, second, third] = root.children;
  if (first && isUniversal(first, tags.integer)) {
    // A PFX (RFC 7292 §4) also starts INTEGER, SEQUENCE, so it is checked for before PKCS#8.
    if (isPkcs12(root)) return { kind: 'pkcs12' };
    if (second && isUniversal(second, tags.sequence)) return describePkcs8(root);
    if (second && isUniversal(second, tags.octetString)) return describeSec1(root);
    return describeIntegerSequence(root);
  }
  if (first && isUniversal(first, tags.sequence)) {
    if (second && isUniversal(second, tags.octetString)) return { kind: 'encrypted-pkcs8' };
    if (second && isUniversal(second, tags.bitString) && root.children.length === 2) {
      return describeSpki(root);
    }
    if (second && isUniversal(second, tags.sequence) && third) return describeCertificate(root);
  }
  return {
    kind: 'unknown',
    problem:
      'the SEQUENCE matches none of PKCS#8 (INTEGER, SEQUENCE, OCTET STRING), SEC1 ' +
      '(INTEGER 1, OCTET STRING) or SPKI (SEQUENCE, BIT STRING)',
  };
}

async function parseAsn1(der: Uint8Array): Promise<Asn1Node | string> {
  const asn1js = await import('asn1js');
  const parsed = asn1js.fromBER(der);
  if (parsed.offset === -1) return `the DER does not parse as ASN.1 (${parsed.result.error})`;
  if (parsed.offset !== der.length) return 'bytes follow the end of the DER structure';
  return toNode(parsed.result as unknown as RawBlock);
}

interface RawBlock {
  idBlock: { tagClass: number; tagNumber: number; isConstructed: boolean };
  valueBlock: { value?: RawBlock[]; valueHexView?: Uint8Array };
  getValue?: () => unknown;
}

function toNode(block: RawBlock): Asn1Node {
  const { tagClass, tagNumber, isConstructed } = block.idBlock;
  const node: Asn1Node = {
    tagClass,
    tagNumber,
    constructed: isConstructed,
    children: isConstructed ? (block.valueBlock.value ?? []).map(toNode) : [],
    content: block.valueBlock.valueHexView ?? new Uint8Array(0),
  };
  if (tagClass === universal && tagNumber === tags.oid && block.getValue) {
    node.oid = String(block.getValue());
  }
  return node;
}

function isUniversal(node: Asn1Node, tag: number): boolean {
  return node.tagClass === universal && node.tagNumber === tag;
}

function integerValue(node: Asn1Node | undefined): number | undefined {
  if (!node || !isUniversal(node, tags.integer) || node.content.length > 4) return undefined;
  return node.content.reduce((value, byte) => value * 256 + byte, 0);
}

function readAlgorithm(node: Asn1Node | undefined) {
  const oid = node?.children[0]?.oid;
  if (!node || !isUniversal(node, tags.sequence) || oid === undefined) {
    return { problem: 'the AlgorithmIdentifier is not a SEQUENCE starting with an OID' };
  }
  const parameters = node.children[1];
  const algorithm = algorithmName(oid);
  if (oid !== ecPublicKeyOid) return { algorithm };
  if (parameters && isUniversal(parameters, tags.sequence)) {
    return { algorithm, problem: 'the curve is given as explicit parameters, not a named curve' };
  }
  if (parameters?.oid === undefined) {
    return { algorithm, problem: 'the id-ecPublicKey algorithm has no named-curve parameter' };
  }
  return { algorithm, curve: curveName(parameters.oid), curveOid: parameters.oid };
}

async function describePkcs8(root: Asn1Node): Promise<KeyStructure> {
  const version = integerValue(root.children[0]);
  const read = readAlgorithm(root.children[1]);
  const algorithm = read.algorithm ?? 'unreadable algorithm';
  const structure = { kind: 'pkcs8' as const, algorithm, curve: read.curve };
  if (read.problem) return { ...structure, problem: `PKCS#8 check failed: ${read.problem}` };
  if (version !== 0 && version !== 1) {
    return { ...structure, problem: 'PKCS#8 check failed: the version is neither 0 nor 1' };
  }
  if (read.curveOid !== p256Oid) return structure;

  // The privateKey OCTET STRING of an EC PKCS#8 key holds a SEC1 ECPrivateKey (RFC 5915 §2).
  const inner = await parseAsn1(root.children[2]?.content ?? new Uint8Array(0));
  const problem =
    typeof inner === 'string'
      ? `the SEC1 key inside does not parse: ${inner}`
      : checkSec1(inner, p256Oid);
  return problem ? { ...structure, problem: `PKCS#8 check failed: ${problem}` } : structure;
}

function describeSec1(root: Asn1Node): KeyStructure {
  const parameters = root.children.find((child) => isContext(child, 0));
  const curveOid = parameters?.children[0]?.oid;
  const curve = curveOid === undefined ? undefined : curveName(curveOid);
  const problem = checkSec1(root, curveOid ?? p256Oid);
  return problem
    ? { kind: 'sec1', curve, problem: `SEC1 check failed: ${problem}` }
    : { kind: 'sec1', curve };
}

/** Returns the first SEC1 ECPrivateKey check (RFC 5915 §3) that `node` fails, if any. */
function checkSec1(node: Asn1Node, expectedCurveOid: string): string | undefined {
  if (!isUniversal(node, tags.sequence)) return 'the ECPrivateKey is not a SEQUENCE';
  const [version, privateKey, ...optional] = node.children;
  if (integerValue(version) !== 1) return 'the ECPrivateKey version is not 1';
  if (!privateKey || !isUniversal(privateKey, tags.octetString)) {
    return 'the private key is not an OCTET STRING';
  }
  if (expectedCurveOid !== p256Oid) return undefined;
  if (privateKey.content.length !== 32) {
    return `the private key is ${privateKey.content.length} bytes, but a P-256 key is 32`;
  }
  return checkSec1Optional(optional);
}

function checkSec1Optional(optional: Asn1Node[]): string | undefined {
  for (const field of optional) {
    if (isContext(field, 0) && field.children[0]?.oid !== p256Oid) {
      return 'the [0] parameters do not name prime256v1';
    }
    if (isContext(field, 1)) {
      const point = field.children[0];
      if (!point || !isUniversal(point, tags.bitString))
        return 'the [1] public key is not a BIT STRING';
      // The point is 0x04 || X || Y (SEC 1 §2.3.3). asn1js leaves the BIT STRING's leading
      // unused-bits byte out of the content it returns.
      if (point.content.length !== 65 || point.content[0] !== 0x04) {
        return 'the [1] public key is not an uncompressed 65-byte P-256 point';
      }
    }
  }
  return undefined;
}

function isContext(node: Asn1Node, tag: number): boolean {
  return node.tagClass === contextSpecific && node.tagNumber === tag && node.constructed;
}

function describeIntegerSequence(root: Asn1Node): KeyStructure {
  const allIntegers = root.children.every((child) => isUniversal(child, tags.integer));
  const count = root.children.length;
  if (allIntegers && count === 9) return { kind: 'pkcs1-private' };
  if (allIntegers && count === 2) return { kind: 'pkcs1-public' };
  if (allIntegers && count === 6) return { kind: 'dsa-private' };

  return {
    kind: 'unknown',
    problem: 'the SEQUENCE starts with an INTEGER but is neither PKCS#8, SEC1 nor PKCS#1',
  };
}

/** Returns true for a PFX: version 3, then a ContentInfo of type pkcs7-data (RFC 7292 §4). */
function isPkcs12(root: Asn1Node): boolean {
  const contentOid = root.children[1]?.children[0]?.oid;
  return integerValue(root.children[0]) === 3 && contentOid === pkcs7DataOid;
}

function describeSpki(root: Asn1Node): KeyStructure {
  const read = readAlgorithm(root.children[0]);
  const algorithm = read.algorithm ?? 'unreadable algorithm';
  const problem = read.problem ? `SPKI check failed: ${read.problem}` : undefined;
  return { kind: 'spki', algorithm, curve: read.curve, ...(problem ? { problem } : {}) };
}

function describeCertificate(root: Asn1Node): KeyStructure {
  // TBSCertificate: [0] version, serialNumber, signature, issuer, validity, subject, SPKI, ...
  const tbs = root.children[0];
  const fields = tbs?.children ?? [];
  const offset = fields[0] && isContext(fields[0], 0) ? 1 : 0;
  const spki = fields[offset + 5];
  if (!spki || !isUniversal(spki, tags.sequence) || spki.children.length !== 2) {
    return { kind: 'certificate', problem: 'the certificate has no readable SubjectPublicKeyInfo' };
  }
  const inner = describeSpki(spki);
  return inner.kind === 'spki'
    ? { kind: 'certificate', algorithm: inner.algorithm, curve: inner.curve }
    : { kind: 'certificate' };
}

/**
 * Names a structure in words for messages, such as "an RSA private key (PKCS#8)".
 *
 * @example
 * describeStructure({ kind: 'sec1', curve: 'P-384' }); // 'an EC P-384 private key (SEC1)'
 */
export function describeStructure(structure: KeyStructure): string {
  switch (structure.kind) {
    case 'pkcs8':
      return `${article(keyName(structure.algorithm, structure.curve))} private key (PKCS#8)`;
    case 'encrypted-pkcs8':
      return 'an encrypted private key (encrypted PKCS#8)';
    case 'sec1':
      return `${article(keyName('EC', structure.curve))} private key (SEC1)`;
    case 'spki':
      return `${article(keyName(structure.algorithm, structure.curve))} public key (SPKI)`;
    case 'certificate':
      return structure.algorithm
        ? `an X.509 certificate holding ${article(keyName(structure.algorithm, structure.curve))} public key`
        : 'an X.509 certificate';
    case 'pkcs1-private':
      return 'an RSA private key (PKCS#1)';
    case 'pkcs1-public':
      return 'an RSA public key (PKCS#1)';
    case 'dsa-private':
      return 'a DSA private key';
    case 'pkcs12':
      return 'a PKCS#12 (.p12/.pfx) bundle';
    case 'unknown':
      return 'an unrecognised DER structure';
  }
}

function keyName(algorithm: string, curve: string | undefined): string {
  return algorithm === 'EC' ? `EC ${curve ?? 'unnamed-curve'}` : algorithm;
}

function article(phrase: string): string {
  // Acronyms take "an" when their first letter is spoken with a vowel sound: an RSA, an EC.
  return /^[AEFHILMNORSXaeiou]/.test(phrase) ? `an ${phrase}` : `a ${phrase}`;
}
