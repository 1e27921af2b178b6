import { createPublicKey } from 'node:crypto';
import { importSPKI, jwtVerify } from 'jose';
import jsonwebtoken from 'jsonwebtoken';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createAwsKmsSigner } from '../../adapters/aws-kms/index.js';
import { signJwt } from '../../src/jws.js';
import { createSigner } from '../../src/key-uri.js';
import type { SignerEvent } from '../../src/signer.js';
import type { AwsKmsEmulator } from '../emulators/aws-kms/index.js';
import {
  clientSecretParts,
  emulatorClient,
  emulatorOptions,
  frozenNow,
  startEmulator,
} from './support.js';

let kms: AwsKmsEmulator;

beforeAll(async () => {
  kms = await startEmulator();
});

afterAll(async () => {
  await kms.stop();
});

beforeEach(() => {
  kms.reset();
});

async function verifyToken(token: string, spkiPem: string) {
  const { payload } = await jwtVerify(token, await importSPKI(spkiPem, 'ES256'), {
    algorithms: ['ES256'],
    currentDate: frozenNow,
  });
  const decoded = jsonwebtoken.verify(token, spkiPem, {
    algorithms: ['ES256'],
    clockTimestamp: frozenNow.getTime() / 1000,
  });
  return { payload, decoded };
}

