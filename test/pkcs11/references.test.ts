// Reaching a key on a real SoftHSM2 token: the module path and the PIN from each source, tokens
// found by label, serial or slot ID, and the coded errors for missing tokens, missing objects,
// unknown attributes and bad module paths.
import { verify } from 'node:crypto';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createPkcs11Signer } from '../../adapters/pkcs11/index.js';
import { moduleRegistry } from '../../adapters/pkcs11/module.js';
import type { SignerEvent } from '../../src/signer.js';
import {
  createSoftHsm,
  createTestKey,
  describeWithSoftHsm,
  softHsmModulePath,
  userPin,
  type SoftHsm,
} from './softhsm.js';

const keys = { first: createTestKey(), second: createTestKey() };
const environmentNames = [
  'KMS_JWT_PKCS11_MODULE',
  'PKCS11_MODULE_PATH',
  'KMS_JWT_PKCS11_PIN',
  'TEST_HSM_PIN',
];
const savedEnvironment = new Map(environmentNames.map((name) => [name, process.env[name]]));
let hsm: SoftHsm;

const modulePart = `module-path=${softHsmModulePath}`;

/** Signs once and checks the signature with `publicKey`, then closes the signer. */
async function signsWith(
  uri: string,
  options: Parameters<typeof createPkcs11Signer>[1],
  publicKey = keys.first.publicKey,
): Promise<boolean> {
  const signer = await createPkcs11Signer(uri, options);
  const input = Buffer.from(`${uri}.input`);
  const signature = await signer.sign(input);
  await signer.close();
  return verify('sha256', input, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);
}

function writePinFile(name: string, text: string, mode = 0o600): string {
  const path = join(hsm.folder, name);
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
  return path;
}

