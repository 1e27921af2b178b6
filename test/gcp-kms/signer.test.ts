import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createGcpKmsSigner, crc32c } from '../../adapters/gcp-kms/index.js';
import { signJwt } from '../../src/jws.js';
import { createSigner } from '../../src/key-uri.js';
import type { SignerEvent } from '../../src/signer.js';
import type { GcpKmsEmulator } from '../emulators/gcp-kms/index.js';
import {
  clientSecretParts,
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
});

/** Returns the endpoint attributes that reach the emulator over plaintext loopback gRPC. */
function endpointQuery(): string {
  return `?endpoint=${kms.host}:${kms.port}&plaintext=true`;
}

describe('Cloud KMS signer', () => {
  it('signs a digest with CRC32C', async () => {
    const key = kms.createKey({ keyRing });
    const signer = await createGcpKmsSigner(kms.reference(key.versionName));
    const parts = clientSecretParts();
    const token = await signJwt(signer, parts);
    await signer.close?.();

    const { payload, decoded } = await verifyToken(token, key.publicKey);
    expect(payload).toEqual(parts.payload);
    expect(decoded).toEqual(parts.payload);

    const signingInput = token.slice(0, token.lastIndexOf('.'));
    const digest = createHash('sha256').update(signingInput).digest();
    const request = kms.calls.find((call) => call.method === 'AsymmetricSign')!.request;
    expect(request.name).toBe(key.versionName);
    expect((request.digest as { sha256: Buffer }).sha256).toEqual(digest);
    expect((request.digestCrc32c as { value: string }).value).toBe(String(crc32c(digest)));
    expect(request.data).toBeUndefined();
  });

  it('checks the version before first use', async () => {
    const key = kms.createKey({ keyRing });
    const signer = await createGcpKmsSigner(kms.reference(key.versionName));
    await signer.close?.();
    expect(kms.calls.map((call) => call.method)).toEqual(['GetCryptoKeyVersion', 'GetPublicKey']);
    expect(signer.keyId).toBe(`gcpkms:${key.versionName}`);
  });

  it('caches the public key until refresh', async () => {
    const key = kms.createKey({ keyRing });
    const signer = await createGcpKmsSigner(kms.reference(key.versionName));
    for (let i = 0; i < 4; i += 1) await signJwt(signer, clientSecretParts(String(i)));
    expect(kms.count('GetPublicKey')).toBe(1);
    expect(kms.count('AsymmetricSign')).toBe(4);

    const refreshed = await signer.getPublicKey({ refresh: true });
    expect(kms.count('GetPublicKey')).toBe(2);
    expect(refreshed.export({ format: 'jwk' })).toEqual(key.publicKey.export({ format: 'jwk' }));
    await signer.close?.();
  });

  it('keeps the cached key when a refresh fails', async () => {
    const key = kms.createKey({ keyRing });
    const signer = await createGcpKmsSigner(kms.reference(key.versionName));
    kms.faults.deniedMethods = ['GetPublicKey'];
    const error = await rejection(signer.getPublicKey({ refresh: true }));
    expect(error.code).toBe('ERR_GCP_KMS_PERMISSION_DENIED');

    const cached = await signer.getPublicKey();
    expect(cached.export({ format: 'jwk' })).toEqual(key.publicKey.export({ format: 'jwk' }));
    await signer.close?.();
  });

  it('accepts every reference form', async () => {
    const key = kms.createKey({ keyRing, cryptoKeyId: 'forms' });
    const sigstore = key.versionName.replace('/cryptoKeyVersions/', '/versions/');
    const forms = [
      `gcpkms:${key.versionName}${endpointQuery()}`,
      `GCPKMS:${key.versionName}${endpointQuery()}`,
      `gcpkms://${sigstore}${endpointQuery()}`,
      `gcpkms://${key.versionName}${endpointQuery()}`,
      `cloudkms:${key.versionName}${endpointQuery()}`,
      `cloudkms:resource=${key.versionName}${endpointQuery()}`,
      `cloudkms:resource=${encodeURIComponent(key.versionName)}${endpointQuery()}`,
    ];
    for (const form of forms) {
      const signer = await createSigner(form);
      const token = await signJwt(signer, clientSecretParts(form));
      await signer.close?.();
      expect(signer.keyId).toBe(`gcpkms:${key.versionName}`);
      expect((await verifyToken(token, key.publicKey)).payload.jti).toBe(form);
    }
    expect(kms.count('AsymmetricSign')).toBe(forms.length);
  });

  it('prefers the caller client over the reference endpoint', async () => {
    const key = kms.createKey({ keyRing });
    const client = emulatorClient(kms);
    // Port 1 on loopback has no listener: a signer that built its own client would fail.
    const reference = `gcpkms:${key.versionName}?endpoint=127.0.0.1:1&plaintext=true`;
    const signer = await createGcpKmsSigner(reference, { client });
    const token = await signJwt(signer, clientSecretParts());
    await signer.close?.();
    expect((await verifyToken(token, key.publicKey)).payload.iss).toBe('TEAMAAAA11');

    // close() leaves a caller's client open.
    const again = await createGcpKmsSigner(key.versionName, { client });
    expect((await again.sign(Buffer.from('a.b'))).length).toBe(64);
    await again.close?.();
    await client.close();
  });

  it('passes a caller client through createSigner', async () => {
    const key = kms.createKey({ keyRing });
    const client = emulatorClient(kms);
    const signer = await createSigner(`cloudkms:${key.versionName}`, { client });
    const token = await signJwt(signer, clientSecretParts());
    expect((await verifyToken(token, key.publicKey)).payload.sub).toBe('com.example.web');
    await signer.close?.();
    await client.close();
  });

  it('rejects a client without the methods', async () => {
    const key = kms.createKey({ keyRing });
    const client = { asymmetricSign() {} } as never;
    await expect(createGcpKmsSigner(key.versionName, { client })).rejects.toThrow(TypeError);
  });

  it('rejects bad runtime options', async () => {
    const key = kms.createKey({ keyRing });
    const reference = kms.reference(key.versionName);
    await expect(createGcpKmsSigner(reference, { timeoutMs: 0 })).rejects.toThrow(TypeError);
    await expect(createGcpKmsSigner(reference, { maxAttempts: 0 })).rejects.toThrow(TypeError);
    await expect(createGcpKmsSigner(reference, { maxAttempts: 11 })).rejects.toThrow(TypeError);
    expect(kms.calls).toEqual([]);
  });

  it('accepts the longest timer timeoutMs', async () => {
    // Node runs a timer of more than 2^31 - 1 ms after 1 ms instead, which would turn a long
    // deadline into an immediate local timeout.
    const key = kms.createKey({ keyRing });
    const reference = kms.reference(key.versionName);
    const tooLong = createGcpKmsSigner(reference, { timeoutMs: 2 ** 31 });
    await expect(tooLong).rejects.toThrow(TypeError);
    expect(kms.calls).toEqual([]);

    const signer = await createGcpKmsSigner(reference, { timeoutMs: 2 ** 31 - 1 });
    const token = await signJwt(signer, clientSecretParts());
    await signer.close?.();
    expect((await verifyToken(token, key.publicKey)).payload.iss).toBe('TEAMAAAA11');
  });

  it('rejects a non-byte signing input', async () => {
    const key = kms.createKey({ keyRing });
    const signer = await createGcpKmsSigner(kms.reference(key.versionName));
    await expect(signer.sign('a.b' as never)).rejects.toThrow(TypeError);
    await signer.close?.();
  });
});

