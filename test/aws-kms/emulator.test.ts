/**
 * The AWS KMS emulator on its own: wire format, error shapes, key states, signing semantics and
 * a clean start and stop. Most checks go through the real SDK client; the error shape is also
 * checked on the raw HTTP response.
 */
import { createHash, createPublicKey, verify } from 'node:crypto';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { pathToFileURL } from 'node:url';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DescribeKeyCommand,
  GetPublicKeyCommand,
  SignCommand,
  type KMSClient,
} from '@aws-sdk/client-kms';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { bundleAwsKmsEmulator } from '../emulators/aws-kms/bundle.mjs';
import { AwsKmsEmulator } from '../emulators/aws-kms/index.js';
import { emulatorClient, startEmulator } from './support.js';

let kms: AwsKmsEmulator;
let client: KMSClient;

beforeAll(async () => {
  kms = await startEmulator();
  client = emulatorClient(kms, { maxAttempts: 1 });
});

afterAll(async () => {
  client.destroy();
  await kms.stop();
});

beforeEach(() => {
  kms.reset();
});

function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

function isValid(key: { privateKey?: unknown }, message: Uint8Array, der: Uint8Array): boolean {
  const publicKey = createPublicKey(key.privateKey as never);
  return verify('sha256', message, publicKey, der);
}

async function rejection(promise: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await promise;
  } catch (error) {
    return error as Record<string, unknown>;
  }
  throw new Error('The call succeeded, but an error was expected.');
}

interface RawResponse {
  status: number | undefined;
  headers: Record<string, unknown>;
  body: Record<string, unknown>;
}

function post(headers: Record<string, string>, body: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const outgoing = request(
      `${kms.endpoint}/`,
      { method: 'POST', headers, agent: false },
      (response) => {
        let text = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode,
            headers: response.headers,
            body: JSON.parse(text),
          }),
        );
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

describe('AWS KMS emulator signing', () => {
  it('DIGEST signs the digest as given', async () => {
    const key = kms.createKey();
    const message = Buffer.from('eyJhbGciOiJFUzI1NiJ9.e30');
    const output = await client.send(
      new SignCommand({
        KeyId: key.arn,
        Message: sha256(message),
        MessageType: 'DIGEST',
        SigningAlgorithm: 'ECDSA_SHA_256',
      }),
    );
    expect(output.KeyId).toBe(key.arn);
    expect(output.SigningAlgorithm).toBe('ECDSA_SHA_256');
    expect(output.Signature![0]).toBe(0x30);
    expect(isValid(key, message, output.Signature!)).toBe(true);
  });

  it('RAW hashes the message once', async () => {
    const key = kms.createKey();
    const message = Buffer.from('header.payload');
    const output = await client.send(
      new SignCommand({ KeyId: key.arn, Message: message, SigningAlgorithm: 'ECDSA_SHA_256' }),
    );
    expect(isValid(key, message, output.Signature!)).toBe(true);
  });

  it('double-hash switch breaks DIGEST only', async () => {
    const key = kms.createKey();
    const message = Buffer.from('header.payload');
    kms.faults = { signature: 'double-hash' };
    const digest = await client.send(
      new SignCommand({
        KeyId: key.arn,
        Message: sha256(message),
        MessageType: 'DIGEST',
        SigningAlgorithm: 'ECDSA_SHA_256',
      }),
    );
    const raw = await client.send(
      new SignCommand({ KeyId: key.arn, Message: message, SigningAlgorithm: 'ECDSA_SHA_256' }),
    );
    expect(isValid(key, message, digest.Signature!)).toBe(false);
    expect(isValid(key, sha256(message), digest.Signature!)).toBe(true);
    expect(isValid(key, message, raw.Signature!)).toBe(true);
  });

  it('signatures differ on every call', async () => {
    const key = kms.createKey();
    const command = () =>
      new SignCommand({
        KeyId: key.arn,
        Message: sha256(Buffer.from('same input')),
        MessageType: 'DIGEST',
        SigningAlgorithm: 'ECDSA_SHA_256',
      });
    const first = await client.send(command());
    const second = await client.send(command());
    expect(Buffer.from(first.Signature!).equals(Buffer.from(second.Signature!))).toBe(false);
  });

  it('DIGEST of 31 bytes is a ValidationException', async () => {
    const key = kms.createKey();
    const error = await rejection(
      client.send(
        new SignCommand({
          KeyId: key.arn,
          Message: Buffer.alloc(31),
          MessageType: 'DIGEST',
          SigningAlgorithm: 'ECDSA_SHA_256',
        }),
      ),
    );
    expect(error.name).toBe('ValidationException');
  });

  it('RAW over 4096 bytes is a ValidationException', async () => {
    const key = kms.createKey();
    const error = await rejection(
      client.send(
        new SignCommand({
          KeyId: key.arn,
          Message: Buffer.alloc(4097),
          SigningAlgorithm: 'ECDSA_SHA_256',
        }),
      ),
    );
    expect(error.name).toBe('ValidationException');
  });

  it('wrong algorithm is InvalidKeyUsageException', async () => {
    const key = kms.createKey({ keySpec: 'ECC_NIST_P384' });
    const error = await rejection(
      client.send(
        new SignCommand({
          KeyId: key.arn,
          Message: Buffer.alloc(32),
          MessageType: 'DIGEST',
          SigningAlgorithm: 'ECDSA_SHA_256',
        }),
      ),
    );
    expect(error.name).toBe('InvalidKeyUsageException');
  });
});

