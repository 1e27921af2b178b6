/**
 * Error mapping, deadlines, aborts and retries of the AWS KMS adapter, through the real SDK
 * client and the emulator. Errors are checked by code, and their messages and events for the
 * key ARN and for the absence of credentials.
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAwsKmsSigner, type AwsKmsSignerOptions } from '../../adapters/aws-kms/index.js';
import { isKmsJwtError, type KmsJwtError } from '../../src/errors.js';
import { signJwt } from '../../src/jws.js';
import type { SignerEvent } from '../../src/signer.js';
import type { AwsKmsEmulator, EmulatorKeySpec } from '../emulators/aws-kms/index.js';
import {
  clientSecretParts,
  emulatorClient,
  emulatorOptions,
  fakeCredentials,
  fakeSessionCredentials,
  signatureMismatchMessage,
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

interface Failure {
  error: KmsJwtError;
  events: SignerEvent[];
}

async function failure(
  reference: string,
  action: 'sign' | 'getPublicKey' = 'sign',
  options: AwsKmsSignerOptions = {},
): Promise<Failure> {
  const events: SignerEvent[] = [];
  const signer = await createAwsKmsSigner(reference, {
    ...emulatorOptions(kms),
    onEvent: (event) => events.push(event),
    ...options,
  });
  try {
    if (action === 'sign') await signJwt(signer, clientSecretParts());
    else await signer.getPublicKey();
  } catch (error) {
    if (!isKmsJwtError(error)) throw error;
    return { error, events };
  } finally {
    await signer.close();
  }
  throw new Error(`${action} on ${reference} succeeded, but a coded error was expected.`);
}

function assertNoCredentials(found: Failure): void {
  const texts = [
    found.error.message,
    JSON.stringify(found.error.details),
    JSON.stringify(found.events),
    String((found.error.cause as Error | undefined)?.message ?? ''),
  ];
  for (const text of texts) {
    expect(text).not.toContain(fakeCredentials.accessKeyId);
    expect(text).not.toContain(fakeCredentials.secretAccessKey);
  }
}

describe('AWS KMS error mapping', () => {
  it('unknown key raises KEY_NOT_FOUND', async () => {
    const missing = `arn:aws:kms:${kms.region}:${kms.accountId}:key/${crypto.randomUUID()}`;
    const found = await failure(`awskms:${missing}`);
    expect(found.error.code).toBe('ERR_AWS_KMS_KEY_NOT_FOUND');
    expect(found.error.message).toContain(missing);
    expect(found.error.details).toMatchObject({ operation: 'GetPublicKey', httpStatusCode: 400 });
    assertNoCredentials(found);
  });

  it('unknown alias raises KEY_NOT_FOUND', async () => {
    const found = await failure('awskms:alias/never-created');
    expect(found.error.code).toBe('ERR_AWS_KMS_KEY_NOT_FOUND');
    expect(found.error.message).toContain('alias/never-created');
  });

  it('disabled key raises KEY_DISABLED', async () => {
    const key = kms.createKey();
    kms.setKeyState(key.arn, 'Disabled');
    const found = await failure(`awskms:${key.arn}`);
    expect(found.error.code).toBe('ERR_AWS_KMS_KEY_DISABLED');
    expect(found.error.message).toContain(key.arn);
    expect(found.error.message).toContain('enable-key');
  });

  it('pending deletion raises KEY_STATE', async () => {
    const key = kms.createKey();
    kms.setKeyState(key.arn, 'PendingDeletion');
    const found = await failure(`awskms:${key.arn}`);
    expect(found.error.code).toBe('ERR_AWS_KMS_KEY_STATE');
    expect(found.error.details.keyState).toBe('PendingDeletion');
    expect(found.error.message).toContain('cancel-key-deletion');
  });

  it('pending import raises KEY_STATE', async () => {
    const key = kms.createKey({ origin: 'EXTERNAL' });
    const found = await failure(`awskms:${key.arn}`);
    expect(found.error.code).toBe('ERR_AWS_KMS_KEY_STATE');
    expect(found.error.details.keyState).toBe('PendingImport');
    expect(found.error.message).toContain('kms-jwt import');
  });

  const deniedOperations = [
    ['GetPublicKey', 'kms:GetPublicKey'],
    ['Sign', 'kms:Sign'],
  ] as const;

  for (const [operation, action] of deniedOperations) {
    it(`access denied on ${operation} names ${action}`, async () => {
      const key = kms.createKey();
      kms.faults = { accessDenied: [operation] };
      const found = await failure(`awskms:${key.arn}`);
      expect(found.error.code).toBe('ERR_AWS_KMS_ACCESS_DENIED');
      expect(found.error.details.requiredAction).toBe(action);
      expect(found.error.message).toContain(action);
      expect(found.error.message).toContain(key.arn);
      assertNoCredentials(found);
    });
  }

  it('throttling raises THROTTLED', async () => {
    const key = kms.createKey();
    kms.faults = { throttle: 100 };
    const found = await failure(`awskms:${key.arn}`);
    expect(found.error.code).toBe('ERR_AWS_KMS_THROTTLED');
    expect(found.error.details.attempts).toBe(3);
    assertNoCredentials(found);
  });

  it('server errors raise UNAVAILABLE', async () => {
    const key = kms.createKey();
    kms.faults = { serverErrors: 100 };
    const found = await failure(`awskms:${key.arn}`);
    expect(found.error.code).toBe('ERR_AWS_KMS_UNAVAILABLE');
    expect(found.error.details.httpStatusCode).toBe(500);
  });

  it('refused connection raises UNAVAILABLE', async () => {
    const port = await closedPort();
    const key = kms.createKey();
    const found = await failure(`awskms:${key.arn}`, 'sign', {
      endpoint: `http://127.0.0.1:${port}`,
    });
    expect(found.error.code).toBe('ERR_AWS_KMS_UNAVAILABLE');
    expect(found.error.message).toContain(key.arn);
  });

  const unsuitable: [EmulatorKeySpec, string][] = [
    ['ECC_SECG_P256K1', 'KeySpec is ECC_SECG_P256K1'],
    ['ECC_NIST_P384', 'KeySpec is ECC_NIST_P384'],
    ['RSA_2048', 'KeySpec is RSA_2048'],
  ];

  for (const [keySpec, found] of unsuitable) {
    it(`${keySpec} key raises KEY_UNSUITABLE`, async () => {
      const key = kms.createKey({ keySpec });
      const result = await failure(`awskms:${key.arn}`);
      expect(result.error.code).toBe('ERR_AWS_KMS_KEY_UNSUITABLE');
      expect(result.error.message).toContain(found);
      expect(result.error.details.keySpec).toBe(keySpec);
      expect(kms.calls.Sign).toBeUndefined();
    });
  }

  it('RSA key names its signing algorithms', async () => {
    const key = kms.createKey({ keySpec: 'RSA_2048' });
    const result = await failure(`awskms:${key.arn}`, 'getPublicKey');
    expect(result.error.message).toContain('lack ECDSA_SHA_256');
  });
});

describe('AWS KMS error classes', () => {
  const classes: [string, number, string, Record<string, unknown>?][] = [
    ['KeyUnavailableException', 500, 'ERR_AWS_KMS_UNAVAILABLE'],
    ['DependencyTimeoutException', 500, 'ERR_AWS_KMS_UNAVAILABLE'],
    ['LimitExceededException', 400, 'ERR_AWS_KMS_THROTTLED'],
    ['InvalidKeyUsageException', 400, 'ERR_AWS_KMS_KEY_UNSUITABLE'],
    ['UnrecognizedClientException', 400, 'ERR_AWS_KMS_CREDENTIALS_INVALID'],
    ['ExpiredTokenException', 400, 'ERR_AWS_KMS_CREDENTIALS_INVALID'],
    ['InvalidGrantTokenException', 400, 'ERR_AWS_KMS_REQUEST_FAILED'],
    ['KMSInvalidStateException', 400, 'ERR_AWS_KMS_KEY_STATE', { keyState: 'Unavailable' }],
  ];

  for (const [type, status, code, details] of classes) {
    it(`${type} raises ${code}`, async () => {
      const key = kms.createKey();
      const message =
        type === 'KMSInvalidStateException' ? `${key.arn} is unavailable.` : undefined;
      kms.faults = { error: { type, status, message }, operations: ['Sign'] };
      const found = await failure(`awskms:${key.arn}`);
      expect(found.error.code).toBe(code);
      expect(found.error.details.awsErrorName).toBe(type);
      expect(found.error.message).toContain(key.arn);
      if (details) expect(found.error.details).toMatchObject(details);
      assertNoCredentials(found);
    });
  }

  it('forged error names are not quoted', async () => {
    const key = kms.createKey();
    const forged = ['Bad\u001b[2J\nkms-jwt: forged line', 'X'.repeat(100_000)];
    for (const type of forged) {
      kms.reset();
      kms.faults = { error: { type, status: 500 }, operations: ['GetPublicKey'] };
      const found = await failure(`awskms:${key.arn}`, 'getPublicKey');
      expect(found.error.code).toBe('ERR_AWS_KMS_UNAVAILABLE');
      expect(found.error.message).not.toContain(type.slice(0, 50));
      expect(found.error.message.length).toBeLessThan(1_000);
      expect(found.error.details.awsErrorName).toBe('InvalidErrorName');
      const reasons = found.events.filter((event) => event.type === 'retry');
      expect(reasons).toHaveLength(2);
      for (const event of reasons) expect(event.reason).toBe('InvalidErrorName');
    }
  });

  it('signature mismatch hides the session token', async () => {
    const key = kms.createKey();
    const credentials = fakeSessionCredentials();
    kms.faults = {
      error: { type: 'InvalidSignatureException', message: signatureMismatchMessage(credentials) },
    };
    const found = await failure(`awskms:${key.arn}`, 'getPublicKey', { credentials });
    expect(found.error.code).toBe('ERR_AWS_KMS_CREDENTIALS_INVALID');

    const everything = inspect(found.error, { depth: Infinity, showHidden: true });
    expect(everything).toContain('InvalidSignatureException');
    expect(everything).not.toContain(credentials.sessionToken);
    expect(everything).not.toContain(credentials.accessKeyId);
    expect(everything).not.toContain(credentials.secretAccessKey);
    expect(JSON.stringify(found.events)).not.toContain(credentials.sessionToken);
  });

  it('no credentials raises CREDENTIALS_MISSING', async () => {
    const key = kms.createKey();
    const found = await failure(`awskms:${key.arn}`, 'getPublicKey', { credentials: undefined });
    expect(found.error.code).toBe('ERR_AWS_KMS_CREDENTIALS_MISSING');
    expect(kms.calls.GetPublicKey).toBeUndefined();
  });

  it('response for another key raises RESPONSE_INVALID', async () => {
    const key = kms.createKey();
    const other = kms.createKey();
    kms.faults = { rewrite: (_operation, payload) => ({ ...payload, KeyId: other.arn }) };
    const found = await failure(`awskms:${key.arn}`, 'getPublicKey');
    expect(found.error.code).toBe('ERR_AWS_KMS_RESPONSE_INVALID');
    expect(found.error.message).toContain(other.arn);
  });

  it('malformed KeyId for an alias raises RESPONSE_INVALID', async () => {
    kms.createKey({ alias: 'alias/odd-answer' });
    const forged = 'arn:\u001b[2J\nkms-jwt: forged line';
    kms.faults = { rewrite: (_operation, payload) => ({ ...payload, KeyId: forged }) };
    const found = await failure('awskms:alias/odd-answer', 'getPublicKey');
    expect(found.error.code).toBe('ERR_AWS_KMS_RESPONSE_INVALID');
    expect(found.error.message).toContain('not a key ARN');
    expect(found.error.message).not.toContain(forged);
  });

  it('alias ARN answered from another account raises RESPONSE_INVALID', async () => {
    const key = kms.createKey({ alias: 'alias/same-account' });
    const aliasArn = `arn:aws:kms:${kms.region}:${kms.accountId}:alias/same-account`;
    const foreignArn = `arn:aws:kms:${kms.region}:999999999999:key/${key.keyId}`;
    kms.faults = { rewrite: (_operation, payload) => ({ ...payload, KeyId: foreignArn }) };
    const found = await failure(`awskms:${aliasArn}`, 'getPublicKey');
    expect(found.error.code).toBe('ERR_AWS_KMS_RESPONSE_INVALID');
    expect(found.error.message).toContain(foreignArn);
  });

  it('response without a signature raises RESPONSE_INVALID', async () => {
    const key = kms.createKey();
    kms.faults = {
      rewrite: (_operation, { Signature: _dropped, ...rest }) => rest,
      operations: ['Sign'],
    };
    const found = await failure(`awskms:${key.arn}`);
    expect(found.error.code).toBe('ERR_AWS_KMS_RESPONSE_INVALID');
    expect(found.error.message).toContain('no Signature');
  });

  it('public key of the wrong curve raises RESPONSE_INVALID', async () => {
    const key = kms.createKey();
    const p384 = kms.createKey({ keySpec: 'ECC_NIST_P384' });
    const spki = createPublicKey(p384.privateKey!).export({ type: 'spki', format: 'der' });
    kms.faults = {
      rewrite: (_operation, payload) => ({ ...payload, PublicKey: spki.toString('base64') }),
      operations: ['GetPublicKey'],
    };
    const found = await failure(`awskms:${key.arn}`, 'getPublicKey');
    expect(found.error.code).toBe('ERR_AWS_KMS_RESPONSE_INVALID');
    expect(found.error.message).toContain('its PublicKey is an EC P-384 key, not an EC P-256 key');
  });

  const otherTypes = [
    ['ed25519', 'an Ed25519 key'],
    ['rsa', 'an RSA key'],
  ] as const;

  for (const [type, described] of otherTypes) {
    it(`public key of type ${type} is named`, async () => {
      const key = kms.createKey();
      const other =
        type === 'rsa'
          ? generateKeyPairSync('rsa', { modulusLength: 2048 })
          : generateKeyPairSync('ed25519');
      const spki = other.publicKey.export({ type: 'spki', format: 'der' });
      kms.faults = {
        rewrite: (_operation, payload) => ({ ...payload, PublicKey: spki.toString('base64') }),
        operations: ['GetPublicKey'],
      };
      const found = await failure(`awskms:${key.arn}`, 'getPublicKey');

      expect(found.error.code).toBe('ERR_AWS_KMS_RESPONSE_INVALID');
      expect(found.error.message).toContain(`its PublicKey is ${described}, not an EC P-256 key`);
      expect(found.error.message).not.toContain(' ,');
      expect(found.error.message).not.toContain('  ');
    });
  }
});

describe('AWS KMS deadlines and aborts', () => {
  it('default deadline is 10 seconds', async () => {
    const key = kms.createKey();
    kms.faults = { delayMs: 10_500, operations: ['GetPublicKey'] };
    const found = await failure(`awskms:${key.arn}`, 'getPublicKey');
    expect(found.error.code).toBe('ERR_AWS_KMS_TIMEOUT');
    expect(found.error.message).toContain('10000 ms');
  });

  it('deadline also bounds retry waits', async () => {
    const key = kms.createKey();
    kms.faults = { throttle: 100, operations: ['GetPublicKey'] };
    const found = await failure(`awskms:${key.arn}`, 'getPublicKey', {
      timeoutMs: 200,
      maxAttempts: 10,
      retryBaseDelayMs: 5_000,
    });
    expect(found.error.code).toBe('ERR_AWS_KMS_TIMEOUT');
    expect(kms.calls.GetPublicKey).toBeLessThan(10);
  });

  it('abort during a retry wait raises ABORTED', async () => {
    const key = kms.createKey();
    kms.faults = { throttle: 100, operations: ['GetPublicKey'] };
    const controller = new AbortController();
    const signer = await createAwsKmsSigner(`awskms:${key.arn}`, {
      ...emulatorOptions(kms),
      maxAttempts: 10,
      retryBaseDelayMs: 5_000,
    });
    const pending = signer.getPublicKey({ signal: controller.signal });
    setTimeout(() => controller.abort(new Error('caller gave up')), 100);
    await expect(pending).rejects.toMatchObject({ code: 'ERR_AWS_KMS_ABORTED' });
    await signer.close();
  });

  it('aborted signal raises ABORTED with its reason', async () => {
    const key = kms.createKey();
    const reason = new Error('caller gave up early');
    const events: SignerEvent[] = [];
    const signer = await createAwsKmsSigner(`awskms:${key.arn}`, {
      ...emulatorOptions(kms),
      onEvent: (event) => events.push(event),
    });
    const pending = signer.getPublicKey({ signal: AbortSignal.abort(reason) });
    await expect(pending).rejects.toMatchObject({ code: 'ERR_AWS_KMS_ABORTED', cause: reason });
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'error', code: 'ERR_AWS_KMS_ABORTED' }),
    );
    expect(kms.calls.GetPublicKey).toBeUndefined();
    await signer.close();
  });

  it('abort during a call keeps the reason as cause', async () => {
    const key = kms.createKey();
    kms.faults = { delayMs: 2_000, operations: ['GetPublicKey'] };
    const controller = new AbortController();
    const reason = new Error('caller gave up mid-call');
    const signer = await createAwsKmsSigner(`awskms:${key.arn}`, emulatorOptions(kms));
    const pending = signer.getPublicKey({ signal: controller.signal });
    setTimeout(() => controller.abort(reason), 50);
    await expect(pending).rejects.toMatchObject({ code: 'ERR_AWS_KMS_ABORTED', cause: reason });
    await signer.close();
  });

  it('aborted signal sends nothing', async () => {
    const key = kms.createKey();
    const controller = new AbortController();
    controller.abort();
    const signer = await createAwsKmsSigner(`awskms:${key.arn}`, emulatorOptions(kms));
    await expect(signer.getPublicKey({ signal: controller.signal })).rejects.toThrow();
    expect(kms.calls.GetPublicKey).toBeUndefined();
    await signer.close();
  });
});

describe('AWS KMS retries', () => {
  it('maxAttempts raises the retry bound', async () => {
    const key = kms.createKey();
    kms.faults = { throttle: 4, operations: ['Sign'] };
    const events: SignerEvent[] = [];
    const signer = await createAwsKmsSigner(`awskms:${key.arn}`, {
      ...emulatorOptions(kms),
      maxAttempts: 5,
      onEvent: (event) => events.push(event),
    });
    await signJwt(signer, clientSecretParts());
    await signer.close();
    expect(kms.calls.Sign).toBe(5);
    expect(events.filter((event) => event.type === 'retry')).toHaveLength(4);
    expect(events.at(-1)).toMatchObject({ type: 'retry', attempt: 5, maxAttempts: 5 });
  });

  it('maxAttempts 1 turns retries off', async () => {
    const key = kms.createKey();
    kms.faults = { serverErrors: 1, operations: ['Sign'] };
    const found = await failure(`awskms:${key.arn}`, 'sign', { maxAttempts: 1 });
    expect(found.error.code).toBe('ERR_AWS_KMS_UNAVAILABLE');
    expect(kms.calls.Sign).toBe(1);
    expect(found.events.filter((event) => event.type === 'retry')).toEqual([]);
  });

  it('client errors are not retried', async () => {
    const key = kms.createKey();
    kms.setKeyState(key.arn, 'Disabled');
    await failure(`awskms:${key.arn}`, 'getPublicKey', { maxAttempts: 5 });
    expect(kms.calls.GetPublicKey).toBe(1);
  });

  it('invalid maxAttempts is a TypeError', async () => {
    const key = kms.createKey();
    await expect(
      createAwsKmsSigner(`awskms:${key.arn}`, { ...emulatorOptions(kms), maxAttempts: 0 }),
    ).rejects.toThrow(TypeError);
  });

  const badDurations = [NaN, Infinity, 0, -1, 2 ** 31];

  for (const timeoutMs of badDurations) {
    it(`timeoutMs ${timeoutMs} is a TypeError`, async () => {
      const key = kms.createKey();
      const created = createAwsKmsSigner(`awskms:${key.arn}`, {
        ...emulatorOptions(kms),
        timeoutMs,
      });
      await expect(created).rejects.toThrow(TypeError);
    });
  }

  for (const retryBaseDelayMs of [NaN, Infinity, -1]) {
    it(`retryBaseDelayMs ${retryBaseDelayMs} is a TypeError`, async () => {
      const key = kms.createKey();
      const created = createAwsKmsSigner(`awskms:${key.arn}`, {
        ...emulatorOptions(kms),
        retryBaseDelayMs,
      });
      await expect(created).rejects.toThrow(TypeError);
    });
  }

  it("caller's client keeps its own retry and reports it", async () => {
    const key = kms.createKey();
    const client = emulatorClient(kms);
    kms.faults = { serverErrors: 2, operations: ['Sign'] };
    const events: SignerEvent[] = [];
    const signer = await createAwsKmsSigner(`awskms:${key.arn}`, {
      client,
      maxAttempts: 1,
      onEvent: (event) => events.push(event),
    });
    await signJwt(signer, clientSecretParts());
    await signer.close();
    client.destroy();
    // The SDK's standard strategy makes 3 attempts; the adapter's maxAttempts does not apply.
    expect(kms.calls.Sign).toBe(3);
    expect(events.filter((event) => event.type === 'retry')).toEqual([
      expect.objectContaining({ attempt: 2, reason: 'KMSInternalException', operation: 'Sign' }),
      expect.objectContaining({ attempt: 3, reason: 'KMSInternalException', key: key.arn }),
    ]);
  });
});

describe('AWS KMS region', () => {
  let savedRegion: string | undefined;

  beforeEach(() => {
    savedRegion = process.env.AWS_REGION;
  });

  afterEach(() => {
    if (savedRegion === undefined) delete process.env.AWS_REGION;
    else process.env.AWS_REGION = savedRegion;
  });

  it('bare key ID uses AWS_REGION', async () => {
    const key = kms.createKey();
    process.env.AWS_REGION = kms.region;
    const { region: _unused, ...withoutRegion } = emulatorOptions(kms);
    const signer = await createAwsKmsSigner(`awskms:${key.keyId}`, withoutRegion);
    expect((await signer.sign(Buffer.from('x.y'))).length).toBe(64);
    expect(signer.keyId).toBe(key.arn);
    await signer.close();
  });

  it('ARN region wins over AWS_REGION', async () => {
    const key = kms.createKey();
    process.env.AWS_REGION = 'ap-south-1';
    const { region: _unused, ...withoutRegion } = emulatorOptions(kms);
    const signer = await createAwsKmsSigner(`awskms:${key.arn}`, withoutRegion);
    await signer.getPublicKey();
    await signer.close();
    expect(kms.requests.at(-1)?.signingRegion).toBe(kms.region);
  });
});

/** Returns a port on 127.0.0.1 that nothing listens on. */
async function closedPort(): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