describe('Cloud KMS signer after close', () => {
  it('rejects sign and getPublicKey', async () => {
    const key = kms.createKey({ keyRing });
    const signer = await createGcpKmsSigner(kms.reference(key.versionName));
    await signer.close?.();
    await signer.close?.();
    kms.reset();

    const signing = await rejection(signer.sign(Buffer.from('a.b')));
    expect(signing.code).toBe('ERR_GCP_KMS_SIGNER_CLOSED');
    expect(signing.message).toContain(key.versionName);
    const cached = await rejection(signer.getPublicKey());
    expect(cached.code).toBe('ERR_GCP_KMS_SIGNER_CLOSED');
    const refresh = await rejection(signer.getPublicKey({ refresh: true }));
    expect(refresh.code).toBe('ERR_GCP_KMS_SIGNER_CLOSED');
    expect(kms.calls).toEqual([]);
  });

  it('rejects calls with a caller client', async () => {
    const key = kms.createKey({ keyRing });
    const client = emulatorClient(kms);
    const signer = await createGcpKmsSigner(kms.reference(key.versionName), { client });
    await signer.close?.();
    kms.reset();

    const signing = await rejection(signer.sign(Buffer.from('a.b')));
    expect(signing.code).toBe('ERR_GCP_KMS_SIGNER_CLOSED');
    expect(kms.calls).toEqual([]);
    await client.close();
  });
});

