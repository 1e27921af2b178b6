// The PKCS#11 signer under hostile and careless use, against a real SoftHSM2 token: sessions that
// the token closes while signs are in flight or while the signer closes, a module that stops
// responding, and timeouts past the timer range. Session loss is caused for real, through a
// second binding handle on the same module.
import { verify } from 'node:crypto';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPkcs11Signer } from '../../adapters/pkcs11/index.js';
import { moduleRegistry, type ModuleEntry } from '../../adapters/pkcs11/module.js';
import type { SignerEvent } from '../../src/signer.js';
import {
  createSoftHsm,
  createTestKey,
  describeWithSoftHsm,
  softHsmModulePath,
  userPin,
  type SoftHsm,
} from './softhsm.js';

const key = createTestKey();
const uri = `pkcs11:token=robustness;object=siwa;id=%01?module-path=${softHsmModulePath}`;
let hsm: SoftHsm;

type AnyBinding = Record<string, (...args: unknown[]) => unknown>;

function onlyModule(): ModuleEntry {
  const modules = [...moduleRegistry().modules.values()];
  expect(modules).toHaveLength(1);
  return modules[0]!;
}

/**
 * Closes every session of this process on the token, through a second pkcs11js handle on the
 * same module, as another library in the process or a token reset would.
 */
function closeAllSessionsElsewhere(): void {
  const { PKCS11 } = createRequire(import.meta.url)('pkcs11js') as {
    PKCS11: new () => AnyBinding;
  };
  const other = new PKCS11();
  other.load!(softHsmModulePath);
  // The signer already initialised the module, so this handle only borrows it.
  expect(() => other.C_Initialize!()).toThrow(/CKR_CRYPTOKI_ALREADY_INITIALIZED/);
  const slots = other.C_GetSlotList!(true) as Buffer[];
  const slot = slots.find((candidate) => {
    const info = other.C_GetTokenInfo!(candidate) as { label: string };
    return info.label.trim() === 'robustness';
  });
  other.C_CloseAllSessions!(slot);
}

/** Runs `after` once, when the next real C_SignAsync of the signer's binding has finished. */
function afterNextSign(entry: ModuleEntry, after: () => Promise<void> | void): () => void {
  const binding = entry.binding as unknown as AnyBinding;
  const realSign = binding.C_SignAsync!;
  let pending: typeof after | undefined = after;
  binding.C_SignAsync = async (...args: unknown[]) => {
    const signature = await realSign.apply(binding, args);
    const hook = pending;
    pending = undefined;
    if (hook) await hook();
    return signature;
  };
  return () => {
    binding.C_SignAsync = realSign;
  };
}

function verifies(input: Buffer, signature: Uint8Array): boolean {
  return verify('sha256', input, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, signature);
}

describeWithSoftHsm('pkcs11 signer under hostile use', () => {
  beforeAll(() => {
    hsm = createSoftHsm();
    hsm.createToken('robustness');
    hsm.importPem('robustness', key.pem, { label: 'siwa', id: '01' });
  });

  afterAll(() => {
    const openModules = moduleRegistry().modules.size;
    hsm?.remove();
    expect(openModules).toBe(0);
  });

  it('close survives sessions lost during close', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const signer = await createPkcs11Signer(uri, { pin: userPin });
    // The sign succeeds, then the token drops every session before the pool gets it back.
    const restore = afterNextSign(onlyModule(), closeAllSessionsElsewhere);

    try {
      const input = Buffer.from('in.flight');
      const signing = signer.sign(input);
      const closing = signer.close();
      expect(verifies(input, await signing)).toBe(true);
      await closing;
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      restore();
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
    expect(moduleRegistry().modules.size).toBe(0);
  });

  it('sessions from before a recovery are not reused', async () => {
    const events: SignerEvent[] = [];
    const signer = await createPkcs11Signer(uri, {
      pin: userPin,
      maxSessions: 2,
      onEvent: (event) => events.push(event),
    });
    const during = Buffer.from('during.recovery');
    let duringSignature: Uint8Array | undefined;
    // The first sign keeps its session while the token drops every session and a second sign
    // recovers (new login, key found again). That session comes back only after the recovery.
    const restore = afterNextSign(onlyModule(), async () => {
      closeAllSessionsElsewhere();
      duringSignature = await signer.sign(during);
    });

    try {
      const first = Buffer.from('held.session');
      expect(verifies(first, await signer.sign(first))).toBe(true);
      expect(verifies(during, duringSignature!)).toBe(true);
      expect(events.filter((event) => event.type === 'retry')).toHaveLength(1);

      const after = Buffer.from('after.recovery');
      expect(verifies(after, await signer.sign(after))).toBe(true);
    } finally {
      restore();
      await signer.close();
    }
    // A session closed by the token must not come back from the pool and force a second recovery.
    expect(events.filter((event) => event.type === 'retry')).toHaveLength(1);
  });

  it('sign waiting for a session times out', async () => {
    const signer = await createPkcs11Signer(uri, { pin: userPin, maxSessions: 1, timeoutMs: 200 });
    const binding = onlyModule().binding as unknown as AnyBinding;
    const realSign = binding.C_SignAsync!;
    // A module that stops responding: the first sign's C_Sign does not return until the end.
    let finishHungSign: (() => void) | undefined;
    binding.C_SignAsync = (...args: unknown[]) =>
      new Promise((resolve) => {
        finishHungSign = () => resolve(realSign.apply(binding, args));
      });

    try {
      const hung = signer.sign(Buffer.from('hung.sign'));
      const queued = signer.sign(Buffer.from('queued.sign'));
      await expect(hung).rejects.toMatchObject({ code: 'ERR_PKCS11_TIMEOUT' });
      await expect(queued).rejects.toMatchObject({ code: 'ERR_PKCS11_TIMEOUT' });
    } finally {
      binding.C_SignAsync = realSign;
      finishHungSign?.();
      await signer.close();
    }
  });

  it('timeoutMs past the timer range', async () => {
    // Node.js timers hold at most 2^31 - 1 ms and fire after 1 ms for anything larger.
    for (const timeoutMs of [2 ** 31, Number.MAX_SAFE_INTEGER]) {
      const attempt = createPkcs11Signer(uri, { pin: userPin, timeoutMs });
      await expect(attempt).rejects.toMatchObject({
        name: 'TypeError',
        message: expect.stringContaining('2147483647'),
      });
    }

    const signer = await createPkcs11Signer(uri, { pin: userPin, timeoutMs: 2 ** 31 - 1 });
    const input = Buffer.from('longest.timeout');
    expect(verifies(input, await signer.sign(input))).toBe(true);
    await signer.close();
  });
});
