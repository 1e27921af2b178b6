/**
 * Every fault switch of the AWS KMS emulator against the adapter: each run ends in a token that
 * jose and jsonwebtoken accept under the key the emulator really holds, or in a coded error.
 * A token that fails to verify fails the test, whatever the switch.
 */
import { createPublicKey } from 'node:crypto';
import { importSPKI, jwtVerify } from 'jose';
import jsonwebtoken from 'jsonwebtoken';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAwsKmsSigner, type AwsKmsSignerOptions } from '../../adapters/aws-kms/index.js';
import { isKmsJwtError } from '../../src/errors.js';
import { signJwt } from '../../src/jws.js';
import type { SignerEvent } from '../../src/signer.js';
import type {
  AwsKmsEmulator,
  EmulatorFaults,
  EmulatorKey,
  EmulatorKeyState,
} from '../emulators/aws-kms/index.js';
import { clientSecretParts, emulatorOptions, frozenNow, startEmulator } from './support.js';

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

type Outcome = { token: string; events: SignerEvent[] } | { code: string; events: SignerEvent[] };

/** Mints one client secret and checks any token with jose and jsonwebtoken. */
async function mint(
  key: EmulatorKey,
  setup: { faults?: EmulatorFaults; state?: EmulatorKeyState; warm?: boolean },
  options: AwsKmsSignerOptions = {},
): Promise<Outcome> {
  const events: SignerEvent[] = [];
  const signer = await createAwsKmsSigner(`awskms:${key.arn}`, {
    ...emulatorOptions(kms),
    onEvent: (event) => events.push(event),
    ...options,
  });
  try {
    if (setup.warm) await signer.getPublicKey();
    if (setup.state) kms.setKeyState(key.arn, setup.state);
    kms.faults = setup.faults ?? {};
    const token = await signJwt(signer, clientSecretParts());
    await assertTokenVerifies(token, key);
    return { token, events };
  } catch (error) {
    if (!isKmsJwtError(error)) throw error;
    return { code: error.code, events };
  } finally {
    await signer.close();
  }
}

async function assertTokenVerifies(token: string, key: EmulatorKey): Promise<void> {
  const pem = createPublicKey(key.privateKey!).export({ type: 'spki', format: 'pem' }).toString();
  const parts = clientSecretParts();
  const { payload } = await jwtVerify(token, await importSPKI(pem, 'ES256'), {
    algorithms: ['ES256'],
    currentDate: frozenNow,
  });
  expect(payload).toEqual(parts.payload);
  const decoded = jsonwebtoken.verify(token, pem, {
    algorithms: ['ES256'],
    clockTimestamp: frozenNow.getTime() / 1000,
  });
  expect(decoded).toEqual(parts.payload);
}

function retries(events: SignerEvent[]): SignerEvent[] {
  return events.filter((event) => event.type === 'retry');
}

