/**
 * Cloud KMS failures with their own codes that the other tests do not reach: UNAUTHENTICATED,
 * INTERNAL (ERR_GCP_KMS_REQUEST_FAILED), ALREADY_EXISTS from CreateImportJob, and a GetPublicKey
 * PEM that is not a P-256 public key although its CRC32C is right. The emulator sends each with
 * the real gRPC status code and the service's text to the real @google-cloud/kms client.
 */
import { KeyManagementServiceClient } from '@google-cloud/kms';
import { grpc } from 'google-gax';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createGcpKmsSigner, importP8ToGcpKms } from '../../adapters/gcp-kms/index.js';
import { signJwt } from '../../src/jws.js';
import type { SignerEvent } from '../../src/signer.js';
import { GcpKmsEmulator } from '../emulators/gcp-kms/index.js';
import {
  clientSecretParts,
  type CodedError,
  keyRing,
  rejection,
  spkiPem,
  startEmulator,
} from './support.js';

let kms: GcpKmsEmulator;

beforeAll(async () => {
  kms = await startEmulator();
});

afterAll(async () => {
  await kms.stop();
});

beforeEach(() => {
  kms.reset();
});

/** Joins the text that reaches a caller or a log: the message, the details and every event. */
function visibleText(error: CodedError, events: SignerEvent[] = []): string {
  return `${error.message}\n${JSON.stringify(error.details)}\n${JSON.stringify(events)}`;
}

const unauthenticatedText = 'Request had invalid authentication credentials';

describe('Cloud KMS UNAUTHENTICATED', () => {
  it('maps it on AsymmetricSign', async () => {
    const key = kms.createKey({ keyRing });
    const events: SignerEvent[] = [];
    const signer = await createGcpKmsSigner(kms.reference(key.versionName), {
      onEvent: (event) => events.push(event),
    });
    kms.reset();
    kms.faults.unauthenticated = Infinity;
    const parts = clientSecretParts();
    const error = await rejection(signJwt(signer, parts));
    await signer.close?.();

    expect(error.code).toBe('ERR_GCP_KMS_UNAUTHENTICATED');
    expect(error.message).toContain(`Cloud KMS AsymmetricSign on ${key.versionName} failed`);
    expect(error.message).toContain('the request carried no valid credentials');
    expect(error.message).toContain(unauthenticatedText);
    expect(error.message).toContain('Check Application Default Credentials');
    expect(error.details).toMatchObject({
      operation: 'AsymmetricSign',
      resource: key.versionName,
      grpcCode: 16,
    });
    expect(error.details!.serverMessage).toContain(unauthenticatedText);
    expect(kms.count('AsymmetricSign')).toBe(1);
    expect(visibleText(error, events)).not.toContain(parts.payload.sub);
    expect(visibleText(error, events)).not.toMatch(/authorization|bearer/i);
  });

  it('maps it while the signer is created', async () => {
    const key = kms.createKey({ keyRing });
    kms.faults.unauthenticated = Infinity;
    const error = await rejection(createGcpKmsSigner(kms.reference(key.versionName)));

    expect(error.code).toBe('ERR_GCP_KMS_UNAUTHENTICATED');
    expect(error.details!.resource).toBe(key.versionName);
    expect(error.details!.grpcCode).toBe(16);
    expect(error.message).toContain(key.versionName);
    expect(error.message).toContain('Check Application Default Credentials');
  });
});

/** Creates a throwaway self-signed certificate for 127.0.0.1 with the openssl command. */
function createLoopbackCertificate(): { key: Buffer; cert: Buffer } {
  const folder = mkdtempSync(join(tmpdir(), 'kms-jwt-tls-'));
  try {
    const keyPath = join(folder, 'key.pem');
    const certPath = join(folder, 'cert.pem');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'].concat([
        ...['-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', '/CN=127.0.0.1'],
        ...['-addext', 'subjectAltName=IP:127.0.0.1'],
      ]),
      { stdio: 'pipe' },
    );
    return { key: readFileSync(keyPath), cert: readFileSync(certPath) };
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

describe('Cloud KMS UNAUTHENTICATED with an access token', () => {
  // Google rejects a revoked or expired OAuth access token with UNAUTHENTICATED. grpc-js sends
  // call credentials over TLS only, so this emulator serves TLS with a throwaway certificate.
  const accessToken = `ya29.test-${randomBytes(24).toString('hex')}`;
  let tlsKms: GcpKmsEmulator;
  let client: KeyManagementServiceClient;

  beforeAll(async () => {
    const tls = createLoopbackCertificate();
    tlsKms = await new GcpKmsEmulator().start(tls);
    const bearer = grpc.credentials.createFromMetadataGenerator((_context, callback) => {
      const metadata = new grpc.Metadata();
      metadata.add('authorization', `Bearer ${accessToken}`);
      callback(null, metadata);
    });
    client = new KeyManagementServiceClient({
      apiEndpoint: tlsKms.host,
      port: tlsKms.port,
      sslCreds: grpc.credentials.combineChannelCredentials(
        grpc.credentials.createSsl(tls.cert),
        bearer,
      ),
      universeDomain: 'googleapis.com',
    });
  });

  afterAll(async () => {
    await client?.close();
    await tlsKms?.stop();
  });

  it('keeps the token out of the error', async () => {
    const key = tlsKms.createKey({ keyRing });
    const events: SignerEvent[] = [];
    const signer = await createGcpKmsSigner(`gcpkms:${key.versionName}`, {
      client,
      onEvent: (event) => events.push(event),
    });
    expect(tlsKms.calls[0]!.metadata.authorization).toBe(`Bearer ${accessToken}`);

    tlsKms.faults.unauthenticated = Infinity;
    const error = await rejection(signJwt(signer, clientSecretParts()));
    await signer.close?.();

    expect(error.code).toBe('ERR_GCP_KMS_UNAUTHENTICATED');
    expect(error.message).toContain(`Cloud KMS AsymmetricSign on ${key.versionName} failed`);
    expect(error.details!.grpcCode).toBe(16);
    expect(visibleText(error, events)).not.toContain(accessToken);
    expect(String((error.cause as Error).message)).not.toContain(accessToken);
    expect(String((error.cause as Error).stack)).not.toContain(accessToken);
  });
});

