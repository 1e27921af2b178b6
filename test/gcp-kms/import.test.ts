import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createGcpKmsSigner,
  importP8ToGcpKms,
  type GcpKmsImportOptions,
} from '../../adapters/gcp-kms/index.js';
import { signJwt } from '../../src/jws.js';
import { loadAdapter, parseKeyReference } from '../../src/key-uri.js';
import type { SignerEvent } from '../../src/signer.js';
import type { GcpKmsEmulator } from '../emulators/gcp-kms/index.js';
import {
  clientSecretParts,
  type CodedError,
  emulatorClient,
  keyRing,
  rejection,
  startEmulator,
  verifyToken,
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
  kms.importJobPendingPolls = 1;
  kms.importPendingPolls = 1;
});

function p256Key(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

let keyCounter = 0;

/** Creates a new CryptoKey name in the test key ring, and the reference for it. */
function newTarget(query = ''): { name: string; reference: string } {
  keyCounter += 1;
  const name = `${keyRing}/cryptoKeys/imported-${keyCounter}`;
  const separator = query === '' ? '' : '&';
  return { name, reference: `${kms.reference(name)}${separator}${query}` };
}

const fastPolls: GcpKmsImportOptions = { pollIntervalMs: 5 };

function jwk(key: KeyObject): Record<string, unknown> {
  return key.export({ format: 'jwk' }) as Record<string, unknown>;
}

describe('Cloud KMS import', () => {
  const methods = [
    ['RSA_OAEP_3072_SHA256_AES_256', 384 + 8 + 144],
    ['RSA_OAEP_4096_SHA256_AES_256', 512 + 8 + 144],
    ['RSA_OAEP_3072_SHA256', 384],
    ['RSA_OAEP_4096_SHA256', 512],
  ] as const;

  for (const [method, wrappedLength] of methods) {
    it(`imports with ${method}`, async () => {
      const privateKey = p256Key();
      const target = newTarget(`import-method=${method}`);
      const events: SignerEvent[] = [];
      const result = await importP8ToGcpKms(privateKey, target.reference, {
        ...fastPolls,
        onEvent: (event) => events.push(event),
      });

      const versionName = `${target.name}/cryptoKeyVersions/1`;
      expect(result.reference).toBe(kms.reference(versionName));
      expect(jwk(result.publicKey)).toEqual(jwk(createPublicKey(privateKey)));
      expect(result.details.cryptoKeyVersion).toBe(versionName);
      expect(result.details.importMethod).toBe(method);
      expect(result.details.createdCryptoKey).toBe('yes');
      expect(result.details.protectionLevel).toBe('HSM');
      expect(events.filter((e) => e.type === 'import-step').map((e) => e.step)).toEqual([
        'create-key',
        'create-import-job',
        'wait-import-job',
        'wrap',
        'import-version',
        'wait-version',
        'prove',
      ]);

      // The emulator unwrapped the same private key, so its signatures verify under the .p8.
      expect(jwk(kms.versionPrivateKey(versionName)!)).toEqual(jwk(privateKey));
      const importCall = kms.calls.find((call) => call.method === 'ImportCryptoKeyVersion')!;
      expect((importCall.request.wrappedKey as Buffer).length).toBe(wrappedLength);
      expect(importCall.request.algorithm).toBe('EC_SIGN_P256_SHA256');

      const signer = await createGcpKmsSigner(result.reference);
      const token = await signJwt(signer, clientSecretParts());
      await signer.close?.();
      expect((await verifyToken(token, createPublicKey(privateKey))).payload.iss).toBe(
        'TEAMAAAA11',
      );
    });
  }

  it('creates an import-only key and job', async () => {
    const target = newTarget('protection-level=SOFTWARE');
    await importP8ToGcpKms(p256Key(), target.reference, fastPolls);

    const create = kms.calls.find((call) => call.method === 'CreateCryptoKey')!.request;
    expect(create).toMatchObject({
      parent: keyRing,
      skipInitialVersionCreation: true,
      cryptoKey: {
        purpose: 'ASYMMETRIC_SIGN',
        importOnly: true,
        versionTemplate: { algorithm: 'EC_SIGN_P256_SHA256', protectionLevel: 'SOFTWARE' },
      },
    });
    const job = kms.calls.find((call) => call.method === 'CreateImportJob')!.request;
    expect(job).toMatchObject({
      parent: keyRing,
      importJob: { importMethod: 'RSA_OAEP_3072_SHA256_AES_256', protectionLevel: 'SOFTWARE' },
    });
    expect(kms.count('GetImportJob')).toBe(2);
    expect(kms.count('GetCryptoKeyVersion')).toBeGreaterThanOrEqual(2);
  });

  it('adds a version to an existing key', async () => {
    const target = newTarget();
    const first = await importP8ToGcpKms(p256Key(), target.reference, fastPolls);
    const second = await importP8ToGcpKms(p256Key(), target.reference, fastPolls);

    expect(first.details.cryptoKeyVersion).toBe(`${target.name}/cryptoKeyVersions/1`);
    expect(second.details.cryptoKeyVersion).toBe(`${target.name}/cryptoKeyVersions/2`);
    expect(second.details.createdCryptoKey).toBe('no');
    expect(second.details.protectionLevel).toBe('HSM');
  });

  it('imports into an existing key with get only', async () => {
    // The roles for an import into an existing CryptoKey need cloudkms.cryptoKeys.get there,
    // not cloudkms.cryptoKeys.create, which Cloud KMS checks before it looks for the key.
    const target = newTarget();
    await importP8ToGcpKms(p256Key(), target.reference, fastPolls);
    kms.reset();
    kms.faults.deniedMethods = ['CreateCryptoKey'];
    const result = await importP8ToGcpKms(p256Key(), target.reference, fastPolls);

    expect(result.details.cryptoKeyVersion).toBe(`${target.name}/cryptoKeyVersions/2`);
    expect(result.details.createdCryptoKey).toBe('no');
    expect(kms.count('CreateCryptoKey')).toBe(0);
  });

  it('creates a key it cannot see', async () => {
    const target = newTarget();
    kms.faults.deniedMethods = ['GetCryptoKey'];
    const result = await importP8ToGcpKms(p256Key(), target.reference, fastPolls);
    expect(result.details.createdCryptoKey).toBe('yes');
    expect(kms.count('CreateCryptoKey')).toBe(1);
  });

  it('takes options over reference attributes', async () => {
    const target = newTarget('import-method=RSA_OAEP_4096_SHA256');
    const result = await importP8ToGcpKms(p256Key(), target.reference, {
      ...fastPolls,
      importMethod: 'RSA_OAEP_3072_SHA256',
      protectionLevel: 'SOFTWARE',
    });
    expect(result.details.importMethod).toBe('RSA_OAEP_3072_SHA256');
    expect(result.details.protectionLevel).toBe('SOFTWARE');
  });

  it('uses a caller client', async () => {
    const client = emulatorClient(kms);
    const target = newTarget();
    const result = await importP8ToGcpKms(p256Key(), `gcpkms:${target.name}`, {
      ...fastPolls,
      client,
    });
    expect(result.reference).toBe(`gcpkms:${target.name}/cryptoKeyVersions/1`);
    const [version] = await client.getCryptoKeyVersion({ name: result.details.cryptoKeyVersion! });
    expect(version.state).toBe('ENABLED');
    await client.close();
  });

  it('works through the adapter registry', async () => {
    const target = newTarget();
    const reference = parseKeyReference(target.reference.replace(/^gcpkms:/, 'cloudkms:'));
    const adapter = await loadAdapter(reference);
    const result = await adapter.importKey!({
      privateKey: p256Key(),
      target: reference,
      options: { pollIntervalMs: 5 },
    });
    expect(result.details.cryptoKeyVersion).toBe(`${target.name}/cryptoKeyVersions/1`);
  });
});

describe('Cloud KMS import failures', () => {
  it('names importFailureReason', async () => {
    const target = newTarget();
    kms.faults.corruptWrappedKey = 1;
    const error = await rejection(importP8ToGcpKms(p256Key(), target.reference, fastPolls));

    expect(error.code).toBe('ERR_GCP_KMS_IMPORT_FAILED');
    expect(error.details!.step).toBe('wait-version');
    expect(error.details!.versionState).toBe('IMPORT_FAILED');
    expect(String(error.details!.importFailureReason)).toContain('Failed to unwrap');
    expect(error.message).toContain('step "wait-version"');
    expect(error.message).toContain('is IMPORT_FAILED');
    expect(error.message).toContain('importFailureReason: Failed to unwrap');
    expect(error.message).toContain(`ImportJob ${keyRing}/importJobs/`);
  });

  it('names the step on a permission failure', async () => {
    const target = newTarget();
    kms.faults.deniedMethods = ['CreateCryptoKey'];
    const error = await rejection(importP8ToGcpKms(p256Key(), target.reference, fastPolls));

    expect(error.code).toBe('ERR_GCP_KMS_IMPORT_FAILED');
    expect(error.details!.step).toBe('create-key');
    expect(error.details!.causeCode).toBe('ERR_GCP_KMS_PERMISSION_DENIED');
    expect(error.message).toContain('cloudkms.cryptoKeys.create');
    expect(kms.count('CreateImportJob')).toBe(0);
  });

  it('names the job step and state', async () => {
    const target = newTarget();
    kms.faults.deniedMethods = ['ImportCryptoKeyVersion'];
    const error = await rejection(importP8ToGcpKms(p256Key(), target.reference, fastPolls));

    expect(error.details!.step).toBe('import-version');
    expect(error.details!.importJobState).toBe('ACTIVE');
    expect(error.message).toContain('is ACTIVE');
    expect(error.message).toContain(`CryptoKey ${target.name} was created`);
  });

  it('never repeats ImportCryptoKeyVersion', async () => {
    const target = newTarget();
    kms.faults.deniedMethods = [];
    const events: SignerEvent[] = [];
    kms.importJobPendingPolls = 0;
    const importing = importP8ToGcpKms(p256Key(), target.reference, {
      ...fastPolls,
      onEvent: (event) => {
        events.push(event);
        // UNAVAILABLE for the import call alone: the wrap step comes right before it.
        if (event.step === 'wrap') kms.faults.unavailable = 1;
      },
    });
    const error = await rejection(importing);
    expect(error.details!.step).toBe('import-version');
    expect(error.details!.causeCode).toBe('ERR_GCP_KMS_UNAVAILABLE');
    expect(kms.count('ImportCryptoKeyVersion')).toBe(1);
  });

  describe('version name from ImportCryptoKeyVersion', () => {
    const cases: [string, (cryptoKeyName: string) => string][] = [
      ['another key', () => `${keyRing}/cryptoKeys/other/cryptoKeyVersions/1`],
      ['no number', (name) => `${name}/cryptoKeyVersions/`],
      ['a suffix', (name) => `${name}/cryptoKeyVersions/1x`],
      ['a leading zero', (name) => `${name}/cryptoKeyVersions/01`],
      ['more segments', (name) => `${name}/cryptoKeyVersions/1/../../other`],
      ['a query', (name) => `${name}/cryptoKeyVersions/1?endpoint=evil.googleapis.com:443`],
      ['a line break', (name) => `${name}/cryptoKeyVersions/1\r\nINFO import done`],
      ['a long number', (name) => `${name}/cryptoKeyVersions/${'9'.repeat(40)}`],
    ];

    for (const [label, returned] of cases) {
      it(`rejects a name with ${label}`, async () => {
        const target = newTarget();
        const name = returned(target.name);
        kms.faults.importedVersionName = name;
        const error = await rejection(importP8ToGcpKms(p256Key(), target.reference, fastPolls));

        expect(error.code).toBe('ERR_GCP_KMS_IMPORT_FAILED');
        expect(error.details!.step).toBe('import-version');
        expect(error.details!.cryptoKeyVersion).toBeUndefined();
        expect(error.message).toContain(`not ${target.name}/cryptoKeyVersions/N`);
        expect(error.message).not.toMatch(/[\r\n]/);
        // The name is never used: no call names it, and no poll follows.
        expect(kms.count('GetCryptoKeyVersion')).toBe(0);
        expect(kms.count('AsymmetricSign')).toBe(0);
      });
    }

    it('accepts the exact name', async () => {
      const target = newTarget();
      kms.faults.importedVersionName = `${target.name}/cryptoKeyVersions/1`;
      const result = await importP8ToGcpKms(p256Key(), target.reference, fastPolls);
      expect(result.details.cryptoKeyVersion).toBe(`${target.name}/cryptoKeyVersions/1`);
    });
  });

  describe('unknown outcome of ImportCryptoKeyVersion', () => {
    /** Checks that the error says a version may exist, and how to find it. */
    function expectVersionHint(error: CodedError, cryptoKeyId: string): void {
      expect(error.details!.step).toBe('import-version');
      expect(error.details!.versionMayExist).toBe(true);
      expect(error.message).toContain('ImportCryptoKeyVersion may have created a version');
      expect(error.message).toContain('PENDING_IMPORT or IMPORT_FAILED');
      expect(error.message).toContain(
        `gcloud kms keys versions list --project kms-jwt-test --location global ` +
          `--keyring apple --key ${cryptoKeyId}`,
      );
      expect(error.message).toContain("filter 'state=PENDING_IMPORT'");
    }

    it('hints at a version on timeout', async () => {
      // An existing ImportJob, so that no call before the import waits for an RSA key pair.
      const first = await importP8ToGcpKms(p256Key(), newTarget().reference, fastPolls);
      const jobId = first.details.importJob!.split('/').pop();
      const target = newTarget(`import-job=${jobId}`);
      const importing = importP8ToGcpKms(p256Key(), target.reference, {
        ...fastPolls,
        timeoutMs: 300,
        onEvent: (event) => {
          // Only the ImportCryptoKeyVersion call that follows this event answers late.
          if (event.step !== 'import-version') return;
          kms.faults.slow = 1;
          kms.faults.slowMs = 5_000;
        },
      });
      const error = await rejection(importing);

      expect(error.code).toBe('ERR_GCP_KMS_IMPORT_FAILED');
      expect(error.details!.causeCode).toBe('ERR_GCP_KMS_TIMEOUT');
      expectVersionHint(error, target.name.split('/').pop()!);
    });

    it('hints at a version on abort', async () => {
      const target = newTarget();
      const controller = new AbortController();
      const importing = importP8ToGcpKms(p256Key(), target.reference, {
        ...fastPolls,
        signal: controller.signal,
        onEvent: (event) => {
          if (event.step !== 'import-version') return;
          kms.faults.slow = 1;
          kms.faults.slowMs = 5_000;
          setTimeout(() => controller.abort(new Error('deploy cancelled')), 20);
        },
      });
      const error = await rejection(importing);

      expect(error.code).toBe('ERR_GCP_KMS_ABORTED');
      expect(kms.count('ImportCryptoKeyVersion')).toBe(1);
      expectVersionHint(error, target.name.split('/').pop()!);
    });

    it('hints at a version after a bad name', async () => {
      const target = newTarget();
      kms.faults.importedVersionName = `${target.name}/cryptoKeyVersions/1?x=y`;
      const error = await rejection(importP8ToGcpKms(p256Key(), target.reference, fastPolls));

      expect(error.code).toBe('ERR_GCP_KMS_IMPORT_FAILED');
      expectVersionHint(error, target.name.split('/').pop()!);
    });

    it('gives no hint after a rejection', async () => {
      const target = newTarget();
      kms.faults.deniedMethods = ['ImportCryptoKeyVersion'];
      const error = await rejection(importP8ToGcpKms(p256Key(), target.reference, fastPolls));

      expect(error.details!.step).toBe('import-version');
      expect(error.details!.causeCode).toBe('ERR_GCP_KMS_PERMISSION_DENIED');
      expect(error.details!.versionMayExist).toBeUndefined();
      expect(error.message).not.toContain('may have created a version');
    });
  });

  it('rejects another ImportJob name', async () => {
    const target = newTarget();
    kms.faults.importJobName = `${keyRing}/importJobs/other\r\nINFO import done`;
    const error = await rejection(importP8ToGcpKms(p256Key(), target.reference, fastPolls));

    expect(error.code).toBe('ERR_GCP_KMS_IMPORT_FAILED');
    expect(error.details!.step).toBe('create-import-job');
    expect(error.message).toContain('CreateImportJob returned the ImportJob name');
    expect(error.message).not.toMatch(/[\r\n]/);
    expect(kms.count('GetImportJob')).toBe(0);
  });

  it('rejects a key of another algorithm', async () => {
    const existing = kms.createKey({ keyRing, algorithm: 'EC_SIGN_SECP256K1_SHA256' });
    const error = await rejection(
      importP8ToGcpKms(p256Key(), kms.reference(existing.cryptoKeyName), fastPolls),
    );
    expect(error.code).toBe('ERR_GCP_KMS_IMPORT_FAILED');
    expect(error.details!.step).toBe('create-key');
    expect(error.message).toContain('EC_SIGN_SECP256K1_SHA256');
  });

  it('rejects a protection level mismatch', async () => {
    const existing = kms.createKey({ keyRing, protectionLevel: 'SOFTWARE' });
    const reference = `${kms.reference(existing.cryptoKeyName)}&protection-level=HSM`;
    const error = await rejection(importP8ToGcpKms(p256Key(), reference, fastPolls));
    expect(error.details!.step).toBe('create-key');
    expect(error.message).toContain('its protection level is SOFTWARE, not HSM');
  });

  it('rejects a job of another method', async () => {
    const first = newTarget('import-method=RSA_OAEP_3072_SHA256');
    const done = await importP8ToGcpKms(p256Key(), first.reference, fastPolls);
    const jobId = done.details.importJob!.split('/').pop();

    const second = newTarget(`import-job=${jobId}`);
    const error = await rejection(importP8ToGcpKms(p256Key(), second.reference, fastPolls));
    expect(error.details!.step).toBe('wait-import-job');
    expect(error.message).toContain('its method is RSA_OAEP_3072_SHA256');
  });

  it('reuses a named import job', async () => {
    const first = newTarget();
    const done = await importP8ToGcpKms(p256Key(), first.reference, fastPolls);
    const jobId = done.details.importJob!.split('/').pop();

    const second = newTarget(`import-job=${jobId}`);
    const result = await importP8ToGcpKms(p256Key(), second.reference, fastPolls);
    expect(result.details.importJob).toBe(done.details.importJob);
    expect(kms.count('CreateImportJob')).toBe(1);
  });

  it('gives up on a version stuck pending', async () => {
    const target = newTarget();
    kms.importPendingPolls = 1_000;
    const error = await rejection(
      importP8ToGcpKms(p256Key(), target.reference, { pollIntervalMs: 5, pollTimeoutMs: 60 }),
    );
    expect(error.details!.step).toBe('wait-version');
    expect(error.details!.versionState).toBe('PENDING_IMPORT');
    expect(error.message).toContain('still pending after 60 ms');
  });

  it('stops on abort while polling', async () => {
    const target = newTarget();
    kms.importJobPendingPolls = 1_000;
    const controller = new AbortController();
    const importing = importP8ToGcpKms(p256Key(), target.reference, {
      pollIntervalMs: 5,
      signal: controller.signal,
      onEvent: (event) => {
        if (event.step === 'wait-import-job') setTimeout(() => controller.abort(), 20);
      },
    });
    const error = await rejection(importing);
    expect(error.code).toBe('ERR_GCP_KMS_ABORTED');
  });

  it('names the pending version on abort', async () => {
    // The wrapped key is already uploaded, so the caller must learn which version may still
    // turn ENABLED with it.
    const target = newTarget();
    kms.importPendingPolls = 1_000;
    const controller = new AbortController();
    const reason = new Error('deploy cancelled');
    const importing = importP8ToGcpKms(p256Key(), target.reference, {
      pollIntervalMs: 5,
      signal: controller.signal,
      onEvent: (event) => {
        if (event.step === 'wait-version') setTimeout(() => controller.abort(reason), 20);
      },
    });
    const error = await rejection(importing);
    const versionName = `${target.name}/cryptoKeyVersions/1`;

    expect(error.code).toBe('ERR_GCP_KMS_ABORTED');
    expect(error.cause).toBe(reason);
    expect(error.details!.step).toBe('wait-version');
    expect(error.details!.cryptoKeyVersion).toBe(versionName);
    expect(error.message).toContain(`version ${versionName} is PENDING_IMPORT`);
  });

  it('rejects a target with a version', async () => {
    const target = newTarget();
    const error = await rejection(
      importP8ToGcpKms(p256Key(), `gcpkms:${target.name}/cryptoKeyVersions/1`, fastPolls),
    );
    expect(error.code).toBe('ERR_KEY_REFERENCE_INVALID');
    expect(error.message).toContain('Name the CryptoKey instead');
    expect(kms.calls).toEqual([]);
  });

  it('rejects a key that is not P-256', async () => {
    const target = newTarget();
    const secp256k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey;
    const error = await rejection(importP8ToGcpKms(secp256k1, target.reference, fastPolls));
    expect(error.code).toBe('ERR_KEY_NOT_P256');
    await expect(
      importP8ToGcpKms(createPublicKey(p256Key()), target.reference, fastPolls),
    ).rejects.toThrow(TypeError);
  });

  it('rejects unbounded poll options', async () => {
    const target = newTarget();
    const cases: GcpKmsImportOptions[] = [
      { pollIntervalMs: Infinity },
      { pollIntervalMs: 2 ** 31 },
      { pollTimeoutMs: Infinity },
      { pollIntervalMs: Number.NaN },
    ];
    for (const options of cases) {
      await expect(importP8ToGcpKms(p256Key(), target.reference, options)).rejects.toThrow(
        TypeError,
      );
    }
    expect(kms.calls).toEqual([]);
  });

  it('rejects an unsupported method', async () => {
    const target = newTarget('import-method=RSA_OAEP_3072_SHA1_AES_256');
    const error = await rejection(importP8ToGcpKms(p256Key(), target.reference, fastPolls));
    expect(error.code).toBe('ERR_GCP_KMS_IMPORT_METHOD_UNSUPPORTED');
    expect(error.message).toContain('RSA_OAEP_3072_SHA256_AES_256');
    expect(kms.calls).toEqual([]);
  });
});