describe('AWS KMS emulator keys', () => {
  it('answers by alias with the key ARN', async () => {
    const key = kms.createKey({ alias: 'alias/by-alias' });
    const aliasArn = `arn:aws:kms:${kms.region}:${kms.accountId}:alias/by-alias`;
    for (const keyId of ['alias/by-alias', aliasArn, key.keyId, key.arn]) {
      const output = await client.send(new GetPublicKeyCommand({ KeyId: keyId }));
      expect(output.KeyId).toBe(key.arn);
      expect(output.KeySpec).toBe('ECC_NIST_P256');
      expect(output.KeyUsage).toBe('SIGN_VERIFY');
      expect(output.SigningAlgorithms).toEqual(['ECDSA_SHA_256']);
      expect(output.PublicKey!.length).toBe(91);
    }
  });

  it('CreateKey EXTERNAL waits in PendingImport', async () => {
    const created = await client.send(
      new CreateKeyCommand({
        KeySpec: 'ECC_NIST_P256',
        KeyUsage: 'SIGN_VERIFY',
        Origin: 'EXTERNAL',
      }),
    );
    const metadata = created.KeyMetadata!;
    expect(metadata.KeyState).toBe('PendingImport');
    expect(metadata.Enabled).toBe(false);
    expect(metadata.Origin).toBe('EXTERNAL');
    expect(metadata.CreationDate).toBeInstanceOf(Date);

    const error = await rejection(
      client.send(
        new SignCommand({
          KeyId: metadata.Arn,
          Message: Buffer.alloc(32),
          MessageType: 'DIGEST',
          SigningAlgorithm: 'ECDSA_SHA_256',
        }),
      ),
    );
    expect(error.name).toBe('KMSInvalidStateException');
    expect(String(error.message)).toContain('pending import');
  });

  it('DescribeKey reports the key state', async () => {
    const key = kms.createKey();
    kms.setKeyState(key.arn, 'PendingDeletion');
    const output = await client.send(new DescribeKeyCommand({ KeyId: key.keyId }));
    expect(output.KeyMetadata).toMatchObject({
      Arn: key.arn,
      KeyState: 'PendingDeletion',
      Enabled: false,
      KeyManager: 'CUSTOMER',
    });
  });

  it('disabled key is a DisabledException', async () => {
    const key = kms.createKey();
    kms.setKeyState(key.arn, 'Disabled');
    const error = await rejection(client.send(new GetPublicKeyCommand({ KeyId: key.arn })));
    expect(error.name).toBe('DisabledException');
    expect(error.$fault).toBe('client');
  });

  it('duplicate alias is AlreadyExistsException', async () => {
    const key = kms.createKey({ alias: 'alias/taken' });
    const error = await rejection(
      client.send(new CreateAliasCommand({ AliasName: 'alias/taken', TargetKeyId: key.keyId })),
    );
    expect(error.name).toBe('AlreadyExistsException');
  });

  it('ARN of another region is NotFoundException', async () => {
    const key = kms.createKey();
    const elsewhere = key.arn.replace(`:${kms.region}:`, ':eu-central-1:');
    const error = await rejection(client.send(new GetPublicKeyCommand({ KeyId: elsewhere })));
    expect(error.name).toBe('NotFoundException');
  });
});

