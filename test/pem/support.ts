/**
 * Helpers for the local key loader tests: throwaway keys made at test time in every encoding the
 * loader meets, and checks that an error is coded and carries no key text.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';

/** One P-256 key in the encodings the tests mangle. */
export interface P256Fixture {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** PKCS#8 PEM as OpenSSL 3 and Apple write it: 138 bytes of DER, lines of 64, 64 and 56. */
  pkcs8Pem: string;
  pkcs8Der: Buffer;
  /** SEC1 `EC PRIVATE KEY` PEM with the curve parameters and the public point (121 bytes). */
  sec1Pem: string;
  sec1Der: Buffer;
  /** PKCS#8 whose inner SEC1 key also names the curve: the 150-byte form older tools write. */
  pkcs8LongDer: Buffer;
  /** The public half as SPKI PEM. */
  spkiPem: string;
  /** The base64 body lines of `pkcs8Pem`. */
  bodyLines: string[];
}

/**
 * Creates a P-256 key whose PKCS#8 base64 body contains both "+" and "/", so that the rows that
 * swap the alphabet or escape slashes always change something.
 */
export function createP256Fixture(): P256Fixture {
  for (;;) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pkcs8Pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const body = bodyLinesOf(pkcs8Pem).join('');
    if (!body.includes('+') || !body.includes('/')) continue;

    const sec1Der = privateKey.export({ type: 'sec1', format: 'der' });
    return {
      privateKey,
      publicKey,
      pkcs8Pem,
      pkcs8Der: privateKey.export({ type: 'pkcs8', format: 'der' }),
      sec1Pem: privateKey.export({ type: 'sec1', format: 'pem' }).toString(),
      sec1Der,
      pkcs8LongDer: wrapSec1InPkcs8(sec1Der),
      spkiPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      bodyLines: bodyLinesOf(pkcs8Pem),
    };
  }
}

/** Returns the base64 lines between the armour lines of a PEM block. */
export function bodyLinesOf(pem: string): string[] {
  return pem
    .trim()
    .split('\n')
    .filter((line) => !line.startsWith('-----'));
}

/** Writes DER as PEM with `label`, wrapped at `width` characters. */
export function toPem(der: Uint8Array, label: string, width = 64): string {
  const body = Buffer.from(der).toString('base64');
  const lines = body.match(new RegExp(`.{1,${width}}`, 'g')) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * Wraps a SEC1 ECPrivateKey in PKCS#8 (RFC 5958) by hand, keeping its [0] curve parameters,
 * which node:crypto drops when it exports PKCS#8 itself.
 */
function wrapSec1InPkcs8(sec1Der: Buffer): Buffer {
  const version = Buffer.from('020100', 'hex');
  // AlgorithmIdentifier { id-ecPublicKey, prime256v1 }.
  const algorithm = Buffer.from('301306072a8648ce3d020106082a8648ce3d030107', 'hex');
  const privateKey = Buffer.concat([Buffer.from([0x04, sec1Der.length]), sec1Der]);
  const content = Buffer.concat([version, algorithm, privateKey]);
  return Buffer.concat([Buffer.from([0x30, 0x81, content.length]), content]);
}

/** Keys of other types and curves, as PKCS#8 PEM unless the name says otherwise. */
export function createOtherKeys() {
  const pkcs8 = (key: KeyObject) => key.export({ type: 'pkcs8', format: 'pem' }).toString();
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const secp256k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
  return {
    rsaPkcs8: pkcs8(rsa.privateKey),
    rsaPkcs1: rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    rsaPublic: rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    ed25519: pkcs8(generateKeyPairSync('ed25519').privateKey),
    x25519: pkcs8(generateKeyPairSync('x25519').privateKey),
    p384Pkcs8: pkcs8(p384.privateKey),
    p384Sec1: p384.privateKey.export({ type: 'sec1', format: 'pem' }).toString(),
    p384Public: p384.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    secp256k1Pkcs8: pkcs8(secp256k1.privateKey),
    secp256k1Sec1: secp256k1.privateKey.export({ type: 'sec1', format: 'pem' }).toString(),
  };
}

/**
 * Creates a self-signed X.509 certificate for `fixture`'s key with the openssl command, because
 * node:crypto reads certificates but cannot create them.
 */
export function createCertificatePem(fixture: P256Fixture): string {
  const folder = mkdtempSync(join(tmpdir(), 'kms-jwt-pem-cert-'));
  try {
    const keyPath = join(folder, 'key.pem');
    writeFileSync(keyPath, fixture.pkcs8Pem, { mode: 0o600 });
    const certificatePath = join(folder, 'certificate.pem');
    execFileSync('openssl', [
      'req',
      '-x509',
      '-new',
      '-key',
      keyPath,
      '-subj',
      '/CN=kms-jwt-signer test',
      '-days',
      '1',
      '-out',
      certificatePath,
    ]);
    return readFileSync(certificatePath, 'utf8');
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

/** Awaits `promise` and returns the error it rejects with, failing the test if it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected the promise to reject, but it resolved');
}

/** Collects the text an error exposes: messages, details and causes, all the way down. */
export function errorText(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    if (current instanceof Error) {
      parts.push(current.message, current.stack ?? '');
      parts.push(JSON.stringify((current as { details?: unknown }).details ?? {}));
      current = current.cause;
    } else {
      parts.push(String(current));
      current = undefined;
    }
  }
  return parts.join('\n');
}

/**
 * Asserts that no fragment of the key's text appears anywhere in `error`: no run of 12 base64
 * characters from any body line, in either alphabet.
 */
export function expectNoKeyText(error: unknown, pem: string): void {
  const text = errorText(error);
  for (const line of bodyLinesOf(pem)) {
    for (let start = 0; start + 12 <= line.length; start += 6) {
      const fragment = line.slice(start, start + 12);
      expect(text).not.toContain(fragment);
      expect(text).not.toContain(fragment.replace(/\+/g, '-').replace(/\//g, '_'));
    }
  }
}

/** Returns the public key of `key` as a JWK, for comparing two loads of the same key. */
export function jwkOf(key: KeyObject): unknown {
  return key.export({ format: 'jwk' });
}
