/**
 * Every fault switch of the emulator, against a signer that goes through signJwt: the result is
 * either a token that jose and jsonwebtoken accept under the key the emulator really holds, or
 * a coded error. A token that fails verification would fail these tests, whatever its origin.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createGcpKmsSigner, type GcpKmsSignerOptions } from '../../adapters/gcp-kms/index.js';
import { signJwt } from '../../src/jws.js';
import type { SignerEvent } from '../../src/signer.js';
import type { GcpKmsEmulator, GcpKmsFaults } from '../emulators/gcp-kms/index.js';
import { clientSecretParts, keyRing, startEmulator, verifyToken } from './support.js';

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

type Outcome =
  | { token: string; verified: Promise<unknown> }
  | { code: string; details: Record<string, unknown> };

interface FaultCase {
  name: string;
  faults: Partial<GcpKmsFaults>;
  /** Faults set before the signer is created, to hit GetCryptoKeyVersion and GetPublicKey. */
  atCreation?: boolean;
  options?: GcpKmsSignerOptions;
  /** A coded error, or 'token' for a token that must verify. */
  expected: string;
  /** For ERR_GCP_KMS_INTEGRITY, the check that failed. */
  check?: string;
}

const cases: FaultCase[] = [
  { name: 'UNAVAILABLE twice', faults: { unavailable: 2 }, expected: 'token' },
  {
    name: 'UNAVAILABLE always',
    faults: { unavailable: Infinity },
    expected: 'ERR_GCP_KMS_UNAVAILABLE',
  },
  { name: 'wrong signatureCrc32c once', faults: { wrongSignatureCrc32c: 1 }, expected: 'token' },
  {
    name: 'wrong signatureCrc32c always',
    faults: { wrongSignatureCrc32c: Infinity },
    expected: 'ERR_GCP_KMS_INTEGRITY',
    check: 'signatureCrc32c',
  },
  { name: 'unverified digest once', faults: { unverifiedDigest: 1 }, expected: 'token' },
  {
    name: 'unverified digest always',
    faults: { unverifiedDigest: Infinity },
    expected: 'ERR_GCP_KMS_INTEGRITY',
    check: 'verifiedDigestCrc32c',
  },
  { name: 'wrong name once', faults: { wrongName: 1 }, expected: 'token' },
  {
    name: 'wrong name always',
    faults: { wrongName: Infinity },
    expected: 'ERR_GCP_KMS_INTEGRITY',
    check: 'name',
  },
  {
    name: 'wrong name at creation',
    faults: { wrongName: 2 },
    atCreation: true,
    expected: 'token',
  },
  {
    name: 'wrong name always at creation',
    faults: { wrongName: Infinity },
    atCreation: true,
    expected: 'ERR_GCP_KMS_INTEGRITY',
    check: 'name',
  },
  {
    name: 'wrong pemCrc32c once',
    faults: { wrongPemCrc32c: 1 },
    atCreation: true,
    expected: 'token',
  },
  {
    name: 'wrong pemCrc32c always',
    faults: { wrongPemCrc32c: Infinity },
    atCreation: true,
    expected: 'ERR_GCP_KMS_INTEGRITY',
    check: 'pemCrc32c',
  },
  {
    name: 'PERMISSION_DENIED',
    faults: { permissionDenied: 1 },
    expected: 'ERR_GCP_KMS_PERMISSION_DENIED',
  },
  {
    name: 'FAILED_PRECONDITION',
    faults: { failedPrecondition: 1 },
    expected: 'ERR_GCP_KMS_FAILED_PRECONDITION',
  },
  {
    name: 'RESOURCE_EXHAUSTED',
    faults: { resourceExhausted: 1 },
    expected: 'ERR_GCP_KMS_RESOURCE_EXHAUSTED',
  },
  { name: 'NOT_FOUND', faults: { notFound: 1 }, expected: 'ERR_GCP_KMS_NOT_FOUND' },
  { name: 'INTERNAL', faults: { internal: 1 }, expected: 'ERR_GCP_KMS_REQUEST_FAILED' },
  {
    name: 'UNAUTHENTICATED',
    faults: { unauthenticated: 1 },
    expected: 'ERR_GCP_KMS_UNAUTHENTICATED',
  },
  {
    name: 'PEM of no key at creation',
    faults: { publicKeyPem: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n' },
    atCreation: true,
    expected: 'ERR_GCP_KMS_PUBLIC_KEY_INVALID',
  },
  { name: 'digest corrupted once', faults: { corruptDigest: 1 }, expected: 'token' },
  {
    name: 'digest corrupted always',
    faults: { corruptDigest: Infinity },
    expected: 'ERR_GCP_KMS_INVALID_ARGUMENT',
  },
  {
    name: 'slow within the deadline',
    faults: { slow: Infinity, slowMs: 50 },
    options: { timeoutMs: 2_000 },
    expected: 'token',
  },
  {
    name: 'slow once past the deadline',
    faults: { slow: 1, slowMs: 10_000 },
    options: { timeoutMs: 1_000 },
    expected: 'token',
  },
  {
    name: 'slow past the deadline',
    faults: { slow: Infinity, slowMs: 3_000 },
    options: { timeoutMs: 200, maxAttempts: 2 },
    expected: 'ERR_GCP_KMS_TIMEOUT',
  },
  { name: 'truncated DER once', faults: { truncatedDer: 1 }, expected: 'token' },
  {
    name: 'truncated DER always',
    faults: { truncatedDer: Infinity },
    expected: 'ERR_GCP_KMS_INTEGRITY',
    check: 'signature',
  },
  {
    name: 'signature from another key',
    faults: { foreignSignature: 1 },
    expected: 'ERR_SIGNATURE_VERIFY_FAILED',
  },
  {
    name: 'signature from another key always',
    faults: { foreignSignature: Infinity },
    expected: 'ERR_SIGNATURE_VERIFY_FAILED',
  },
  {
    name: 'signature and public key from another key',
    faults: { foreignSignature: Infinity, foreignPublicKey: Infinity },
    expected: 'ERR_GCP_KMS_INTEGRITY',
    check: 'publicKey',
  },
  {
    name: 'hostile status text',
    faults: { permissionDenied: 1, statusText: 'denied\r\nINFO forged\u001b[2J' },
    expected: 'ERR_GCP_KMS_PERMISSION_DENIED',
  },
  {
    name: 'hostile name always',
    faults: { responseName: 'name\r\nINFO forged\u001b[2J' },
    expected: 'ERR_GCP_KMS_INTEGRITY',
    check: 'name',
  },
  {
    name: 'public key from another key at creation',
    faults: { foreignPublicKey: 1 },
    atCreation: true,
    expected: 'ERR_GCP_KMS_INTEGRITY',
    check: 'publicKey',
  },
];

async function mint(faultCase: FaultCase, events: SignerEvent[]): Promise<Outcome> {
  const key = kms.createKey({ keyRing });
  const options = { ...faultCase.options, onEvent: (event: SignerEvent) => events.push(event) };
  if (faultCase.atCreation) Object.assign(kms.faults, faultCase.faults);
  try {
    const signer = await createGcpKmsSigner(kms.reference(key.versionName), options);
    try {
      if (!faultCase.atCreation) Object.assign(kms.faults, faultCase.faults);
      const token = await signJwt(signer, clientSecretParts(faultCase.name));
      // Outside the catch below, so that a verification failure can never pass as a coded error.
      return { token, verified: verifyToken(token, key.publicKey) };
    } finally {
      await signer.close?.();
    }
  } catch (error) {
    const { code, details } = error as { code?: unknown; details?: Record<string, unknown> };
    if (typeof code !== 'string' || !code.startsWith('ERR_')) throw error;
    return { code, details: details ?? {} };
  }
}

describe('Cloud KMS fault switches', () => {
  it('covers every switch', () => {
    // slowMs and deniedMethods are settings rather than switches. The import tests cover
    // corruptWrappedKey, importFailureReason, importedVersionName, importJobName and
    // importJobExists, which only an import reads, and the version
    // pinning tests cover endlessPages, which only ListCryptoKeyVersions reads.
    const notSwitches = [
      'slowMs',
      'deniedMethods',
      'corruptWrappedKey',
      'importFailureReason',
      'importedVersionName',
      'importJobName',
      'importJobExists',
      'endlessPages',
    ];
    const switches = Object.keys(kms.faults).filter((name) => !notSwitches.includes(name));
    const covered = new Set(cases.flatMap((faultCase) => Object.keys(faultCase.faults)));
    expect(switches.filter((name) => !covered.has(name))).toEqual([]);
  });

  for (const faultCase of cases) {
    it(`${faultCase.name}: ${faultCase.expected}`, async () => {
      const events: SignerEvent[] = [];
      const outcome = await mint(faultCase, events);

      if (faultCase.expected === 'token') {
        expect(outcome).toHaveProperty('token');
        const { payload } = (await (outcome as { verified: Promise<unknown> }).verified) as {
          payload: Record<string, unknown>;
        };
        expect(payload.jti).toBe(faultCase.name);
        return;
      }
      expect(outcome).not.toHaveProperty('token');
      expect((outcome as { code: string }).code).toBe(faultCase.expected);
      if (faultCase.check) {
        expect((outcome as { details: Record<string, unknown> }).details.check).toBe(
          faultCase.check,
        );
      }
    });
  }

  it('reports each discarded response', async () => {
    const events: SignerEvent[] = [];
    const outcome = await mint(
      { name: 'crc', faults: { wrongSignatureCrc32c: 2 }, expected: 'token' },
      events,
    );
    expect(outcome).toHaveProperty('token');
    await (outcome as { verified: Promise<unknown> }).verified;
    const retries = events.filter((event) => event.type === 'retry');
    expect(retries).toHaveLength(2);
    expect(retries.every((event) => event.reason === 'integrity')).toBe(true);
    expect(retries.every((event) => event.check === 'signatureCrc32c')).toBe(true);
    expect(kms.count('AsymmetricSign')).toBe(3);
  });

  it('discards a foreign signature after one refresh', async () => {
    const events: SignerEvent[] = [];
    const outcome = await mint(
      { name: 'foreign', faults: { foreignSignature: 1 }, expected: 'ERR_SIGNATURE_VERIFY_FAILED' },
      events,
    );
    expect(outcome).not.toHaveProperty('token');
    // One GetPublicKey when the signer was created, one for the refresh after the failure.
    expect(kms.count('GetPublicKey')).toBe(2);
    expect(kms.count('AsymmetricSign')).toBe(1);
  });

  it('rejects another key on refresh', async () => {
    const key = kms.createKey({ keyRing });
    const signer = await createGcpKmsSigner(kms.reference(key.versionName));
    kms.faults.foreignPublicKey = Infinity;
    const error = (await signer.getPublicKey({ refresh: true }).catch((e: unknown) => e)) as {
      code?: string;
      details?: Record<string, unknown>;
    };
    const cached = await signer.getPublicKey();
    await signer.close?.();

    // A CryptoKeyVersion's key material never changes, so another key is a corrupt response.
    expect(error.code).toBe('ERR_GCP_KMS_INTEGRITY');
    expect(error.details?.check).toBe('publicKey');
    expect(kms.count('GetPublicKey')).toBe(4);
    expect(cached.equals(key.publicKey)).toBe(true);
  });
});