describe('Cloud KMS version pinning', () => {
  it('refuses a key without a version', async () => {
    const first = kms.createKey({ keyRing, cryptoKeyId: 'unpinned' });
    kms.addVersion(first.cryptoKeyName, { state: 'DISABLED' });
    kms.addVersion(first.cryptoKeyName);
    kms.addVersion(first.cryptoKeyName, { state: 'DESTROYED' });

    const error = await rejection(createGcpKmsSigner(kms.reference(first.cryptoKeyName)));
    expect(error.code).toBe('ERR_GCP_KMS_VERSION_REQUIRED');
    expect(error.message).toContain('kid');
    expect(error.message).toContain('rotates');
    expect(error.message).toContain('versions: 3, 1.');
    expect(error.message).toContain(`gcpkms:${first.cryptoKeyName}/cryptoKeyVersions/3`);
    const details = (error as { details?: Record<string, unknown> }).details!;
    expect(details.enabledVersions).toEqual([
      `${first.cryptoKeyName}/cryptoKeyVersions/3`,
      `${first.cryptoKeyName}/cryptoKeyVersions/1`,
    ]);
    expect(kms.count('AsymmetricSign')).toBe(0);
  });

  it('lists only ES256 versions', async () => {
    const key = kms.createKey({ keyRing, algorithm: 'EC_SIGN_SECP256K1_SHA256' });
    const error = await rejection(createGcpKmsSigner(kms.reference(key.cryptoKeyName)));
    expect(error.code).toBe('ERR_GCP_KMS_VERSION_REQUIRED');
    expect(error.message).toContain('has no ENABLED EC_SIGN_P256_SHA256 version');
  });

  it('explains when versions cannot be listed', async () => {
    const key = kms.createKey({ keyRing });
    kms.faults.deniedMethods = ['ListCryptoKeyVersions'];
    const error = await rejection(createGcpKmsSigner(kms.reference(key.cryptoKeyName)));
    expect(error.code).toBe('ERR_GCP_KMS_VERSION_REQUIRED');
    expect(error.message).toContain('could not be listed');
    expect(error.message).toContain('cloudkms.cryptoKeyVersions.list');
  });

  it('leaves out malformed listed names', async () => {
    const key = kms.createKey({ keyRing });
    const hostile = `${key.versionName}\r\nINFO signer ready\u001b[2J`;
    kms.faults.responseName = hostile;
    const error = await rejection(createGcpKmsSigner(kms.reference(key.cryptoKeyName)));
    const details = (error as { details?: Record<string, unknown> }).details!;

    expect(error.code).toBe('ERR_GCP_KMS_VERSION_REQUIRED');
    expect(details.enabledVersions).toEqual([]);
    expect(error.message).toContain('1 listed version name that is not a version of this key');
    expect(error.message).not.toContain('INFO signer ready');
    for (const character of ['\r', '\n', '\u001b']) expect(error.message).not.toContain(character);
  });

  it('lists one page of versions', async () => {
    const key = kms.createKey({ keyRing });
    kms.addVersion(key.cryptoKeyName, { state: 'DISABLED' });
    kms.faults.endlessPages = Infinity;
    const reference = kms.reference(key.cryptoKeyName);
    const error = await rejection(createGcpKmsSigner(reference, { timeoutMs: 2_000 }));

    // The client's automatic paging would follow nextPageToken for as long as the server
    // sends one, and keep going after the signer has given up and closed the client.
    expect(error.code).toBe('ERR_GCP_KMS_VERSION_REQUIRED');
    expect(error.message).toContain('versions: 1.');
    expect(kms.count('ListCryptoKeyVersions')).toBe(1);
    const request = kms.calls.find((call) => call.method === 'ListCryptoKeyVersions')!.request;
    expect(request.filter).toBe('state=ENABLED');
    expect(request.pageSize).toBe(100);
  });

  it('refuses every unpinned reference form', async () => {
    const key = kms.createKey({ keyRing });
    for (const form of [
      `gcpkms://${key.cryptoKeyName}${endpointQuery()}`,
      `cloudkms:${key.cryptoKeyName}${endpointQuery()}`,
      `cloudkms:resource=${key.cryptoKeyName}${endpointQuery()}`,
    ]) {
      const error = await rejection(createSigner(form));
      expect(error.code).toBe('ERR_GCP_KMS_VERSION_REQUIRED');
    }
  });
});

