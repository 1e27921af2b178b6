/**
 * Import of a `.p8` into AWS KMS through the library function, end to end against the emulator.
 * It covers both wrapping algorithms, a new alias or an existing PendingImport key, and the checks
 * on the target. A failure at each step must name the step and the state of the KMS key.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { importSPKI, jwtVerify } from 'jose';
import jsonwebtoken from 'jsonwebtoken';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  adapter,
  createAwsKmsSigner,
  importP8ToAwsKms,
  type ImportP8Options,
} from '../../adapters/aws-kms/index.js';
import { isKmsJwtError, type KmsJwtError } from '../../src/errors.js';
import { signJwt } from '../../src/jws.js';
import { parseKeyReference } from '../../src/key-uri.js';
import type { AwsKmsEmulator, EmulatorFaults } from '../emulators/aws-kms/index.js';
import { wrapKeyMaterial } from '../../adapters/aws-kms/wrap.js';
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

function newP8(): { privateKey: KeyObject; pem: string } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

/**
 * Builds the 150-byte PKCS#8 layout of Apple's `.p8` files, whose inner ECPrivateKey also names
 * the curve, from a key that Node would export in the 138-byte layout.
 */
function appleStyleP8(privateKey: KeyObject): string {
  const sec1 = privateKey.export({ type: 'sec1', format: 'der' });
  const algorithm = Buffer.from('301306072a8648ce3d020106082a8648ce3d030107', 'hex');
  const octets = Buffer.concat([Buffer.from([0x04, sec1.length]), sec1]);
  const body = Buffer.concat([Buffer.from('020100', 'hex'), algorithm, octets]);
  const der = Buffer.concat([Buffer.from([0x30, 0x81, body.length]), body]);
  const lines = der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n');
  return `-----BEGIN PRIVATE KEY-----\n${lines}\n-----END PRIVATE KEY-----\n`;
}

async function importFailure(
  privateKey: KeyObject | string,
  target: string,
  options: ImportP8Options = {},
): Promise<KmsJwtError> {
  try {
    await importP8ToAwsKms(privateKey, target, { ...emulatorOptions(kms), ...options });
  } catch (error) {
    if (isKmsJwtError(error)) return error;
    throw error;
  }
  throw new Error(`Import into ${target} succeeded, but a coded error was expected.`);
}

async function assertSignsFor(reference: string, publicKey: KeyObject): Promise<void> {
  const signer = await createAwsKmsSigner(reference, emulatorOptions(kms));
  const token = await signJwt(signer, clientSecretParts());
  await signer.close();
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const { payload } = await jwtVerify(token, await importSPKI(pem, 'ES256'), {
    currentDate: frozenNow,
  });
  expect(payload.iss).toBe('TEAMAAAA11');
  const decoded = jsonwebtoken.verify(token, pem, {
    clockTimestamp: frozenNow.getTime() / 1000,
  }) as Record<string, unknown>;
  expect(decoded.sub).toBe('com.example.web');
}

function operations(): string[] {
  return kms.requests.map((request) => request.operation);
}

function bodyOf(operation: string): Record<string, unknown> {
  return kms.requests.find((request) => request.operation === operation)!.body;
}

