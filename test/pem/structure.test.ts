/**
 * The ASN.1 structure walk that names what a rejected key is. It must find no problem in a
 * well-formed P-256 key, so that a key node:crypto rejects for another reason is not blamed on
 * its public point, and it must name a PKCS#12 bundle instead of calling it a corrupt PKCS#8 key.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createPemSigner } from '../../adapters/pem/index.js';
import { describeKeyStructure } from '../../adapters/pem/structure.js';
import {
  createCertificatePem,
  createP256Fixture,
  expectNoKeyText,
  rejectionOf,
  toPem,
} from './support.js';

const key = createP256Fixture();

/** Encodes one DER element with a definite length of up to 65535 bytes. */
function encode(tag: number, content: Uint8Array): Buffer {
  const length = content.length;
  const header =
    length < 0x80
      ? [tag, length]
      : length < 0x100
        ? [tag, 0x81, length]
        : [tag, 0x82, length >> 8, length & 0xff];
  return Buffer.concat([Buffer.from(header), content]);
}

/** Builds a PKCS#12 bundle of the fixture's key and certificate with the openssl command. */
function createPkcs12(): Buffer {
  const folder = mkdtempSync(join(tmpdir(), 'kms-jwt-pem-p12-'));
  try {
    const keyPath = join(folder, 'key.pem');
    const certificatePath = join(folder, 'certificate.pem');
    const bundlePath = join(folder, 'bundle.p12');
    writeFileSync(keyPath, key.pkcs8Pem, { mode: 0o600 });
    writeFileSync(certificatePath, createCertificatePem(key));
    execFileSync('openssl', [
      ...['pkcs12', '-export', '-inkey', keyPath, '-in', certificatePath],
      ...['-passout', 'pass:kms-jwt-test', '-out', bundlePath],
    ]);
    return readFileSync(bundlePath);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

describe('describeKeyStructure', () => {
  it('finds no problem in PKCS#8', async () => {
    const structure = await describeKeyStructure(key.pkcs8Der);

    expect(structure).toEqual({ kind: 'pkcs8', algorithm: 'EC', curve: 'P-256' });
  });

  it('finds no problem in SEC1', async () => {
    const structure = await describeKeyStructure(key.sec1Der);

    expect(structure).toEqual({ kind: 'sec1', curve: 'P-256' });
  });

  it('names a compressed public point', async () => {
    const sec1 = Buffer.from(key.sec1Der);
    const point = sec1.indexOf(Buffer.from([0x03, 0x42, 0x00, 0x04]));
    sec1[point + 3] = 0x02;
    const structure = await describeKeyStructure(sec1);

    expect(structure.kind).toBe('sec1');
    expect('problem' in structure && structure.problem).toMatch(/uncompressed 65-byte/);
  });

  it('names a PKCS#12 bundle', async () => {
    const structure = await describeKeyStructure(createPkcs12());

    expect(structure).toEqual({ kind: 'pkcs12' });
  });
});

describe('loader errors from the structure walk', () => {
  it('blames the extra field, not the point', async () => {
    // A PKCS#8 key with an OCTET STRING appended to the outer SEQUENCE, which OpenSSL rejects.
    const inner = key.pkcs8Der.subarray(3);
    const extended = encode(0x30, Buffer.concat([inner, Buffer.from([0x04, 0x01, 0x00])]));
    const error = await rejectionOf(createPemSigner({ pem: toPem(extended, 'PRIVATE KEY') }));

    expect(error.code).toBe('ERR_KEY_ASN1_INVALID');
    expect(error.message).not.toMatch(/public key is not/);
    expect(error.message).toMatch(/EC P-256 private key \(PKCS#8\)/);
    expectNoKeyText(error, key.pkcs8Pem);
  });

  it('names a binary PKCS#12 file', async () => {
    const error = await rejectionOf(createPemSigner({ pem: createPkcs12() }));

    expect(error.code).toBe('ERR_KEY_FORMAT_UNSUPPORTED');
    expect(error.message).toMatch(/PKCS#12/);
    expect(error.message).toMatch(/openssl pkcs12/);
  });

  it('names a base64 PKCS#12 body', async () => {
    const error = await rejectionOf(createPemSigner({ pem: createPkcs12().toString('base64') }));

    expect(error.code).toBe('ERR_KEY_FORMAT_UNSUPPORTED');
    expect(error.message).toMatch(/PKCS#12/);
  });
});
