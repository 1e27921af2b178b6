// Logging in, sharing the module and recovering, against a real SoftHSM2 token. A wrong PIN is
// tried once, and token PIN flags stop a login that could lock the token. The module is
// initialised and finalised once, and signs use the binding's asynchronous call.
import { verify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createPkcs11Signer } from '../../adapters/pkcs11/index.js';
import { CKF_USER_PIN_FINAL_TRY, CKF_USER_PIN_LOCKED } from '../../adapters/pkcs11/binding.js';
import { moduleRegistry, type ModuleEntry } from '../../adapters/pkcs11/module.js';
import type { SignerEvent } from '../../src/signer.js';
import {
  createSoftHsm,
  createTestKey,
  describeWithSoftHsm,
  softHsmModulePath,
  spyOnNative,
  userPin,
  type NativeSpy,
  type SoftHsm,
} from './softhsm.js';

const keys = { main: createTestKey(), second: createTestKey() };
const wrongPin = 'not-the-user-pin-7731';
let hsm: SoftHsm;
let spies: NativeSpy[] = [];

function uriFor(token: string, object = 'siwa', id = '01'): string {
  return `pkcs11:token=${token};object=${object};id=%${id}?module-path=${softHsmModulePath}`;
}

function spy(method: string, wrap?: Parameters<typeof spyOnNative>[1]): NativeSpy {
  const created = spyOnNative(method, wrap);
  spies.push(created);
  return created;
}

function onlyModule(): ModuleEntry {
  const modules = [...moduleRegistry().modules.values()];
  expect(modules).toHaveLength(1);
  return modules[0]!;
}

/** Counts calls of one method on a binding instance that already exists. */
function spyOnInstance(entry: ModuleEntry, method: string): { calls: number } {
  const binding = entry.binding as unknown as Record<string, (...args: unknown[]) => unknown>;
  const original = binding[method]!;
  const counter = { calls: 0 };
  binding[method] = (...args: unknown[]) => {
    counter.calls += 1;
    return original.apply(binding, args);
  };
  return counter;
}

function verifies(input: Buffer, signature: Uint8Array, publicKey = keys.main.publicKey): boolean {
  return verify('sha256', input, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);
}

/** Wraps C_GetTokenInfo so that the token reports extra flags, which SoftHSM2 never sets. */
function addTokenFlags(flags: number) {
  return (original: (...args: unknown[]) => unknown) =>
    function (this: unknown, ...args: unknown[]) {
      const info = original.apply(this, args) as { flags: number };
      return { ...info, flags: info.flags | flags };
    };
}