describe('AWS KMS import', () => {
  it('imports into a new alias by default wrapping', async () => {
    const p8 = newP8();
    const result = await importP8ToAwsKms(p8.pem, 'awskms:alias/imported-default', {
      ...emulatorOptions(kms),
    });

    expect(operations()).toEqual([
      'DescribeKey',
      'CreateKey',
      'GetParametersForImport',
      'ImportKeyMaterial',
      'CreateAlias',
      'GetPublicKey',
      'Sign',
    ]);
    expect(bodyOf('CreateKey')).toMatchObject({
      KeySpec: 'ECC_NIST_P256',
      KeyUsage: 'SIGN_VERIFY',
      Origin: 'EXTERNAL',
    });
    expect(bodyOf('GetParametersForImport')).toMatchObject({
      WrappingAlgorithm: 'RSA_AES_KEY_WRAP_SHA_256',
      WrappingKeySpec: 'RSA_4096',
    });
    expect(bodyOf('ImportKeyMaterial').ExpirationModel).toBe('KEY_MATERIAL_DOES_NOT_EXPIRE');
    const wrapped = Buffer.from(String(bodyOf('ImportKeyMaterial').EncryptedKeyMaterial), 'base64');
    // RSA-4096 OAEP of the AES key, then RFC 5649 output: 138 bytes padded to 144, plus 8.
    expect(wrapped.length).toBe(512 + 152);

    const key = kms.findKey('alias/imported-default')!;
    expect(result.keyArn).toBe(key.arn);
    expect(result.alias).toBe('alias/imported-default');
    expect(result.reference).toBe(`awskms:${key.arn}`);
    expect(key.state).toBe('Enabled');
    expect(key.origin).toBe('EXTERNAL');
    const expected = createPublicKey(p8.privateKey).export({ format: 'jwk' });
    expect(result.publicKey.export({ format: 'jwk' })).toEqual(expected);
    expect(createPublicKey(key.privateKey!).export({ format: 'jwk' })).toEqual(expected);
    await assertSignsFor('awskms:alias/imported-default', createPublicKey(p8.privateKey));
  });

  const oaepSizes = ['RSA_2048', 'RSA_3072', 'RSA_4096'] as const;

  for (const wrappingKeySpec of oaepSizes) {
    it(`imports with RSAES_OAEP_SHA_256 and ${wrappingKeySpec}`, async () => {
      const p8 = newP8();
      const alias = `alias/imported-oaep-${wrappingKeySpec}`;
      const result = await importP8ToAwsKms(p8.privateKey, `awskms:${alias}`, {
        ...emulatorOptions(kms),
        wrappingAlgorithm: 'RSAES_OAEP_SHA_256',
        wrappingKeySpec,
      });
      expect(bodyOf('GetParametersForImport')).toMatchObject({
        WrappingAlgorithm: 'RSAES_OAEP_SHA_256',
        WrappingKeySpec: wrappingKeySpec,
      });
      const bits = Number(wrappingKeySpec.slice(4));
      const wrapped = Buffer.from(
        String(bodyOf('ImportKeyMaterial').EncryptedKeyMaterial),
        'base64',
      );
      expect(wrapped.length).toBe(bits / 8);
      expect(result.details.wrappingAlgorithm).toBe('RSAES_OAEP_SHA_256');
      await assertSignsFor(`awskms:${alias}`, createPublicKey(p8.privateKey));
    });
  }

  it('imports an Apple-style .p8 with the curve inside', async () => {
    const p8 = newP8();
    const appleText = appleStyleP8(p8.privateKey);
    expect(appleText.split('\n')[1]!.startsWith('MIGTAgEAMBMG')).toBe(true);
    const result = await importP8ToAwsKms(appleText, 'awskms:alias/imported-apple', {
      ...emulatorOptions(kms),
    });
    const expected = createPublicKey(createPrivateKey(appleText)).export({ format: 'jwk' });
    expect(result.publicKey.export({ format: 'jwk' })).toEqual(expected);
  });

  it('imports into a PendingImport key with an alias', async () => {
    const p8 = newP8();
    const key = kms.createKey({ origin: 'EXTERNAL' });
    const result = await importP8ToAwsKms(p8.privateKey, `awskms:${key.arn}`, {
      ...emulatorOptions(kms),
      alias: 'for-existing',
    });
    expect(operations()).not.toContain('CreateKey');
    expect(result.keyArn).toBe(key.arn);
    expect(result.alias).toBe('alias/for-existing');
    expect(result.details.createdKey).toBe('no');
    expect(kms.findKey('alias/for-existing')?.arn).toBe(key.arn);
    await assertSignsFor('awskms:alias/for-existing', createPublicKey(p8.privateKey));
  });

  it('imports into a PendingImport key behind an alias', async () => {
    const p8 = newP8();
    const key = kms.createKey({ origin: 'EXTERNAL', alias: 'alias/waiting' });
    const result = await importP8ToAwsKms(p8.privateKey, 'awskms:alias/waiting', {
      ...emulatorOptions(kms),
    });
    expect(operations()).not.toContain('CreateAlias');
    expect(result.keyArn).toBe(key.arn);
    expect(key.state).toBe('Enabled');
  });

  it('adapter importKey works for the CLI path', async () => {
    const p8 = newP8();
    const result = await adapter.importKey!({
      privateKey: p8.privateKey,
      target: parseKeyReference('awskms:alias/through-adapter'),
      options: { ...emulatorOptions(kms), wrappingAlgorithm: 'RSAES_OAEP_SHA_256' },
    });
    expect(result.details.alias).toBe('alias/through-adapter');
    expect(result.details.wrappingAlgorithm).toBe('RSAES_OAEP_SHA_256');
  });
});