describe('Cloud KMS INTERNAL', () => {
  it('becomes ERR_GCP_KMS_REQUEST_FAILED', async () => {
    const key = kms.createKey({ keyRing });
    const signer = await createGcpKmsSigner(kms.reference(key.versionName));
    kms.reset();
    kms.faults.internal = Infinity;
    const input = Buffer.from('eyJhbGciOiJFUzI1NiJ9.eyJzZWNyZXQiOiJpbnRlcm5hbCJ9');
    const error = await rejection(signer.sign(input));
    await signer.close?.();

    expect(error.code).toBe('ERR_GCP_KMS_REQUEST_FAILED');
    expect(error.message).toContain(`Cloud KMS AsymmetricSign on ${key.versionName} failed`);
    expect(error.message).toContain('gRPC status 13 (Internal error encountered.)');
    expect(error.message).toContain('Retry later if the failure is transient');
    expect(error.details).toMatchObject({
      operation: 'AsymmetricSign',
      resource: key.versionName,
      grpcCode: 13,
      serverMessage: 'Internal error encountered.',
    });
    expect((error.cause as { code?: unknown }).code).toBe(13);
    // INTERNAL is not retried: only UNAVAILABLE and DEADLINE_EXCEEDED are.
    expect(kms.count('AsymmetricSign')).toBe(1);
    expect(visibleText(error)).not.toContain(input.toString());
  });
});

describe('Cloud KMS ALREADY_EXISTS', () => {
  it('is the cause of a failed import', async () => {
    const privateKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const cryptoKey = `${keyRing}/cryptoKeys/job-taken`;
    kms.faults.importJobExists = 1;
    const error = await rejection(
      importP8ToGcpKms(privateKey, kms.reference(cryptoKey), { pollIntervalMs: 5 }),
    );

    expect(error.code).toBe('ERR_GCP_KMS_IMPORT_FAILED');
    expect(error.details).toMatchObject({
      step: 'create-import-job',
      causeCode: 'ERR_GCP_KMS_ALREADY_EXISTS',
      cryptoKey,
    });
    expect(error.details!.versionMayExist).toBeUndefined();
    expect(error.message).toContain('Cloud KMS import failed at step "create-import-job"');

    const cause = error.cause as CodedError;
    expect(cause.code).toBe('ERR_GCP_KMS_ALREADY_EXISTS');
    expect(cause.message).toMatch(
      new RegExp(`^Cloud KMS CreateImportJob on ${keyRing}/importJobs/kms-jwt-\\S+ failed`),
    );
    expect(cause.message).toContain('the resource already exists (ImportJob ');
    expect(cause.message).toContain('Use another ID, or reuse the existing resource.');
    expect(cause.details).toMatchObject({ operation: 'CreateImportJob', grpcCode: 6 });
    expect(kms.count('CreateImportJob')).toBe(1);

    const scalar = privateKey.export({ format: 'jwk' }).d!;
    expect(visibleText(error)).not.toContain(scalar);
    expect(visibleText(cause)).not.toContain(scalar);
  });
});

describe('Cloud KMS GetPublicKey PEM', () => {
  const p384Pem = spkiPem(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey);
  const rsaPem = spkiPem(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey);
  const cases = [
    {
      name: 'a PEM that is no key',
      pem: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n',
      says: 'returned a PEM that is not a public key',
      found: undefined,
    },
    {
      name: 'a P-384 key',
      pem: p384Pem,
      says: 'says EC_SIGN_P256_SHA256 but returned an EC P-384 key',
      found: 'an EC P-384 key',
    },
    {
      name: 'an RSA key',
      pem: rsaPem,
      says: 'says EC_SIGN_P256_SHA256 but returned an RSA key',
      found: 'an RSA key',
    },
  ];

  for (const { name, pem, says, found } of cases) {
    it(`rejects ${name}`, async () => {
      const key = kms.createKey({ keyRing });
      kms.faults.publicKeyPem = pem;
      const error = await rejection(createGcpKmsSigner(kms.reference(key.versionName)));

      expect(error.code).toBe('ERR_GCP_KMS_PUBLIC_KEY_INVALID');
      expect(error.message).toContain(`Cloud KMS GetPublicKey on ${key.versionName}`);
      expect(error.message).toContain(says);
      expect(error.message).toContain('Check that the endpoint is Cloud KMS');
      expect(error.details).toMatchObject({ operation: 'GetPublicKey', resource: key.versionName });
      expect(error.details!.found).toBe(found);
      expect(error.message).not.toContain('-----BEGIN');
      // The PEM passed its CRC32C check, so it was not retried as a damaged response.
      expect(kms.count('GetPublicKey')).toBe(1);
    });
  }
});