describeWithSoftHsm('pkcs11 login and module lifecycle', () => {
  beforeAll(() => {
    hsm = createSoftHsm();
    for (const token of ['login-tests', 'wrong-pin', 'pin-change', 'flags', 'pin-burst']) {
      hsm.createToken(token);
      hsm.importPem(token, keys.main.pem, { label: 'siwa', id: '01' });
    }
    hsm.importPem('login-tests', keys.second.pem, { label: 'second', id: '02' });
  });

  afterEach(() => {
    for (const created of spies) created.restore();
    spies = [];
  });

  afterAll(() => {
    // The folder goes even when a test left a signer open, which the check then reports.
    const openModules = moduleRegistry().modules.size;
    hsm?.remove();
    expect(openModules).toBe(0);
  });

  it('wrong PIN is tried exactly once', async () => {
    const logins = spy('C_Login');
    const attempt = createPkcs11Signer(uriFor('wrong-pin'), { pin: wrongPin });

    await expect(attempt).rejects.toMatchObject({
      code: 'ERR_PKCS11_PIN_INCORRECT',
      message: expect.stringContaining('tried once'),
    });
    expect(logins.calls).toBe(1);
    expect(moduleRegistry().modules.size).toBe(0);
  });

  it('failed attempts since login raise a warning', async () => {
    // The previous test left CKF_USER_PIN_COUNT_LOW set on this token.
    const events: SignerEvent[] = [];
    const signer = await createPkcs11Signer(uriFor('wrong-pin'), {
      pin: userPin,
      onEvent: (event) => events.push(event),
    });
    const input = Buffer.from('after.warning');
    expect(verifies(input, await signer.sign(input))).toBe(true);
    await signer.close();

    expect(events.map((event) => event.code)).toEqual(['pin-count-low']);
    expect(events[0]).toMatchObject({ type: 'warning', token: 'wrong-pin' });
  });

  it('final PIN try is not spent by default', async () => {
    spy('C_GetTokenInfo', addTokenFlags(CKF_USER_PIN_FINAL_TRY));
    const logins = spy('C_Login');

    const attempt = createPkcs11Signer(uriFor('flags'), { pin: userPin });
    await expect(attempt).rejects.toMatchObject({ code: 'ERR_PKCS11_PIN_FINAL_TRY' });
    expect(logins.calls).toBe(0);

    const signer = await createPkcs11Signer(uriFor('flags'), {
      pin: userPin,
      allowFinalPinTry: true,
    });
    expect(logins.calls).toBe(1);
    const input = Buffer.from('final.try');
    expect(verifies(input, await signer.sign(input))).toBe(true);
    await signer.close();
  });

  it('locked PIN stops before login', async () => {
    spy('C_GetTokenInfo', addTokenFlags(CKF_USER_PIN_LOCKED));
    const logins = spy('C_Login');

    const attempt = createPkcs11Signer(uriFor('flags'), { pin: userPin });
    await expect(attempt).rejects.toMatchObject({
      code: 'ERR_PKCS11_PIN_LOCKED',
      message: expect.stringContaining('"flags"'),
    });
    expect(logins.calls).toBe(0);
    expect(moduleRegistry().modules.size).toBe(0);
  });

  it('PIN changed on the token is tried once when logging in again', async () => {
    const signer = await createPkcs11Signer(uriFor('pin-change'), { pin: userPin });
    await signer.sign(Buffer.from('warm.up'));
    const entry = onlyModule();
    const token = [...entry.tokens.values()][0]!;
    const binding = entry.binding as unknown as {
      C_OpenSession(slot: Buffer, flags: number): Buffer;
      C_SetPIN(session: Buffer, oldPin: string, newPin: string): void;
      C_CloseSession(session: Buffer): void;
      C_CloseAllSessions(slot: Buffer): void;
    };
    const session = binding.C_OpenSession(token.slot, 0x06);
    binding.C_SetPIN(session, userPin, 'a-new-user-pin-5521');
    binding.C_CloseAllSessions(token.slot);
    const logins = spyOnInstance(entry, 'C_Login');

    for (const text of ['first.attempt', 'second.attempt', 'third.attempt']) {
      await expect(signer.sign(Buffer.from(text))).rejects.toMatchObject({
        code: 'ERR_PKCS11_PIN_INCORRECT',
      });
    }
    expect(logins.calls).toBe(1);
    await signer.close();
  });

  it('many signers share one initialise and one login', async () => {
    const initializes = spy('C_Initialize');
    const finalizes = spy('C_Finalize');
    const logins = spy('C_Login');

    const signers = await Promise.all([
      createPkcs11Signer(uriFor('login-tests'), { pin: userPin }),
      createPkcs11Signer(uriFor('login-tests'), { pin: userPin }),
      createPkcs11Signer(uriFor('login-tests', 'second', '02'), { pin: userPin }),
    ]);
    expect(initializes.calls).toBe(1);
    expect(logins.calls).toBe(1);
    expect(onlyModule().users).toBe(3);

    await signers[0]!.close();
    await signers[1]!.close();
    expect(finalizes.calls).toBe(0);
    const input = Buffer.from('last.user');
    expect(verifies(input, await signers[2]!.sign(input), keys.second.publicKey)).toBe(true);

    await signers[2]!.close();
    expect(finalizes.calls).toBe(1);
    expect(moduleRegistry().modules.size).toBe(0);
  });

  it('signs through the asynchronous binding call', async () => {
    const synchronous = spy('C_Sign');
    const asynchronous = spy('C_SignCallback');
    const signer = await createPkcs11Signer(uriFor('login-tests'), { pin: userPin });

    await Promise.all(Array.from({ length: 8 }, (_, i) => signer.sign(Buffer.from(`a.${i}`))));
    await signer.close();
    // One more: the test signature that proves the token's public-key object at creation.
    expect(asynchronous.calls).toBe(9);
    expect(synchronous.calls).toBe(0);
  });

  it('concurrent signs share one recovery', async () => {
    const events: SignerEvent[] = [];
    const signer = await createPkcs11Signer(uriFor('login-tests'), {
      pin: userPin,
      maxSessions: 4,
      onEvent: (event) => events.push(event),
    });
    await Promise.all(Array.from({ length: 4 }, (_, i) => signer.sign(Buffer.from(`w.${i}`))));
    const entry = onlyModule();
    const token = [...entry.tokens.values()][0]!;
    const binding = entry.binding as unknown as { C_CloseAllSessions(slot: Buffer): void };
    binding.C_CloseAllSessions(token.slot);
    const logins = spyOnInstance(entry, 'C_Login');

    const inputs = Array.from({ length: 40 }, (_, i) => Buffer.from(`after.close-${i}`));
    const signatures = await Promise.all(inputs.map((input) => signer.sign(input)));
    await signer.close();

    for (const [i, signature] of signatures.entries()) {
      expect(verifies(inputs[i]!, signature)).toBe(true);
    }
    expect(logins.calls).toBe(1);
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((event) => event.type === 'retry')).toBe(true);
  });

  it('key is not found without a PIN', async () => {
    const saved = process.env.KMS_JWT_PKCS11_PIN;
    delete process.env.KMS_JWT_PKCS11_PIN;
    try {
      const attempt = createPkcs11Signer(uriFor('login-tests'));
      await expect(attempt).rejects.toMatchObject({
        code: 'ERR_PKCS11_KEY_NOT_FOUND',
        message: expect.stringContaining('No PIN was given'),
      });
    } finally {
      if (saved !== undefined) process.env.KMS_JWT_PKCS11_PIN = saved;
    }
    expect(moduleRegistry().modules.size).toBe(0);
  });

  it('empty PIN is never sent to the token', async () => {
    const logins = spy('C_Login');
    const attempts = [
      () => createPkcs11Signer(uriFor('login-tests'), { pin: '' }),
      () => createPkcs11Signer(`${uriFor('login-tests')}&pin-value=`),
    ];

    for (const attempt of attempts) {
      await expect(attempt()).rejects.toMatchObject({ code: 'ERR_PKCS11_PIN_MISSING' });
    }
    expect(logins.calls).toBe(0);
    expect(moduleRegistry().modules.size).toBe(0);
  });

  it('PIN file line breaks are not sent', async () => {
    const logins = spy('C_Login');
    const pinFile = join(hsm.folder, 'pin-lines');
    const uri = `${uriFor('login-tests')}&pin-source=${pinFile}`;

    for (const text of [`${userPin}\n\n`, `${userPin}\r\n\r\n`]) {
      writeFileSync(pinFile, text, { mode: 0o600 });
      const signer = await createPkcs11Signer(uri);
      const input = Buffer.from('pin.file');
      expect(verifies(input, await signer.sign(input))).toBe(true);
      await signer.close();
    }
    expect(logins.calls).toBe(2);

    writeFileSync(pinFile, `${userPin}\nsecond-line\n`, { mode: 0o600 });
    await expect(createPkcs11Signer(uri)).rejects.toMatchObject({
      code: 'ERR_PKCS11_PIN_SOURCE_UNREADABLE',
      message: expect.stringContaining('more than one line'),
    });
    expect(logins.calls).toBe(2);
  });

  it('wrong PIN is tried once per process', async () => {
    const logins = spy('C_Login');
    const burstPin = 'another-wrong-pin-4412';
    // A service that creates signers on demand, or again after each failure.
    const concurrent = await Promise.allSettled(
      Array.from({ length: 5 }, () => createPkcs11Signer(uriFor('pin-burst'), { pin: burstPin })),
    );
    const later = await createPkcs11Signer(uriFor('pin-burst'), { pin: burstPin }).catch(
      (error: unknown) => error,
    );

    for (const result of concurrent) {
      expect(result).toMatchObject({ reason: { code: 'ERR_PKCS11_PIN_INCORRECT' } });
    }
    expect(later).toMatchObject({ code: 'ERR_PKCS11_PIN_INCORRECT' });
    expect(logins.calls).toBe(1);

    const signer = await createPkcs11Signer(uriFor('pin-burst'), { pin: userPin });
    const input = Buffer.from('right.pin');
    expect(verifies(input, await signer.sign(input))).toBe(true);
    await signer.close();
    expect(logins.calls).toBe(2);
  });
});