describe('AWS KMS emulator fault switches', () => {
  it('throttle within the retries gives a token', async () => {
    const key = kms.createKey();
    const outcome = await mint(key, { faults: { throttle: 2, operations: ['Sign'] } });
    expect(outcome).toHaveProperty('token');
    expect(kms.calls.Sign).toBe(3);
    expect(retries(outcome.events)).toEqual([
      expect.objectContaining({ attempt: 2, maxAttempts: 3, reason: 'ThrottlingException' }),
      expect.objectContaining({ attempt: 3, maxAttempts: 3, reason: 'ThrottlingException' }),
    ]);
  });

  it('throttle past the retries raises THROTTLED', async () => {
    const key = kms.createKey();
    const outcome = await mint(key, { faults: { throttle: 10, operations: ['Sign'] } });
    expect(outcome).toMatchObject({ code: 'ERR_AWS_KMS_THROTTLED' });
    expect(kms.calls.Sign).toBe(3);
  });

  it('throttle on GetPublicKey also retries', async () => {
    const key = kms.createKey();
    const outcome = await mint(key, { faults: { throttle: 1, operations: ['GetPublicKey'] } });
    expect(outcome).toHaveProperty('token');
    expect(kms.calls.GetPublicKey).toBe(2);
    expect(retries(outcome.events)).toHaveLength(1);
  });

  it('HTTP 500 within the retries gives a token', async () => {
    const key = kms.createKey();
    const outcome = await mint(key, { faults: { serverErrors: 2, operations: ['Sign'] } });
    expect(outcome).toHaveProperty('token');
    expect(retries(outcome.events).map((event) => event.reason)).toEqual([
      'KMSInternalException',
      'KMSInternalException',
    ]);
  });

  it('HTTP 500 past the retries raises UNAVAILABLE', async () => {
    const key = kms.createKey();
    const outcome = await mint(key, { faults: { serverErrors: 10 } });
    expect(outcome).toMatchObject({ code: 'ERR_AWS_KMS_UNAVAILABLE' });
    expect(outcome.events).toContainEqual(
      expect.objectContaining({ type: 'error', code: 'ERR_AWS_KMS_UNAVAILABLE' }),
    );
  });

  it('slow Sign past the deadline raises TIMEOUT', async () => {
    const key = kms.createKey();
    const outcome = await mint(
      key,
      { faults: { delayMs: 3_000, operations: ['Sign'] }, warm: true },
      { timeoutMs: 300 },
    );
    expect(outcome).toMatchObject({ code: 'ERR_AWS_KMS_TIMEOUT' });
  });

  it('slow Sign inside the deadline gives a token', async () => {
    const key = kms.createKey();
    const outcome = await mint(
      key,
      { faults: { delayMs: 100, operations: ['Sign'] } },
      { timeoutMs: 5_000 },
    );
    expect(outcome).toHaveProperty('token');
  });

  const badSignatures = [
    ['truncated-der', 'ERR_SIGNATURE_DER_INVALID'],
    ['garbage-der', 'ERR_SIGNATURE_DER_INVALID'],
    ['raw-p1363', 'ERR_SIGNATURE_DER_INVALID'],
    ['other-key', 'ERR_SIGNATURE_VERIFY_FAILED'],
    ['double-hash', 'ERR_SIGNATURE_VERIFY_FAILED'],
  ] as const;

  for (const [fault, code] of badSignatures) {
    it(`${fault} signature raises ${code}`, async () => {
      const key = kms.createKey();
      const outcome = await mint(key, { faults: { signature: fault } });
      expect(outcome).toMatchObject({ code });
    });
  }

  const groupOrder = 'ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551';
  const derVariants: [string, (der: Buffer) => Buffer][] = [
    ['trailing byte', (der) => Buffer.concat([der, Buffer.from([0])])],
    [
      'long-form length',
      (der) => Buffer.concat([Buffer.from([0x30, 0x81, der[1]!]), der.subarray(2)]),
    ],
    ['negative r', () => Buffer.from('3006020181020101', 'hex')],
    ['zero s', () => Buffer.from('3006020101020100', 'hex')],
    ['r equal to n', () => Buffer.from(`3026022100${groupOrder}020101`, 'hex')],
    ['s equal to n', () => Buffer.from(`3026020101022100${groupOrder}`, 'hex')],
  ];

  for (const [name, change] of derVariants) {
    it(`DER with ${name} raises DER_INVALID`, async () => {
      const key = kms.createKey();
      const rewrite: EmulatorFaults['rewrite'] = (_operation, payload) => {
        const der = Buffer.from(String(payload.Signature), 'base64');
        return { ...payload, Signature: change(der).toString('base64') };
      };
      const outcome = await mint(key, { faults: { rewrite, operations: ['Sign'] } });
      expect(outcome).toMatchObject({ code: 'ERR_SIGNATURE_DER_INVALID' });
    });
  }

  it('other-key signature refetches the key once', async () => {
    const key = kms.createKey();
    const outcome = await mint(key, { faults: { signature: 'other-key' } });
    expect(outcome).toMatchObject({ code: 'ERR_SIGNATURE_VERIFY_FAILED' });
    expect(kms.calls.GetPublicKey).toBe(2);
    expect(kms.calls.Sign).toBe(1);
  });

  it('key flipping on refresh raises RESPONSE_INVALID', async () => {
    // The cached key is right; then Sign and the refresh both switch to another key pair. The
    // refresh must not turn the foreign signature into a token.
    const key = kms.createKey();
    const outcome = await mint(key, {
      faults: { signature: 'other-key', publicKey: 'other-key' },
      warm: true,
    });
    expect(outcome).toMatchObject({ code: 'ERR_AWS_KMS_RESPONSE_INVALID' });
    expect(kms.calls.GetPublicKey).toBe(2);
  });

  it('other-key public key raises VERIFY_FAILED', async () => {
    const key = kms.createKey();
    const outcome = await mint(key, { faults: { publicKey: 'other-key' } });
    expect(outcome).toMatchObject({ code: 'ERR_SIGNATURE_VERIFY_FAILED' });
  });

  const states = [
    ['Disabled', 'ERR_AWS_KMS_KEY_DISABLED'],
    ['PendingDeletion', 'ERR_AWS_KMS_KEY_STATE'],
  ] as const;

  for (const [state, code] of states) {
    it(`${state} key raises ${code}`, async () => {
      const key = kms.createKey();
      const outcome = await mint(key, { state });
      expect(outcome).toMatchObject({ code });
    });

    it(`${state} after the key is cached raises ${code}`, async () => {
      const key = kms.createKey();
      const outcome = await mint(key, { state, warm: true });
      expect(outcome).toMatchObject({ code });
      expect(kms.calls.Sign).toBe(1);
    });
  }

  it('access denied on Sign raises ACCESS_DENIED', async () => {
    const key = kms.createKey();
    const outcome = await mint(key, { faults: { accessDenied: ['Sign'] } });
    expect(outcome).toMatchObject({ code: 'ERR_AWS_KMS_ACCESS_DENIED' });
  });

  it('every switch cleared gives a token', async () => {
    const key = kms.createKey();
    const outcome = await mint(key, { faults: {} });
    expect(outcome).toHaveProperty('token');
    expect(retries(outcome.events)).toEqual([]);
  });
});