describe('AWS KMS emulator wire format', () => {
  const signedHeaders = {
    'content-type': 'application/x-amz-json-1.1',
    authorization: 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/kms/aws4_request',
  };

  it('error body has __type and message', async () => {
    const response = await post(
      { ...signedHeaders, 'x-amz-target': 'TrentService.GetPublicKey' },
      JSON.stringify({ KeyId: 'alias/none' }),
    );
    expect(response.status).toBe(400);
    expect(response.headers['content-type']).toBe('application/x-amz-json-1.1');
    expect(response.headers['x-amzn-requestid']).toMatch(/^[0-9a-f-]{36}$/);
    expect(response.headers.date).toBeDefined();
    expect(response.body.__type).toBe('NotFoundException');
    expect(String(response.body.message)).toContain('alias/none');
  });

  it('server error switch answers HTTP 500', async () => {
    kms.faults = { serverErrors: 1 };
    const response = await post(
      { ...signedHeaders, 'x-amz-target': 'TrentService.DescribeKey' },
      JSON.stringify({ KeyId: 'alias/none' }),
    );
    expect(response.status).toBe(500);
    expect(response.body.__type).toBe('KMSInternalException');
  });

  it('internal error returns HTTP 500', async () => {
    kms.faults = {
      rewrite: () => {
        throw new Error('broken rewrite hook');
      },
    };
    const response = await post(
      { ...signedHeaders, 'x-amz-target': 'TrentService.CreateKey' },
      JSON.stringify({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' }),
    );
    expect(response.status).toBe(500);
    expect(response.body.__type).toBe('KMSInternalException');
    expect(kms.internalErrors).toEqual([new Error('broken rewrite hook')]);
  });

  it('missing SigV4 header is rejected', async () => {
    const response = await post(
      { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'TrentService.Sign' },
      '{}',
    );
    expect(response.status).toBe(400);
    expect(response.body.__type).toBe('MissingAuthenticationTokenException');
  });

  it('unknown operation is rejected', async () => {
    const response = await post(
      { ...signedHeaders, 'x-amz-target': 'TrentService.ReEncrypt' },
      '{}',
    );
    expect(response.body.__type).toBe('UnknownOperationException');
  });

  it('non-JSON body is a SerializationException', async () => {
    const response = await post(
      { ...signedHeaders, 'x-amz-target': 'TrentService.Sign' },
      'not json',
    );
    expect(response.body.__type).toBe('SerializationException');
  });
});

describe('AWS KMS emulator lifecycle', () => {
  it('stop leaves no open handles', async () => {
    const before = tcpHandles();
    const emulator = new AwsKmsEmulator();
    await emulator.start();
    const key = emulator.createKey();
    const ownClient = emulatorClient(emulator);
    await ownClient.send(new GetPublicKeyCommand({ KeyId: key.arn }));
    ownClient.destroy();
    await emulator.stop();

    // The client's socket closes on a later turn of the event loop; wait up to 2 s for it.
    for (let i = 0; i < 200 && tcpHandles().length > before.length; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // Sockets of the shared client may close meanwhile, so the count can only drop.
    const after = tcpHandles();
    const servers = (list: string[]) => list.filter((name) => name === 'TCPServerWrap').length;
    expect(after.length).toBeLessThanOrEqual(before.length);
    expect(servers(after)).toBe(servers(before));
  });

  it('child process exits after stop', async () => {
    const bundle = await bundleAwsKmsEmulator();
    const script = `
      import { KMSClient, GetPublicKeyCommand } from '@aws-sdk/client-kms';
      const { AwsKmsEmulator } = await import(${JSON.stringify(pathToFileURL(bundle).href)});
      const emulator = new AwsKmsEmulator();
      await emulator.start();
      const key = emulator.createKey();
      const client = new KMSClient({
        endpoint: emulator.endpoint,
        region: emulator.region,
        credentials: { accessKeyId: 'AKIDCHILD', secretAccessKey: 'child-secret' },
        maxAttempts: 1,
      });
      await client.send(new GetPublicKeyCommand({ KeyId: key.arn }));
      emulator.faults = { delayMs: 60000 };
      const heldRequest = client.send(new GetPublicKeyCommand({ KeyId: key.arn })).catch(() => 'dropped');
      while (emulator.calls.GetPublicKey !== 2) await new Promise((r) => setTimeout(r, 5));
      await emulator.stop();
      console.log(await heldRequest);
      client.destroy();
    `;
    const run = await runNode(script, 20_000);
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe('dropped');
    expect(run.code).toBe(0);
  });

  it('stop drops a held response', async () => {
    const emulator = new AwsKmsEmulator();
    await emulator.start();
    const key = emulator.createKey();
    const ownClient = emulatorClient(emulator, { maxAttempts: 1 });
    emulator.faults = { delayMs: 60_000 };
    const pending = rejection(ownClient.send(new GetPublicKeyCommand({ KeyId: key.arn })));
    while (emulator.calls.GetPublicKey === undefined) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }

    await emulator.stop();
    const error = await pending;
    ownClient.destroy();
    // The held response would take 60 s, longer than the test timeout, so this also shows that
    // stop did not wait for it.
    expect(error.code).toBe('ECONNRESET');
  });

  it('start and stop twice are harmless', async () => {
    const emulator = new AwsKmsEmulator();
    await emulator.start();
    const endpoint = emulator.endpoint;
    await emulator.start();
    expect(emulator.endpoint).toBe(endpoint);
    await emulator.stop();
    await emulator.stop();
    expect(() => emulator.endpoint).toThrow('not started');
  });
});

function tcpHandles(): string[] {
  return process
    .getActiveResourcesInfo()
    .filter((name) => name.startsWith('TCP'))
    .sort();
}

/** Runs an ES module script in a fresh Node process and kills it after `limitMs`. */
function runNode(
  script: string,
  limitMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = {
    PATH: process.env.PATH ?? '',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    AWS_CONFIG_FILE: '/nonexistent/aws-config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
  };
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
