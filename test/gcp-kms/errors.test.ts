import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createGcpKmsSigner } from '../../adapters/gcp-kms/index.js';
import { signJwt } from '../../src/jws.js';
import type { Signer } from '../../src/signer.js';
import type { GcpKmsEmulator, GcpKmsFaults } from '../emulators/gcp-kms/index.js';
import { clientSecretParts, keyRing, rejection, startEmulator } from './support.js';

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

/** A ready signer with its calls so far cleared from the log. */
async function readySigner(): Promise<{ signer: Signer; versionName: string }> {
  const key = kms.createKey({ keyRing });
  const signer = await createGcpKmsSigner(kms.reference(key.versionName));
  kms.reset();
  return { signer, versionName: key.versionName };
}

describe('Cloud KMS error mapping on AsymmetricSign', () => {
  const cases: {
    fault: keyof GcpKmsFaults;
    code: string;
    says: string[];
    attempts: number;
  }[] = [
    {
      fault: 'permissionDenied',
      code: 'ERR_GCP_KMS_PERMISSION_DENIED',
      says: ['cloudkms.cryptoKeyVersions.useToSign', 'check the name too'],
      attempts: 1,
    },
    { fault: 'notFound', code: 'ERR_GCP_KMS_NOT_FOUND', says: ['not found'], attempts: 1 },
    {
      fault: 'failedPrecondition',
      code: 'ERR_GCP_KMS_FAILED_PRECONDITION',
      says: ['current state is: DISABLED', 'ENABLED version'],
      attempts: 1,
    },
    {
      fault: 'resourceExhausted',
      code: 'ERR_GCP_KMS_RESOURCE_EXHAUSTED',
      says: ['quota', 'Cache tokens'],
      attempts: 1,
    },
    {
      fault: 'unavailable',
      code: 'ERR_GCP_KMS_UNAVAILABLE',
      says: ['unavailable on every attempt'],
      attempts: 3,
    },
  ];

  for (const { fault, code, says, attempts } of cases) {
    it(`maps ${fault} to ${code}`, async () => {
      const { signer, versionName } = await readySigner();
      (kms.faults[fault] as number) = Infinity;
      const error = await rejection(signJwt(signer, clientSecretParts()));
      await signer.close?.();

      expect(error.code).toBe(code);
      expect(error.message).toContain(`Cloud KMS AsymmetricSign on ${versionName} failed`);
      for (const text of says) expect(error.message).toContain(text);
      expect(error.details!.operation).toBe('AsymmetricSign');
      expect(error.details!.resource).toBe(versionName);
      expect(typeof error.details!.grpcCode).toBe('number');
      expect((error.cause as { code?: unknown }).code).toBe(error.details!.grpcCode);
      expect(kms.count('AsymmetricSign')).toBe(attempts);
    });
  }

  for (const state of ['DISABLED', 'DESTROYED', 'PENDING_IMPORT']) {
    it(`maps a version turned ${state}`, async () => {
      const { signer, versionName } = await readySigner();
      kms.setVersionState(versionName, state);
      const error = await rejection(signer.sign(Buffer.from('a.b')));
      await signer.close?.();

      expect(error.code).toBe('ERR_GCP_KMS_FAILED_PRECONDITION');
      expect(error.message).toContain(`current state is: ${state}`);
      expect(kms.count('AsymmetricSign')).toBe(1);
    });
  }

  it('maps a passed deadline to ERR_GCP_KMS_TIMEOUT', async () => {
    const key = kms.createKey({ keyRing });
    const signer = await createGcpKmsSigner(kms.reference(key.versionName), {
      timeoutMs: 150,
      maxAttempts: 2,
    });
    kms.reset();
    kms.faults.slow = Infinity;
    kms.faults.slowMs = 5_000;
    const error = await rejection(signer.sign(Buffer.from('a.b')));
    await signer.close?.();

    expect(error.code).toBe('ERR_GCP_KMS_TIMEOUT');
    expect(error.message).toContain('raise timeoutMs');
    expect(error.details!.grpcCode).toBe(4);
    expect(kms.count('AsymmetricSign')).toBe(2);
  });
});

describe('Cloud KMS error mapping on set-up calls', () => {
  it('names viewPublicKey for GetPublicKey', async () => {
    const key = kms.createKey({ keyRing });
    kms.faults.deniedMethods = ['GetPublicKey'];
    const error = await rejection(createGcpKmsSigner(kms.reference(key.versionName)));
    expect(error.code).toBe('ERR_GCP_KMS_PERMISSION_DENIED');
    expect(error.message).toContain('cloudkms.cryptoKeyVersions.viewPublicKey');
    expect(error.message).toContain(`GetPublicKey on ${key.versionName}`);
  });

  it('maps an unknown version to ERR_GCP_KMS_NOT_FOUND', async () => {
    const key = kms.createKey({ keyRing });
    const missing = `${key.cryptoKeyName}/cryptoKeyVersions/9`;
    const error = await rejection(createGcpKmsSigner(kms.reference(missing)));
    expect(error.code).toBe('ERR_GCP_KMS_NOT_FOUND');
    expect(error.message).toContain(missing);
    expect(error.message).toContain('Check the project, location, key ring, key and version');
  });

  it('maps an unknown key while listing', async () => {
    const missing = `${keyRing}/cryptoKeys/absent`;
    const error = await rejection(createGcpKmsSigner(kms.reference(missing)));
    expect(error.code).toBe('ERR_GCP_KMS_VERSION_REQUIRED');
    expect(error.message).toContain('ERR_GCP_KMS_NOT_FOUND');
  });

  it('never puts the digest or signature in a message', async () => {
    const { signer } = await readySigner();
    kms.faults.wrongSignatureCrc32c = Infinity;
    const input = Buffer.from('eyJhbGciOiJFUzI1NiJ9.eyJzZWNyZXQiOiJ4In0');
    const error = await rejection(signer.sign(input));
    await signer.close?.();

    const request = kms.calls[0]!.request as { digest: { sha256: Buffer } };
    const digest = request.digest.sha256;
    const text = `${error.message} ${JSON.stringify(error.details)}`;
    expect(error.code).toBe('ERR_GCP_KMS_INTEGRITY');
    expect(text).not.toContain(digest.toString('hex'));
    expect(text).not.toContain(digest.toString('base64'));
    expect(text).not.toContain(input.toString());
  });
});