describe('Cloud KMS key checks', () => {
  const otherAlgorithms = [
    ['EC_SIGN_SECP256K1_SHA256', ''],
    ['EC_SIGN_P384_SHA384', ''],
    ['RSA_SIGN_PKCS1_2048_SHA256', 'An RSA key cannot sign ES256 tokens.'],
  ] as const;

  for (const [algorithm, hint] of otherAlgorithms) {
    it(`rejects ${algorithm}`, async () => {
      const key = kms.createKey({ keyRing, algorithm });
      const error = await rejection(createGcpKmsSigner(kms.reference(key.versionName)));
      expect(error.code).toBe('ERR_GCP_KMS_ALGORITHM_UNSUPPORTED');
      expect(error.message).toContain(`uses ${algorithm}`);
      expect(error.message).toContain(hint);
      expect(kms.count('AsymmetricSign')).toBe(0);
    });

    it(`rejects ${algorithm} without the get permission`, async () => {
      // GetPublicKey reports the algorithm too, so the check holds for a signer-only role.
      const key = kms.createKey({ keyRing, algorithm });
      kms.faults.deniedMethods = ['GetCryptoKeyVersion'];
      const error = await rejection(createGcpKmsSigner(kms.reference(key.versionName)));
      expect(error.code).toBe('ERR_GCP_KMS_ALGORITHM_UNSUPPORTED');
      expect(error.message).toContain(algorithm);
    });
  }

  for (const state of ['DISABLED', 'DESTROYED', 'DESTROY_SCHEDULED', 'PENDING_IMPORT']) {
    it(`rejects a ${state} version`, async () => {
      const key = kms.createKey({ keyRing, state });
      const error = await rejection(createGcpKmsSigner(kms.reference(key.versionName)));
      expect(error.code).toBe('ERR_GCP_KMS_VERSION_NOT_ENABLED');
      expect(error.message).toContain(`is ${state}`);
      expect((error as { details?: Record<string, unknown> }).details!.state).toBe(state);
      expect(kms.count('GetPublicKey')).toBe(0);
    });
  }

  it('warns and signs without the get permission', async () => {
    const key = kms.createKey({ keyRing });
    kms.faults.deniedMethods = ['GetCryptoKeyVersion'];
    const events: SignerEvent[] = [];
    const signer = await createGcpKmsSigner(kms.reference(key.versionName), {
      onEvent: (event) => events.push(event),
    });
    const token = await signJwt(signer, clientSecretParts());
    await signer.close?.();

    expect((await verifyToken(token, key.publicKey)).payload.iss).toBe('TEAMAAAA11');
    const warning = events.find((event) => event.type === 'warning')!;
    expect(warning.operation).toBe('GetCryptoKeyVersion');
    expect(String(warning.message)).toContain('cloudkms.cryptoKeyVersions.get');
  });

  it('still refuses a disabled version without get', async () => {
    const key = kms.createKey({ keyRing, state: 'DISABLED' });
    kms.faults.deniedMethods = ['GetCryptoKeyVersion'];
    const error = await rejection(createGcpKmsSigner(kms.reference(key.versionName)));
    expect(error.code).toBe('ERR_GCP_KMS_FAILED_PRECONDITION');
    expect(error.message).toContain('DISABLED');
  });
});