describe('AWS KMS import target checks', () => {
  it('enabled key is rejected at step 1', async () => {
    const key = kms.createKey();
    const error = await importFailure(newP8().privateKey, `awskms:${key.arn}`);
    expect(error.code).toBe('ERR_AWS_KMS_IMPORT_TARGET');
    expect(error.message).toContain('Origin AWS_KMS');
    expect(error.message).toContain('KeyState Enabled');
    expect(error.message).toContain('No KMS key was changed');
    expect(operations()).toEqual(['DescribeKey']);
  });

  it('wrong key spec is rejected at step 1', async () => {
    const key = kms.createKey({ keySpec: 'ECC_NIST_P384', origin: 'EXTERNAL' });
    const error = await importFailure(newP8().privateKey, `awskms:${key.arn}`);
    expect(error.code).toBe('ERR_AWS_KMS_IMPORT_TARGET');
    expect(error.message).toContain('KeySpec ECC_NIST_P384');
  });

  it('missing key is rejected at step 1', async () => {
    const missing = `arn:aws:kms:${kms.region}:${kms.accountId}:key/${crypto.randomUUID()}`;
    const error = await importFailure(newP8().privateKey, `awskms:${missing}`);
    expect(error.code).toBe('ERR_AWS_KMS_IMPORT_TARGET');
    expect(error.message).toContain('does not exist');
  });

  it('taken alias for an existing key is rejected', async () => {
    const other = kms.createKey({ alias: 'alias/taken-already' });
    const key = kms.createKey({ origin: 'EXTERNAL' });
    const error = await importFailure(newP8().privateKey, `awskms:${key.arn}`, {
      alias: 'alias/taken-already',
    });
    expect(error.code).toBe('ERR_AWS_KMS_IMPORT_TARGET');
    expect(error.message).toContain(other.arn);
    expect(key.state).toBe('PendingImport');
  });

  it('invalid alias setting is rejected', async () => {
    const key = kms.createKey({ origin: 'EXTERNAL' });
    const error = await importFailure(newP8().privateKey, `awskms:${key.arn}`, {
      alias: 'aws/reserved',
    });
    expect(error.code).toBe('ERR_AWS_KMS_IMPORT_TARGET');
    expect(error.message).toContain('invalid');
  });

  it('two different aliases are rejected', async () => {
    const error = await importFailure(newP8().privateKey, 'awskms:alias/first', {
      alias: 'alias/second',
    });
    expect(error.code).toBe('ERR_AWS_KMS_IMPORT_TARGET');
    expect(kms.calls.CreateKey).toBeUndefined();
  });

  it('alias ARN of another account sends no material', async () => {
    const aliasArn = `arn:aws:kms:${kms.region}:999999999999:alias/other-account`;
    const error = await importFailure(newP8().privateKey, `awskms:${aliasArn}`);
    expect(error.code).toBe('ERR_AWS_KMS_IMPORT_FAILED');
    expect(error.details.stepNumber).toBe(1);
    expect(error.details.keyState).toBe('PendingImport');
    expect(error.message).toContain('999999999999');
    expect(error.message).toContain(kms.accountId);
    expect(error.message).toContain('schedule its deletion');
    expect(kms.calls.GetParametersForImport).toBeUndefined();
    expect(kms.calls.ImportKeyMaterial).toBeUndefined();
    expect(kms.calls.CreateAlias).toBeUndefined();
  });

  it('overwrite is rejected by the adapter', async () => {
    await expect(
      adapter.importKey!({
        privateKey: newP8().privateKey,
        target: parseKeyReference('awskms:alias/no-overwrite'),
        overwrite: true,
        options: emulatorOptions(kms),
      }),
    ).rejects.toMatchObject({ code: 'ERR_AWS_KMS_IMPORT_TARGET' });
    expect(kms.requests).toEqual([]);
  });

  it('P-384 private key is ERR_KEY_NOT_P256', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const error = await importFailure(privateKey, 'awskms:alias/p384');
    expect(error.code).toBe('ERR_KEY_NOT_P256');
    expect(kms.requests).toEqual([]);
  });

  it('non-PEM text is ERR_KEY_INVALID', async () => {
    const error = await importFailure('not a key', 'awskms:alias/garbage');
    expect(error.code).toBe('ERR_KEY_INVALID');
  });
});

