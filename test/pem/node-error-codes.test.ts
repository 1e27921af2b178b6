/**
 * Two codes that Node.js raises inside the pem adapter and that must never reach a caller as
 * they are: node:fs's ERR_INVALID_ARG_VALUE for a path with a NUL character, and node:crypto's
 * ERR_MISSING_PASSPHRASE for an encrypted PKCS#8 key opened without a passphrase. Each test
 * first shows that Node still raises its code for that input, so that a change in Node cannot
 * leave the mapping untested.
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createPemSigner, loadPrivateKey } from '../../adapters/pem/index.js';
import { errorText, expectNoKeyText, rejectionOf } from './support.js';

const passphrase = 'throwaway test passphrase 7';
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const plainPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const encryption = { cipher: 'aes-256-cbc', passphrase } as const;
const encryptedPem = privateKey.export({ type: 'pkcs8', format: 'pem', ...encryption }).toString();
const encryptedDer = privateKey.export({ type: 'pkcs8', format: 'der', ...encryption });
const folder = mkdtempSync(join(tmpdir(), 'kms-jwt-node-codes-'));

afterAll(() => rmSync(folder, { recursive: true, force: true }));

/** Lists the `code` of the error and of every cause below it. */
function codesInChain(error: unknown): unknown[] {
  const codes: unknown[] = [];
  for (let current = error; current instanceof Error; current = current.cause) {
    codes.push((current as { code?: unknown }).code);
  }
  return codes;
}

function nodeCodeOf(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return (error as { code?: unknown }).code;
  }
  return undefined;
}

describe('node:fs ERR_INVALID_ARG_VALUE', () => {
  it('node:fs raises it for a NUL path', () => {
    expect(nodeCodeOf(() => readFileSync(join(folder, 'AuthKey\0.p8')))).toBe(
      'ERR_INVALID_ARG_VALUE',
    );
  });

  it('becomes ERR_KEY_FILE_UNREADABLE', async () => {
    const path = join(folder, 'AuthKey\0.p8');
    const error = (await rejectionOf(createPemSigner({ path }))) as Error & {
      code?: string;
      details?: Record<string, unknown>;
    };

    expect(error.code).toBe('ERR_KEY_FILE_UNREADABLE');
    expect(codesInChain(error)).not.toContain('ERR_INVALID_ARG_VALUE');
    expect(error.cause).toBeUndefined();
    expect(error.details!.osCode).toBe('ERR_INVALID_ARG_VALUE');
    expect(error.details!.path).toBe(path);
    expect(error.message).toContain(`Key file ${join(folder, 'AuthKey\\u0000.p8')}:`);
    expect(error.message).toContain('the path contains a NUL character');
    expect(error.message).toContain('Check where the path came from.');
    expect(error.message).not.toContain('\0');
  });

  it('hides key text given as a NUL path', async () => {
    const error = (await rejectionOf(createPemSigner({ path: `${plainPem}\0` }))) as Error & {
      code?: string;
      details?: Record<string, unknown>;
    };

    expect(error.code).toBe('ERR_KEY_FILE_UNREADABLE');
    expect(codesInChain(error)).not.toContain('ERR_INVALID_ARG_VALUE');
    expect(error.details).toMatchObject({ osCode: 'ERR_INVALID_ARG_VALUE' });
    expect(error.details!.path).toBeUndefined();
    expect(error.message).toContain('Pass key text with env:NAME or the pem option');
    expectNoKeyText(error, plainPem);
  });
});

describe('node:crypto ERR_MISSING_PASSPHRASE', () => {
  it('node:crypto raises it without a passphrase', () => {
    const open = () => createPrivateKey({ key: encryptedDer, format: 'der', type: 'pkcs8' });
    expect(nodeCodeOf(open)).toBe('ERR_MISSING_PASSPHRASE');
  });

  const inputs = [
    { name: 'PEM text', source: () => ({ pem: encryptedPem }), where: 'Inline PEM: the ENCRYPTED' },
    {
      name: 'bare base64 DER',
      source: () => ({ pem: encryptedDer.toString('base64') }),
      where: 'Inline PEM: the key is encrypted',
    },
    {
      name: 'a key file',
      source: () => {
        const path = join(folder, 'AuthKey_ENCRYPTED.p8');
        writeFileSync(path, encryptedPem, { mode: 0o600 });
        return { path };
      },
      where: `Key file ${join(folder, 'AuthKey_ENCRYPTED.p8')}: the ENCRYPTED`,
    },
  ];

  for (const { name, source, where } of inputs) {
    it(`becomes ERR_KEY_ENCRYPTED for ${name}`, async () => {
      const error = await rejectionOf(loadPrivateKey(source()));

      expect(error.code).toBe('ERR_KEY_ENCRYPTED');
      expect(codesInChain(error)).not.toContain('ERR_MISSING_PASSPHRASE');
      expect(error.message).toContain(where);
      expect(error.message).toContain('no passphrase was given');
      expect(error.message).toContain('Set the passphrase option');
      expect(error.message).toContain('--passphrase-env NAME');
      expectNoKeyText(error, encryptedPem);
    });

    it(`opens ${name} with the passphrase`, async () => {
      const loaded = await loadPrivateKey(source(), { passphrase });

      expect(loaded.export({ format: 'jwk' })).toEqual(privateKey.export({ format: 'jwk' }));
    });
  }

  it('an empty passphrase is a wrong one', async () => {
    const error = await rejectionOf(loadPrivateKey({ pem: encryptedPem }, { passphrase: '' }));

    expect(error.code).toBe('ERR_KEY_PASSPHRASE_WRONG');
    expect(codesInChain(error)).not.toContain('ERR_MISSING_PASSPHRASE');
    expect(errorText(error)).not.toContain(passphrase);
  });
});
