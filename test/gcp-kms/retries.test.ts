import { GoogleAuth } from 'google-auth-library';
import { grpc } from 'google-gax';
import { KeyManagementServiceClient } from '@google-cloud/kms';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createGcpKmsSigner, type GcpKmsClient } from '../../adapters/gcp-kms/index.js';
import { signJwt } from '../../src/jws.js';
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

afterEach(() => {
  vi.restoreAllMocks();
});

function digestRequest(name: string) {
  return { name, digest: { sha256: Buffer.alloc(32, 7) } };
}

describe('Cloud KMS retry bounds', () => {
  it('client alone retries UNAVAILABLE', async () => {
    // The contrast for the next test: left to its defaults, the Google client hides
    // UNAVAILABLE responses behind retries that can run for a minute or more.
    const key = kms.createKey({ keyRing });
    const client = emulatorClient(kms);
    kms.faults.unavailable = 4;
    const [response] = await client.asymmetricSign(digestRequest(key.versionName));
    await client.close();
    expect(response.signature?.length).toBeGreaterThan(60);
    expect(kms.count('AsymmetricSign')).toBe(5);
  });

  it('adapter stops after maxAttempts', async () => {
    const key = kms.createKey({ keyRing });
    const client = emulatorClient(kms);
    const events: SignerEvent[] = [];
    const signer = await createGcpKmsSigner(key.versionName, {
      client,
      onEvent: (event) => events.push(event),
    });
    kms.reset();
    kms.faults.unavailable = Infinity;
    const error = await rejection(signer.sign(Buffer.from('a.b')));

    expect(error.code).toBe('ERR_GCP_KMS_UNAVAILABLE');
    expect(kms.count('AsymmetricSign')).toBe(3);
    const retries = events.filter((event) => event.type === 'retry');
    expect(retries.map((event) => event.attempt)).toEqual([1, 2]);
    expect(retries.every((event) => event.code === 14 && event.reason === 'transient')).toBe(true);
    await client.close();
  });

  it('maxAttempts 1 makes one attempt', async () => {
    const key = kms.createKey({ keyRing });
    const signer = await createGcpKmsSigner(kms.reference(key.versionName), { maxAttempts: 1 });
    kms.reset();
    kms.faults.unavailable = Infinity;
    const error = await rejection(signer.sign(Buffer.from('a.b')));
    await signer.close?.();
    expect(error.code).toBe('ERR_GCP_KMS_UNAVAILABLE');
    expect(kms.count('AsymmetricSign')).toBe(1);
  });

  it('recovers within the attempts', async () => {
    const key = kms.createKey({ keyRing });
    const signer = await createGcpKmsSigner(kms.reference(key.versionName));
    kms.reset();
    kms.faults.unavailable = 2;
    const token = await signJwt(signer, clientSecretParts());
    await signer.close?.();
    expect((await verifyToken(token, key.publicKey)).payload.iss).toBe('TEAMAAAA11');
    expect(kms.count('AsymmetricSign')).toBe(3);
  });

  it('retries a digestCrc32c mismatch', async () => {
    const key = kms.createKey({ keyRing });
    const events: SignerEvent[] = [];
    const signer = await createGcpKmsSigner(kms.reference(key.versionName), {
      onEvent: (event) => events.push(event),
    });
    kms.reset();
    kms.faults.corruptDigest = 1;
    const token = await signJwt(signer, clientSecretParts());
    await signer.close?.();

    expect((await verifyToken(token, key.publicKey)).payload.iss).toBe('TEAMAAAA11');
    expect(kms.count('AsymmetricSign')).toBe(2);
    const retry = events.find((event) => event.type === 'retry')!;
    expect(retry.code).toBe(3);
    expect(retry.reason).toBe('transient');
  });

  it('does not repeat a permission failure', async () => {
    const key = kms.createKey({ keyRing });
    const signer = await createGcpKmsSigner(kms.reference(key.versionName));
    kms.reset();
    kms.faults.permissionDenied = Infinity;
    await expect(signer.sign(Buffer.from('a.b'))).rejects.toMatchObject({
      code: 'ERR_GCP_KMS_PERMISSION_DENIED',
    });
    await signer.close?.();
    expect(kms.count('AsymmetricSign')).toBe(1);
  });
});