describe('AWS KMS signer', () => {
  it('signs a digest with MessageType DIGEST', async () => {
    const key = kms.createKey();
    const signer = await createAwsKmsSigner(`awskms:${key.arn}`, emulatorOptions(kms));
    const parts = clientSecretParts();
    const token = await signJwt(signer, parts);
    await signer.close();

    const pem = createPublicKey(key.privateKey!).export({ type: 'spki', format: 'pem' }).toString();
    const { payload, decoded } = await verifyToken(token, pem);
    expect(payload).toEqual(parts.payload);
    expect(decoded).toEqual(parts.payload);

    const signRequest = kms.requests.find((request) => request.operation === 'Sign')!;
    expect(signRequest.body.MessageType).toBe('DIGEST');
    expect(signRequest.body.SigningAlgorithm).toBe('ECDSA_SHA_256');
    expect(Buffer.from(String(signRequest.body.Message), 'base64').length).toBe(32);
  });

  it('fetches the public key once per key ARN', async () => {
    const key = kms.createKey({ alias: 'alias/cache-check' });
    const signer = await createAwsKmsSigner('awskms:alias/cache-check', emulatorOptions(kms));
    for (let i = 0; i < 5; i += 1) await signJwt(signer, clientSecretParts(String(i)));
    expect(kms.calls.GetPublicKey).toBe(1);
    expect(kms.calls.Sign).toBe(5);
    expect(signer.keyId).toBe(key.arn);

    await signer.getPublicKey({ refresh: true });
    expect(kms.calls.GetPublicKey).toBe(2);
    await signer.close();
  });

  it('shares one GetPublicKey among concurrent first calls', async () => {
    kms.createKey({ alias: 'alias/single-flight' });
    const signer = await createAwsKmsSigner('awskms:alias/single-flight', emulatorOptions(kms));
    await Promise.all(
      Array.from({ length: 25 }, (_, i) => signJwt(signer, clientSecretParts(String(i)))),
    );
    expect(kms.calls.GetPublicKey).toBe(1);
    expect(kms.calls.Sign).toBe(25);
    await signer.close();
  });

  it("one caller's abort spares the shared fetch", async () => {
    const key = kms.createKey();
    kms.faults = { delayMs: 300, operations: ['GetPublicKey'] };
    const signer = await createAwsKmsSigner(`awskms:${key.arn}`, emulatorOptions(kms));
    const controller = new AbortController();
    const aborted = signer.getPublicKey({ signal: controller.signal });
    const patient = signer.getPublicKey();
    setTimeout(() => controller.abort(new Error('first caller gave up')), 50);

    await expect(aborted).rejects.toMatchObject({ code: 'ERR_AWS_KMS_ABORTED' });
    const publicKey = await patient;
    const expected = createPublicKey(key.privateKey!).export({ type: 'spki', format: 'der' });
    expect(publicKey.export({ type: 'spki', format: 'der' })).toEqual(expected);
    expect(kms.calls.GetPublicKey).toBe(1);
    await signer.close();
  });

  it('follows an alias that moves to another key', async () => {
    const first = kms.createKey({ alias: 'alias/moving' });
    const second = kms.createKey();
    const signer = await createAwsKmsSigner('awskms:alias/moving', emulatorOptions(kms));
    await signJwt(signer, clientSecretParts('a'));
    expect(signer.keyId).toBe(first.arn);

    kms.createAlias('alias/moving', second.keyId);
    const token = await signJwt(signer, clientSecretParts('b'));
    expect(signer.keyId).toBe(second.arn);
    const pem = createPublicKey(second.privateKey!)
      .export({ type: 'spki', format: 'pem' })
      .toString();
    expect((await verifyToken(token, pem)).payload.jti).toBe('b');
    await signer.close();
  });

  it('uses a KMSClient passed by the caller', async () => {
    const key = kms.createKey();
    const client = emulatorClient(kms);
    const signer = await createAwsKmsSigner(key.keyId, { client, endpoint: 'http://127.0.0.1:1' });
    const signature = await signer.sign(Buffer.from('a.b'));
    expect(signature.length).toBe(64);
    await signer.close();

    // close() leaves a caller's client usable.
    const again = await createAwsKmsSigner(key.keyId, { client });
    expect((await again.sign(Buffer.from('a.b'))).length).toBe(64);
    client.destroy();
  });

  it('warns when a passed client has another region', async () => {
    const key = kms.createKey();
    const client = emulatorClient(kms, { region: 'eu-west-1' });
    const events: SignerEvent[] = [];
    const signer = await createAwsKmsSigner(key.arn, {
      client,
      onEvent: (event) => events.push(event),
    });
    expect(events).toEqual([expect.objectContaining({ type: 'warning', key: key.arn })]);
    expect(String(events[0]!.message)).toContain('eu-west-1');
    await signer.close();
    client.destroy();
  });

  it('takes the region from the ARN', async () => {
    const key = kms.createKey();
    // The client's region would otherwise come from AWS_REGION, which is unset here.
    const { region: _unused, ...withoutRegion } = emulatorOptions(kms);
    const signer = await createAwsKmsSigner(key.arn, withoutRegion);
    expect((await signer.sign(Buffer.from('x.y'))).length).toBe(64);
    await signer.close();
  });

  it('raises ERR_AWS_KMS_REGION_MISSING without a region', async () => {
    const key = kms.createKey();
    const { region: _unused, ...withoutRegion } = emulatorOptions(kms);
    const signer = await createAwsKmsSigner(key.keyId, withoutRegion);
    await expect(signer.sign(Buffer.from('x.y'))).rejects.toMatchObject({
      code: 'ERR_AWS_KMS_REGION_MISSING',
    });
    await signer.close();
  });

  it('works through createSigner and the sigstore form', async () => {
    const key = kms.createKey();
    const signer = await createSigner(`awskms://127.0.0.1:${kms.port}/${key.arn}`, {
      credentials: emulatorOptions(kms).credentials,
    });
    const token = await signJwt(signer, clientSecretParts());
    const pem = createPublicKey(key.privateKey!).export({ type: 'spki', format: 'pem' }).toString();
    expect((await verifyToken(token, pem)).payload.sub).toBe('com.example.web');
    await signer.close?.();
  });

  it('works with the smallstep form', async () => {
    const key = kms.createKey();
    const signer = await createSigner(`awskms:key-id=${key.keyId};region=${kms.region}`, {
      endpoint: kms.endpoint,
      credentials: emulatorOptions(kms).credentials,
    });
    expect((await signer.sign(Buffer.from('x.y'))).length).toBe(64);
    await signer.close?.();
  });

  it('honours an aborted signal', async () => {
    const key = kms.createKey();
    const signer = await createAwsKmsSigner(key.arn, emulatorOptions(kms));
    const controller = new AbortController();
    controller.abort();
    await expect(signer.sign(Buffer.from('x.y'), { signal: controller.signal })).rejects.toThrow();
    expect(kms.calls.Sign).toBeUndefined();
    await signer.close();
  });

  it('maps an abort during a call to ERR_AWS_KMS_ABORTED', async () => {
    const key = kms.createKey();
    const signer = await createAwsKmsSigner(key.arn, emulatorOptions(kms));
    await signer.getPublicKey();
    kms.faults = { delayMs: 2_000, operations: ['Sign'] };
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await expect(
      signer.sign(Buffer.from('x.y'), { signal: controller.signal }),
    ).rejects.toMatchObject({
      code: 'ERR_AWS_KMS_ABORTED',
    });
    await signer.close();
  });
});

