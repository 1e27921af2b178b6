import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { crc32c } from '../../adapters/gcp-kms/index.js';
import { protoDirectories, type GcpKmsEmulator } from '../emulators/gcp-kms/index.js';
import { emulatorClient, keyRing, startEmulator } from './support.js';

function listFiles(folder: string): string[] {
  return readdirSync(folder).flatMap((entry) => {
    const path = join(folder, entry);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}

describe('Cloud KMS emulator protos', () => {
  it('loads the installed packages protos', () => {
    const [kmsProtos, gaxProtos] = protoDirectories().map((folder) => resolve(folder));
    expect(kmsProtos).toBe(resolve('node_modules/@google-cloud/kms/build/protos'));
    expect(gaxProtos).toBe(resolve('node_modules/google-gax/build/protos'));
    expect(existsSync(join(kmsProtos!, 'google/cloud/kms/v1/service.proto'))).toBe(true);
    expect(existsSync(join(gaxProtos!, 'google/api/annotations.proto'))).toBe(true);
  });

  it('keeps no proto copies in test/', () => {
    expect(listFiles('test').filter((path) => path.endsWith('.proto'))).toEqual([]);
  });
});

describe('Cloud KMS emulator RPCs', () => {
  let kms: GcpKmsEmulator;
  let client: ReturnType<typeof emulatorClient>;

  beforeAll(async () => {
    kms = await startEmulator();
    client = emulatorClient(kms);
  });

  afterAll(async () => {
    await client.close();
    await kms.stop();
  });

  beforeEach(() => {
    kms.reset();
  });

  const digest = Buffer.alloc(32, 9);

  it('checks digestCrc32c like the service', async () => {
    const key = kms.createKey({ keyRing });
    const name = key.versionName;
    const [checked] = await client.asymmetricSign({
      name,
      digest: { sha256: digest },
      digestCrc32c: { value: crc32c(digest) },
    });
    expect(checked.verifiedDigestCrc32c).toBe(true);
    expect(checked.name).toBe(name);
    expect(String(checked.signatureCrc32c?.value)).toBe(
      String(crc32c(checked.signature as Uint8Array)),
    );

    const [unchecked] = await client.asymmetricSign({ name, digest: { sha256: digest } });
    expect(unchecked.verifiedDigestCrc32c).toBe(false);

    await expect(
      client.asymmetricSign(
        { name, digest: { sha256: digest }, digestCrc32c: { value: crc32c(digest) ^ 1 } },
        { retry: null },
      ),
    ).rejects.toMatchObject({ code: 3, details: expect.stringContaining('digest_crc32c') });
  });

  it('rejects a digest of the wrong size', async () => {
    const key = kms.createKey({ keyRing });
    await expect(
      client.asymmetricSign({ name: key.versionName, digest: { sha256: Buffer.alloc(20) } }),
    ).rejects.toMatchObject({ code: 3 });
  });

  it('returns PEM with its CRC32C', async () => {
    const key = kms.createKey({ keyRing });
    const [publicKey] = await client.getPublicKey({ name: key.versionName });
    expect(publicKey.algorithm).toBe('EC_SIGN_P256_SHA256');
    expect(String(publicKey.pemCrc32c?.value)).toBe(String(crc32c(Buffer.from(publicKey.pem!))));
  });

  it('answers real status codes', async () => {
    const key = kms.createKey({ keyRing });
    const missing = `${key.cryptoKeyName}/cryptoKeyVersions/7`;
    await expect(client.getCryptoKeyVersion({ name: missing })).rejects.toMatchObject({ code: 5 });
    kms.faults.permissionDenied = 1;
    await expect(
      client.asymmetricSign({ name: key.versionName, digest: { sha256: digest } }),
    ).rejects.toMatchObject({ code: 7 });
    await expect(
      client.createCryptoKey({ parent: `${keyRing}x`, cryptoKeyId: 'k', cryptoKey: {} }),
    ).rejects.toMatchObject({ code: 5 });
  });

  it('leaves other RPCs unimplemented', async () => {
    const key = kms.createKey({ keyRing });
    await expect(
      client.asymmetricDecrypt({ name: key.versionName, ciphertext: Buffer.alloc(8) }),
    ).rejects.toMatchObject({ code: 12 });
  });

  it('updates a version state', async () => {
    const key = kms.createKey({ keyRing });
    const [disabled] = await client.updateCryptoKeyVersion({
      cryptoKeyVersion: { name: key.versionName, state: 'DISABLED' },
      updateMask: { paths: ['state'] },
    });
    expect(disabled.state).toBe('DISABLED');
    await expect(
      client.asymmetricSign({ name: key.versionName, digest: { sha256: digest } }),
    ).rejects.toMatchObject({ code: 9 });

    await client.updateCryptoKeyVersion({
      cryptoKeyVersion: { name: key.versionName, state: 'ENABLED' },
      updateMask: { paths: ['state'] },
    });
    const [signed] = await client.asymmetricSign({
      name: key.versionName,
      digest: { sha256: digest },
    });
    expect(signed.signature?.length).toBeGreaterThan(60);
  });

  it('lists versions', async () => {
    const key = kms.createKey({ keyRing });
    kms.addVersion(key.cryptoKeyName, { state: 'DISABLED' });
    const [versions] = await client.listCryptoKeyVersions({ parent: key.cryptoKeyName });
    expect(versions.map((version) => version.state)).toEqual(['ENABLED', 'DISABLED']);
  });
});