describe('Cloud KMS client settings', () => {
  /** Wraps a client so that the test sees the options object of every call. */
  function recordingClient(client: KeyManagementServiceClient) {
    const options: Record<string, unknown>[] = [];
    const wrapped = new Proxy(client, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (typeof args[1] === 'object' && args[1] !== null) {
            options.push(args[1] as Record<string, unknown>);
          }
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    return { wrapped: wrapped as unknown as GcpKmsClient, options };
  }

  it('sends fresh options without maxRetries', async () => {
    const key = kms.createKey({ keyRing });
    const client = emulatorClient(kms);
    const { wrapped, options } = recordingClient(client);
    const signer = await createGcpKmsSigner(key.versionName, { client: wrapped, timeoutMs: 4321 });
    kms.faults.unavailable = 1;
    await signer.sign(Buffer.from('a.b'));
    await signer.sign(Buffer.from('a.b'));
    await client.close();

    // GetCryptoKeyVersion, GetPublicKey, then AsymmetricSign three times (one retried).
    expect(options).toHaveLength(5);
    expect(new Set(options).size).toBe(5);
    for (const option of options) {
      expect(option.retry).toBeNull();
      expect(option.timeout).toBe(4321);
      expect(option).not.toHaveProperty('maxRetries');
      expect(option).not.toHaveProperty('retryRequestOptions');
    }
  });

  it('leaves the client retry settings intact', async () => {
    const key = kms.createKey({ keyRing });
    const client = emulatorClient(kms);
    const signer = await createGcpKmsSigner(key.versionName, { client });
    kms.faults.unavailable = 2;
    await signer.sign(Buffer.from('a.b'));
    await signer.close?.();

    // The caller's own call still gets the client's default retries afterwards.
    kms.reset();
    kms.faults.unavailable = 3;
    const [response] = await client.asymmetricSign(digestRequest(key.versionName));
    expect(response.verifiedDigestCrc32c).toBe(false);
    expect(kms.count('AsymmetricSign')).toBe(4);
    await client.close();
  });

  it('works on a client that maxRetries damaged', async () => {
    const key = kms.createKey({ keyRing });
    const client = emulatorClient(kms);
    // A per-call maxRetries rewrites the settings the client shares between calls: the
    // caller's later calls lose their retries too.
    kms.faults.unavailable = 1;
    await expect(
      client.asymmetricSign(digestRequest(key.versionName), { maxRetries: 0 }),
    ).rejects.toMatchObject({ code: 4 });
    kms.reset();
    kms.faults.unavailable = 1;
    await expect(client.asymmetricSign(digestRequest(key.versionName))).rejects.toMatchObject({
      code: 4,
    });

    // The adapter's own bounded retries do not depend on those settings.
    const signer = await createGcpKmsSigner(key.versionName, { client });
    kms.reset();
    kms.faults.unavailable = 2;
    const token = await signJwt(signer, clientSecretParts());
    expect((await verifyToken(token, key.publicKey)).payload.sub).toBe('com.example.web');
    expect(kms.count('AsymmetricSign')).toBe(3);
    await client.close();
  });
});

describe('Cloud KMS abort', () => {
  it('rejects at once when already aborted', async () => {
    const key = kms.createKey({ keyRing });
    const signer = await createGcpKmsSigner(kms.reference(key.versionName));
    kms.reset();
    const controller = new AbortController();
    const reason = new Error('shutting down');
    controller.abort(reason);
    const error = await rejection(signer.sign(Buffer.from('a.b'), { signal: controller.signal }));
    await signer.close?.();

    expect(error.code).toBe('ERR_GCP_KMS_ABORTED');
    expect(error.cause).toBe(reason);
    expect(kms.calls).toEqual([]);
  });

  it('aborts a call in flight', async () => {
    const key = kms.createKey({ keyRing });
    const signer = await createGcpKmsSigner(kms.reference(key.versionName));
    kms.reset();
    kms.faults.slow = 1;
    kms.faults.slowMs = 10_000;
    const controller = new AbortController();
    const pending = signer.sign(Buffer.from('a.b'), { signal: controller.signal });
    await vi.waitFor(() => expect(kms.count('AsymmetricSign')).toBe(1), { timeout: 10_000 });
    controller.abort();
    const error = await rejection(pending);
    await signer.close?.();

    expect(error.code).toBe('ERR_GCP_KMS_ABORTED');
    expect(error.message).toContain('AsymmetricSign');
  });

  it('aborts during the retry delay', async () => {
    const key = kms.createKey({ keyRing });
    const controller = new AbortController();
    const signer = await createGcpKmsSigner(kms.reference(key.versionName), {
      onEvent: (event) => {
        if (event.type === 'retry') controller.abort();
      },
    });
    kms.reset();
    kms.faults.unavailable = Infinity;
    const error = await rejection(signer.sign(Buffer.from('a.b'), { signal: controller.signal }));
    await signer.close?.();

    expect(error.code).toBe('ERR_GCP_KMS_ABORTED');
    expect(kms.count('AsymmetricSign')).toBe(1);
  });

  it('honours the signer-wide signal', async () => {
    const key = kms.createKey({ keyRing });
    const controller = new AbortController();
    const signer = await createGcpKmsSigner(kms.reference(key.versionName), {
      signal: controller.signal,
    });
    controller.abort();
    const error = await rejection(signer.sign(Buffer.from('a.b')));
    await signer.close?.();
    expect(error.code).toBe('ERR_GCP_KMS_ABORTED');
  });

  it('aborts signer creation', async () => {
    const key = kms.createKey({ keyRing });
    const controller = new AbortController();
    controller.abort();
    const error = await rejection(
      createGcpKmsSigner(kms.reference(key.versionName), { signal: controller.signal }),
    );
    expect(error.code).toBe('ERR_GCP_KMS_ABORTED');
    expect(kms.calls).toEqual([]);
  });
});

describe('Cloud KMS client set-up', () => {
  /** Creates a real emulator client whose credential lookup never finishes. */
  function hangingClient(): KeyManagementServiceClient {
    const client = emulatorClient(kms);
    vi.spyOn(client, 'initialize').mockReturnValue(new Promise(() => undefined));
    return client;
  }

  it('bounds set-up by timeoutMs', async () => {
    const key = kms.createKey({ keyRing });
    const client = hangingClient();
    const error = await rejection(
      createGcpKmsSigner(kms.reference(key.versionName), { client, timeoutMs: 50 }),
    );

    expect(error.code).toBe('ERR_GCP_KMS_TIMEOUT');
    expect(error.message).toContain('client set-up did not finish within 50 ms');
    expect(error.details!.operation).toBe('initialize');
    expect(kms.calls).toEqual([]);
  });

  it('aborts set-up', async () => {
    const key = kms.createKey({ keyRing });
    const client = hangingClient();
    const controller = new AbortController();
    const creating = createGcpKmsSigner(kms.reference(key.versionName), {
      client,
      signal: controller.signal,
    });
    controller.abort(new Error('shutting down'));
    const error = await rejection(creating);

    expect(error.code).toBe('ERR_GCP_KMS_ABORTED');
    expect(error.details!.operation).toBe('initialize');
    expect((error.cause as Error).message).toBe('shutting down');
    expect(kms.calls).toEqual([]);
  });

  it('waits for set-up before any call', async () => {
    const key = kms.createKey({ keyRing });
    const client = emulatorClient(kms);
    const order: string[] = [];
    for (const method of ['initialize', 'getCryptoKeyVersion'] as const) {
      const original = client[method].bind(client) as (...args: unknown[]) => unknown;
      vi.spyOn(client, method).mockImplementation(((...args: unknown[]) => {
        order.push(method);
        return original(...args);
      }) as never);
    }
    const signer = await createGcpKmsSigner(kms.reference(key.versionName), { client });
    await signer.close?.();
    await client.close();

    // The client's own methods call initialize too, but only after they have been entered.
    expect(order.slice(0, 2)).toEqual(['initialize', 'getCryptoKeyVersion']);
    expect(kms.count('GetPublicKey')).toBe(1);
  });
});

describe('Cloud KMS credentials', () => {
  let metadata: Server;
  let metadataRequests: number;

  beforeAll(async () => {
    metadataRequests = 0;
    metadata = createServer((_, response) => {
      metadataRequests += 1;
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => metadata.listen(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    await new Promise((resolve) => metadata.close(resolve));
  });

  it('looks up no credentials for loopback', async () => {
    const port = (metadata.address() as AddressInfo).port;
    const savedDetection = process.env.METADATA_SERVER_DETECTION;
    delete process.env.METADATA_SERVER_DETECTION;
    process.env.GCE_METADATA_HOST = `127.0.0.1:${port}`;
    const getClient = vi.spyOn(GoogleAuth.prototype, 'getClient');
    try {
      const key = kms.createKey({ keyRing });
      const signer = await createGcpKmsSigner(kms.reference(key.versionName));
      const token = await signJwt(signer, clientSecretParts());
      await signer.close?.();
      expect((await verifyToken(token, key.publicKey)).payload.iss).toBe('TEAMAAAA11');
      expect(getClient).not.toHaveBeenCalled();
      expect(metadataRequests).toBe(0);
      expect(kms.calls.every((call) => call.metadata.authorization === undefined)).toBe(true);

      // The contrast: without the universe domain, the client starts the credential
      // lookup. The credentials file named in the environment is missing, so the lookup
      // fails before it reaches any network.
      const bare = new KeyManagementServiceClient({
        apiEndpoint: kms.host,
        port: kms.port,
        sslCreds: grpc.credentials.createInsecure(),
      });
      await bare.getPublicKey({ name: key.versionName });
      await bare.close();
      expect(getClient).toHaveBeenCalled();
    } finally {
      process.env.METADATA_SERVER_DETECTION = savedDetection;
      delete process.env.GCE_METADATA_HOST;
    }
  });
});