describeWithSoftHsm('pkcs11 references', () => {
  beforeAll(() => {
    hsm = createSoftHsm();
    hsm.createToken('refs-one');
    hsm.createToken('refs-two');
    // The same label and ID on two tokens: only the token attributes tell them apart.
    hsm.importPem('refs-one', keys.first.pem, { label: 'siwa', id: '01' });
    hsm.importPem('refs-two', keys.second.pem, { label: 'siwa', id: '01' });
  });

  afterEach(() => {
    for (const [name, value] of savedEnvironment) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    expect(moduleRegistry().modules.size).toBe(0);
  });

  afterAll(() => hsm?.remove());

  it('module path from the option', async () => {
    const uri = 'pkcs11:token=refs-one;object=siwa';
    expect(await signsWith(uri, { pin: userPin, modulePath: softHsmModulePath })).toBe(true);
  });

  it('module path from KMS_JWT_PKCS11_MODULE', async () => {
    process.env.KMS_JWT_PKCS11_MODULE = softHsmModulePath;
    expect(await signsWith('pkcs11:token=refs-one;object=siwa', { pin: userPin })).toBe(true);
  });

  it('module path from PKCS11_MODULE_PATH', async () => {
    process.env.PKCS11_MODULE_PATH = softHsmModulePath;
    expect(await signsWith('pkcs11:token=refs-one;object=siwa', { pin: userPin })).toBe(true);
  });

  it('module-path in the URI wins over the option', async () => {
    const uri = `pkcs11:token=refs-one;object=siwa?${modulePart}`;
    const options = { pin: userPin, modulePath: '/nonexistent/libpkcs11.so' };
    expect(await signsWith(uri, options)).toBe(true);
  });

  it('no module from any source', async () => {
    const attempt = createPkcs11Signer('pkcs11:token=refs-one;object=siwa', { pin: userPin });
    await expect(attempt).rejects.toMatchObject({
      code: 'ERR_PKCS11_MODULE_MISSING',
      message: expect.stringContaining('KMS_JWT_PKCS11_MODULE'),
    });
  });

  it('PIN from a pin-source file URI', async () => {
    const path = writePinFile('pin.txt', `${userPin}\n`);
    const uri = `pkcs11:token=refs-one;object=siwa?${modulePart}&pin-source=${pathToFileURL(path).href}`;
    expect(await signsWith(uri, {})).toBe(true);
  });

  it('PIN from a pin-source absolute path', async () => {
    const path = writePinFile('pin-plain.txt', userPin);
    const uri = `pkcs11:token=refs-one;object=siwa?${modulePart}&pin-source=${path}`;
    expect(await signsWith(uri, {})).toBe(true);
  });

  it('pin-source wins over the pin option', async () => {
    const path = writePinFile('pin-wins.txt', userPin);
    const uri = `pkcs11:token=refs-one;object=siwa?${modulePart}&pin-source=${path}`;
    // A wrong option would raise ERR_PKCS11_PIN_INCORRECT if it were used.
    expect(await signsWith(uri, { pin: 'an-unused-wrong-pin' })).toBe(true);
  });

  it('PIN from KMS_JWT_PKCS11_PIN', async () => {
    process.env.KMS_JWT_PKCS11_PIN = userPin;
    expect(await signsWith(`pkcs11:token=refs-one;object=siwa?${modulePart}`, {})).toBe(true);
  });

  it('PIN from the variable pinEnv names', async () => {
    process.env.TEST_HSM_PIN = userPin;
    const uri = `pkcs11:token=refs-one;object=siwa?${modulePart}`;
    expect(await signsWith(uri, { pinEnv: 'TEST_HSM_PIN' })).toBe(true);
  });

  it('PIN file readable by others raises a warning', async () => {
    const path = writePinFile('pin-shared.txt', userPin, 0o644);
    const events: SignerEvent[] = [];
    const uri = `pkcs11:token=refs-one;object=siwa?${modulePart}&pin-source=${path}`;
    expect(await signsWith(uri, { onEvent: (event) => events.push(event) })).toBe(true);
    expect(events).toEqual([
      expect.objectContaining({ type: 'warning', code: 'pin-file-permissions', path }),
    ]);
  });

  it('empty or missing PIN file', async () => {
    const empty = writePinFile('pin-empty.txt', '\n');
    const base = `pkcs11:token=refs-one;object=siwa?${modulePart}&pin-source=`;
    await expect(createPkcs11Signer(`${base}${empty}`)).rejects.toMatchObject({
      code: 'ERR_PKCS11_PIN_SOURCE_UNREADABLE',
      message: expect.stringContaining('is empty'),
    });
    await expect(createPkcs11Signer(`${base}${hsm.folder}/no-such-pin`)).rejects.toMatchObject({
      code: 'ERR_PKCS11_PIN_SOURCE_UNREADABLE',
      message: expect.stringContaining('ENOENT'),
    });
  });

  it('same label on two tokens is told apart by token', async () => {
    const uri = (token: string) => `pkcs11:token=${token};object=siwa;id=%01?${modulePart}`;
    expect(await signsWith(uri('refs-one'), { pin: userPin })).toBe(true);
    expect(await signsWith(uri('refs-two'), { pin: userPin }, keys.second.publicKey)).toBe(true);
  });

  it('token found by serial and by slot-id', async () => {
    const serial = hsm.serialOf('refs-two');
    const slotId = hsm.slotIdOf('refs-two');
    // SoftHSM2 moves a token to a new slot ID when it initialises it, so the ID is large.
    expect(slotId).toBeGreaterThan(1);
    const bySerial = `pkcs11:serial=${serial};object=siwa?${modulePart}`;
    const bySlot = `pkcs11:slot-id=${slotId};object=siwa?${modulePart}`;
    expect(await signsWith(bySerial, { pin: userPin }, keys.second.publicKey)).toBe(true);
    expect(await signsWith(bySlot, { pin: userPin }, keys.second.publicKey)).toBe(true);
  });

  it('token attributes that match two tokens', async () => {
    const uri = `pkcs11:manufacturer=SoftHSM%20project;model=SoftHSM%20v2;object=siwa?${modulePart}`;
    await expect(createPkcs11Signer(uri, { pin: userPin })).rejects.toMatchObject({
      code: 'ERR_PKCS11_TOKEN_AMBIGUOUS',
      message: expect.stringMatching(/"refs-one".*"refs-two"|"refs-two".*"refs-one"/),
    });
  });

  it('missing token lists the tokens present', async () => {
    const attempt = createPkcs11Signer(`pkcs11:token=nope;object=siwa?${modulePart}`, {
      pin: userPin,
    });
    // The module lists slots in an order of its own, so each label is checked on its own.
    const error = (await attempt.catch((caught: unknown) => caught)) as Error & { code: string };
    expect(error.code).toBe('ERR_PKCS11_TOKEN_NOT_FOUND');
    expect(error.message).toContain('Tokens present: ');
    expect(error.message).toContain('"refs-one"');
    expect(error.message).toContain('"refs-two"');
    expect(error.message).not.toContain('""');
  });

  it('missing object on the token', async () => {
    const attempt = createPkcs11Signer(`pkcs11:token=refs-one;object=nope?${modulePart}`, {
      pin: userPin,
    });
    await expect(attempt).rejects.toMatchObject({
      code: 'ERR_PKCS11_KEY_NOT_FOUND',
      message: expect.stringContaining('object="nope"'),
    });
  });

  it('unknown path attribute matches nothing', async () => {
    const uri = `pkcs11:token=refs-one;object=siwa;colour=blue?${modulePart}`;
    await expect(createPkcs11Signer(uri, { pin: userPin })).rejects.toMatchObject({
      code: 'ERR_PKCS11_KEY_NOT_FOUND',
      message: expect.stringMatching(/matches no object.*"colour".*does not know/),
    });
  });

  it('type other than private', async () => {
    const uri = `pkcs11:token=refs-one;object=siwa;type=public?${modulePart}`;
    await expect(createPkcs11Signer(uri, { pin: userPin })).rejects.toMatchObject({
      code: 'ERR_PKCS11_KEY_NOT_FOUND',
      message: expect.stringContaining('names public objects'),
    });
  });

  it('module path that does not exist', async () => {
    const uri = 'pkcs11:token=refs-one;object=siwa?module-path=/nonexistent/libpkcs11.so';
    await expect(createPkcs11Signer(uri, { pin: userPin })).rejects.toMatchObject({
      code: 'ERR_PKCS11_MODULE_NOT_FOUND',
      message: expect.stringContaining('/nonexistent/libpkcs11.so'),
    });
  });

  it('module path that is relative', async () => {
    const attempt = createPkcs11Signer('pkcs11:token=refs-one;object=siwa', {
      pin: userPin,
      modulePath: 'libsofthsm2.so',
    });
    await expect(attempt).rejects.toMatchObject({
      code: 'ERR_PKCS11_MODULE_NOT_FOUND',
      message: expect.stringContaining('is not absolute'),
    });
  });

  it('module path that is not a PKCS#11 library', async () => {
    const notLibrary = writePinFile('not-a-library.so', 'plain text, not ELF');
    const zlib = ['/usr/lib/x86_64-linux-gnu/libz.so.1', '/lib/x86_64-linux-gnu/libz.so.1'].find(
      (path) => existsSync(path),
    );
    for (const path of [notLibrary, ...(zlib ? [zlib] : [])]) {
      const attempt = createPkcs11Signer(`pkcs11:token=refs-one;object=siwa?module-path=${path}`, {
        pin: userPin,
      });
      await expect(attempt).rejects.toMatchObject({
        code: 'ERR_PKCS11_MODULE_LOAD_FAILED',
        message: expect.stringContaining(path),
      });
    }
  });

  it('missing SoftHSM2 configuration has a hint', async () => {
    const saved = process.env.SOFTHSM2_CONF;
    process.env.SOFTHSM2_CONF = join(hsm.folder, 'no-such.conf');
    try {
      const attempt = createPkcs11Signer(`pkcs11:token=refs-one;object=siwa?${modulePart}`, {
        pin: userPin,
      });
      await expect(attempt).rejects.toMatchObject({
        code: 'ERR_PKCS11_MODULE_INIT_FAILED',
        message: expect.stringContaining('SOFTHSM2_CONF'),
      });
    } finally {
      process.env.SOFTHSM2_CONF = saved;
    }
  });
});