describe('AWS KMS signer-wide signal', () => {
  async function rejectionOf(promise: Promise<unknown>): Promise<Error & { code?: string }> {
    try {
      await promise;
    } catch (error) {
      return error as Error & { code?: string };
    }
    throw new Error('expected a rejection');
  }

  it('aborts signer creation', async () => {
    const key = kms.createKey();
    const reason = new Error('shutting down');
    const events: SignerEvent[] = [];
    const error = await rejectionOf(
      createAwsKmsSigner(key.arn, {
        ...emulatorOptions(kms),
        signal: AbortSignal.abort(reason),
        onEvent: (event) => events.push(event),
      }),
    );

    expect(error.code).toBe('ERR_AWS_KMS_ABORTED');
    expect(error.cause).toBe(reason);
    expect(error.message).toContain(key.arn);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'error', code: 'ERR_AWS_KMS_ABORTED', key: key.arn }),
    );
    expect(kms.requests).toEqual([]);
  });

  it('aborts creation through createSigner', async () => {
    const key = kms.createKey();
    const error = await rejectionOf(
      createSigner(`awskms:${key.arn}`, { ...emulatorOptions(kms), signal: AbortSignal.abort() }),
    );
    expect(error.code).toBe('ERR_AWS_KMS_ABORTED');
    expect(kms.requests).toEqual([]);
  });

  it('aborts later calls without their own signal', async () => {
    const key = kms.createKey();
    const controller = new AbortController();
    const reason = new Error('signer retired');
    const signer = await createAwsKmsSigner(key.arn, {
      ...emulatorOptions(kms),
      signal: controller.signal,
    });
    await signer.getPublicKey();
    controller.abort(reason);

    const signing = await rejectionOf(signer.sign(Buffer.from('x.y')));
    expect(signing.code).toBe('ERR_AWS_KMS_ABORTED');
    expect(signing.cause).toBe(reason);
    const refresh = await rejectionOf(signer.getPublicKey({ refresh: true }));
    expect(refresh.code).toBe('ERR_AWS_KMS_ABORTED');
    expect(kms.calls.Sign).toBeUndefined();
    expect(kms.calls.GetPublicKey).toBe(1);
    await signer.close();
  });

  it('aborts a Sign call in flight', async () => {
    const key = kms.createKey();
    const controller = new AbortController();
    const signer = await createAwsKmsSigner(key.arn, {
      ...emulatorOptions(kms),
      signal: controller.signal,
    });
    await signer.getPublicKey();
    kms.faults = { delayMs: 10_000, operations: ['Sign'] };

    const pending = rejectionOf(signer.sign(Buffer.from('x.y')));
    await vi.waitFor(() => expect(kms.calls.Sign).toBe(1));
    controller.abort();
    expect((await pending).code).toBe('ERR_AWS_KMS_ABORTED');
    await signer.close();
  });

  it('aborts the shared GetPublicKey', async () => {
    const key = kms.createKey();
    const controller = new AbortController();
    const signer = await createAwsKmsSigner(key.arn, {
      ...emulatorOptions(kms),
      signal: controller.signal,
    });
    kms.faults = { delayMs: 10_000, operations: ['GetPublicKey'] };

    const pending = rejectionOf(signer.getPublicKey());
    await vi.waitFor(() => expect(kms.calls.GetPublicKey).toBe(1));
    controller.abort();
    expect((await pending).code).toBe('ERR_AWS_KMS_ABORTED');
    await signer.close();
  });

  it('keeps per-call signals working beside it', async () => {
    const key = kms.createKey();
    const signer = await createAwsKmsSigner(key.arn, {
      ...emulatorOptions(kms),
      signal: new AbortController().signal,
    });
    const reason = new Error('this call only');

    const aborted = await rejectionOf(
      signer.sign(Buffer.from('x.y'), { signal: AbortSignal.abort(reason) }),
    );
    expect(aborted.code).toBe('ERR_AWS_KMS_ABORTED');
    expect(aborted.cause).toBe(reason);
    expect((await signer.sign(Buffer.from('x.y'))).length).toBe(64);
    await signer.close();
  });
});

describe('AWS KMS signer after close', () => {
  async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
    try {
      await promise;
    } catch (error) {
      return (error as { code?: string }).code;
    }
    return undefined;
  }

  it('rejects sign and getPublicKey', async () => {
    const key = kms.createKey();
    const signer = await createAwsKmsSigner(key.arn, emulatorOptions(kms));
    await signer.sign(Buffer.from('x.y'));
    await signer.close();
    await signer.close();
    kms.reset();

    expect(await codeOf(signer.sign(Buffer.from('x.y')))).toBe('ERR_AWS_KMS_SIGNER_CLOSED');
    expect(await codeOf(signer.getPublicKey())).toBe('ERR_AWS_KMS_SIGNER_CLOSED');
    expect(await codeOf(signer.getPublicKey({ refresh: true }))).toBe('ERR_AWS_KMS_SIGNER_CLOSED');
    expect(await codeOf(signJwt(signer, clientSecretParts()))).toBe('ERR_AWS_KMS_SIGNER_CLOSED');
    expect(kms.requests).toEqual([]);
  });

  it('rejects calls with a caller client', async () => {
    const key = kms.createKey();
    const client = emulatorClient(kms);
    const signer = await createAwsKmsSigner(key.arn, { client });
    await signer.close();
    kms.reset();

    expect(await codeOf(signer.sign(Buffer.from('x.y')))).toBe('ERR_AWS_KMS_SIGNER_CLOSED');
    expect(kms.requests).toEqual([]);
    client.destroy();
  });

  it('names the key in the error', async () => {
    const key = kms.createKey();
    const signer = await createAwsKmsSigner(key.arn, emulatorOptions(kms));
    await signer.close();

    const error = await signer.sign(Buffer.from('x.y')).catch((caught: Error) => caught);
    expect((error as Error).message).toContain(key.arn);
    expect((error as Error).message).toContain('Create a new signer');
  });
});