describe('AWS KMS import step failures', () => {
  const cases: {
    name: string;
    faults: EmulatorFaults;
    step: string;
    stepNumber: number;
    keyState: string;
    advice: string;
  }[] = [
    {
      name: 'CreateKey denied',
      faults: { accessDenied: ['CreateKey'] },
      step: 'CreateKey',
      stepNumber: 1,
      keyState: 'none',
      advice: 'No KMS key was created',
    },
    {
      name: 'GetParametersForImport denied',
      faults: { accessDenied: ['GetParametersForImport'] },
      step: 'GetParametersForImport',
      stepNumber: 2,
      keyState: 'PendingImport',
      advice: 'run the import again with --to awskms:arn:',
    },
    {
      name: 'wrong wrapping key size',
      faults: { wrappingKey: 'wrong-size' },
      step: 'wrap key material',
      stepNumber: 3,
      keyState: 'PendingImport',
      advice: 'run the import again',
    },
    {
      name: 'ImportKeyMaterial unavailable',
      faults: { serverErrors: 100, operations: ['ImportKeyMaterial'] },
      step: 'ImportKeyMaterial',
      stepNumber: 4,
      keyState: 'PendingImport',
      advice: 'run the import again',
    },
    {
      name: 'CreateAlias denied',
      faults: { accessDenied: ['CreateAlias'] },
      step: 'CreateAlias',
      stepNumber: 5,
      keyState: 'Enabled',
      advice: 'aws kms create-alias',
    },
    {
      name: 'foreign public key',
      faults: { publicKey: 'other-key' },
      step: 'verify public key',
      stepNumber: 6,
      keyState: 'Enabled',
      advice: 'Do not use this key',
    },
    {
      name: 'double-hashed test signature',
      faults: { signature: 'double-hash' },
      step: 'verify test signature',
      stepNumber: 6,
      keyState: 'Enabled',
      advice: 'Do not use this key',
    },
  ];

  for (const entry of cases) {
    it(`${entry.name} fails at step ${entry.stepNumber}`, async () => {
      kms.faults = entry.faults;
      const alias = `alias/step-${entry.stepNumber}-${entry.step.replace(/\W/g, '')}`;
      const error = await importFailure(newP8().privateKey, `awskms:${alias}`);
      kms.faults = {};

      expect(error.code).toBe('ERR_AWS_KMS_IMPORT_FAILED');
      expect(error.details.step).toBe(entry.step);
      expect(error.details.stepNumber).toBe(entry.stepNumber);
      expect(error.details.keyState).toBe(entry.keyState);
      expect(error.message).toContain(`step ${entry.stepNumber} (${entry.step})`);
      expect(error.message).toContain(entry.advice);
      // The reason ends its sentence before the state of the key is reported.
      expect(error.message).toMatch(/\. (The KMS key|No KMS key)/);
      if (entry.keyState !== 'none') {
        expect(error.message).toContain(`left in state ${entry.keyState}`);
        expect(error.details.keyArn).toMatch(/^arn:aws:kms:/);
        expect(kms.findKey(String(error.details.keyArn))?.state).toBe(entry.keyState);
      }
    });
  }

  it('abort still reports the key state', async () => {
    kms.faults = { delayMs: 2_000, operations: ['GetParametersForImport'] };
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('import cancelled')), 100);
    const error = await importFailure(newP8().privateKey, 'awskms:alias/aborted-import', {
      signal: controller.signal,
    });
    kms.faults = {};

    expect(error.code).toBe('ERR_AWS_KMS_IMPORT_FAILED');
    expect(error.details.causeCode).toBe('ERR_AWS_KMS_ABORTED');
    expect(error.details.stepNumber).toBe(2);
    expect(error.details.keyState).toBe('PendingImport');
    expect(kms.findKey(String(error.details.keyArn))?.state).toBe('PendingImport');
    expect(error.message).toContain('left in state PendingImport');
  });

  it('names the cause code of a KMS failure', async () => {
    kms.faults = { accessDenied: ['ImportKeyMaterial'] };
    const error = await importFailure(newP8().privateKey, 'awskms:alias/cause-code');
    expect(error.details.causeCode).toBe('ERR_AWS_KMS_ACCESS_DENIED');
    expect(error.message).toContain('kms:ImportKeyMaterial');
  });

  it('retry into the PendingImport key succeeds', async () => {
    const p8 = newP8();
    kms.faults = { accessDenied: ['ImportKeyMaterial'] };
    const error = await importFailure(p8.privateKey, 'awskms:alias/second-try');
    kms.faults = {};
    const keyArn = String(error.details.keyArn);

    const result = await importP8ToAwsKms(p8.privateKey, `awskms:${keyArn}`, {
      ...emulatorOptions(kms),
      alias: 'alias/second-try',
    });
    expect(result.keyArn).toBe(keyArn);
    await assertSignsFor('awskms:alias/second-try', createPublicKey(p8.privateKey));
  });
});

describe('AWS KMS import source', () => {
  it('adapter source touches no file system', () => {
    const folder = join('adapters', 'aws-kms');
    for (const file of readdirSync(folder)) {
      const text = readFileSync(join(folder, file), 'utf8');
      expect(text, file).not.toMatch(/from ['"](node:)?fs(\/promises)?['"]/);
      expect(text, file).not.toMatch(/import\(['"](node:)?fs/);
    }
  });
});

describe('AWS KMS wrapping key checks', () => {
  const wrongKeys = [
    [
      'RSA-2048',
      generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey,
      'an RSA key of 2048 bits',
    ],
    ['P-256', generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey, 'an EC P-256 key'],
    ['Ed25519', generateKeyPairSync('ed25519').publicKey, 'an Ed25519 key'],
  ] as const;

  for (const [name, wrappingKey, described] of wrongKeys) {
    it(`names an unusable ${name} wrapping key`, () => {
      const spki = wrappingKey.export({ type: 'spki', format: 'der' });
      let message = '';
      try {
        wrapKeyMaterial(newP8().privateKey, spki, 'RSA_AES_KEY_WRAP_SHA_256', 'RSA_4096');
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toBe(`the wrapping public key is ${described}, not RSA_4096.`);
    });
  }
});
