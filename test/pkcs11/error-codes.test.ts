// Failed PKCS#11 calls against a real SoftHSM2 token. The cases are failed logins, a key whose
// CKA_SIGN became false after the signer was created, a failed key search, and imports that fail
// or do not prove themselves. Each error must name the token or key, the CKR_ value and the fix.
// It must not carry the PIN or key material.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createPkcs11Signer, importP8ToPkcs11 } from '../../adapters/pkcs11/index.js';
import {
  CKA_CLASS,
  CKA_EC_POINT,
  CKA_EXTRACTABLE,
  CKA_LABEL,
  CKA_SENSITIVE,
  CKA_SIGN,
  CKO_PRIVATE_KEY,
  CKO_PUBLIC_KEY,
} from '../../adapters/pkcs11/binding.js';
import { moduleRegistry } from '../../adapters/pkcs11/module.js';
import { signJwt } from '../../src/jws.js';
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

const keys = { signing: createTestKey(), reading: createTestKey() };
const soPin = '55443322-errors-so-pin';
let hsm: SoftHsm;
let spies: NativeSpy[] = [];

type AnyBinding = Record<string, (...args: unknown[]) => unknown>;
type Template = { type: number; value: unknown }[];

interface CodedError extends Error {
  code?: string;
  details?: Record<string, unknown>;
}

function uriFor(token: string, object: string, id: string): string {
  return `pkcs11:token=${token};object=${object};id=%${id}?module-path=${softHsmModulePath}`;
}

async function rejection(promise: Promise<unknown>): Promise<CodedError> {
  try {
    await promise;
  } catch (error) {
    return error as CodedError;
  }
  throw new Error('expected a rejection');
}

/** Asserts that neither the PIN nor the private scalar is in the error's text or the events. */
function expectNoSecrets(error: CodedError, events: SignerEvent[], key?: KeyObject): void {
  const text = [
    error.message,
    JSON.stringify(error.details),
    String((error.cause as Error | undefined)?.message),
    JSON.stringify(events),
  ].join('\n');
  expect(text).not.toContain(userPin);
  expect(text).not.toContain(soPin);
  if (key) expect(text).not.toContain(key.export({ format: 'jwk' }).d!);
}

/**
 * Initialises a token with only the security officer's PIN, as C_InitToken alone leaves it, in
 * a child process so that this process has not yet initialised the module.
 */
function createTokenWithoutUserPin(label: string): void {
  const script = `
    const { PKCS11 } = require(process.env.BINDING);
    const module = new PKCS11();
    module.load(process.env.MODULE);
    module.C_Initialize();
    const free = module.C_GetSlotList(true).find((slot) => !(module.C_GetTokenInfo(slot).flags & 0x400));
    module.C_InitToken(free, process.env.SO_PIN, process.env.LABEL.padEnd(32));
    module.C_Finalize();
  `;
  execFileSync(process.execPath, ['-e', script], {
    env: {
      ...process.env,
      BINDING: createRequire(import.meta.url).resolve('pkcs11js'),
      MODULE: softHsmModulePath,
      SO_PIN: soPin,
      LABEL: label,
    },
    stdio: 'pipe',
  });
}

/**
 * Changes attributes of the signer's key through a second pkcs11js handle on the same module,
 * as an administrator's tool in the same process would. The process is logged in already.
 */
function setKeyAttributes(label: string, attributes: Template): void {
  const { PKCS11 } = createRequire(import.meta.url)('pkcs11js') as {
    PKCS11: new () => AnyBinding;
  };
  const other = new PKCS11();
  other.load!(softHsmModulePath);
  expect(() => other.C_Initialize!()).toThrow(/CKR_CRYPTOKI_ALREADY_INITIALIZED/);
  const slot = (other.C_GetSlotList!(true) as Buffer[]).find(
    (candidate) =>
      (other.C_GetTokenInfo!(candidate) as { label: string }).label.trim() === 'errors',
  );
  const session = other.C_OpenSession!(slot, 0x06);
  try {
    const search = [
      { type: CKA_CLASS, value: CKO_PRIVATE_KEY },
      { type: CKA_LABEL, value: label },
    ];
    other.C_FindObjectsInit!(session, search);
    const handles = other.C_FindObjects!(session, 2) as Buffer[];
    other.C_FindObjectsFinal!(session);
    expect(handles).toHaveLength(1);
    other.C_SetAttributeValue!(session, handles[0], attributes);
  } finally {
    other.C_CloseSession!(session);
  }
}

/**
 * Replaces a native pkcs11js method for instances created from now on. A replacement throws
 * the native binding's own error form, `CKR_NAME:VALUE`, which pkcs11js turns into its
 * Pkcs11Error exactly as for a return value from the module.
 */
function spy(method: string, wrap: Parameters<typeof spyOnNative>[1]): NativeSpy {
  const created = spyOnNative(method, wrap);
  spies.push(created);
  return created;
}

function templateClass(template: Template): unknown {
  return template.find((attribute) => attribute.type === CKA_CLASS)?.value;
}

describeWithSoftHsm('pkcs11 error codes', () => {
  beforeAll(() => {
    hsm = createSoftHsm();
    hsm.createToken('errors');
    hsm.importPem('errors', keys.signing.pem, { label: 'signing', id: '11' });
    hsm.importPem('errors', keys.reading.pem, { label: 'reading', id: '12' });
    createTokenWithoutUserPin('nouser');
  });

  afterEach(() => {
    for (const created of spies) created.restore();
    spies = [];
    expect(moduleRegistry().modules.size).toBe(0);
  });

  afterAll(() => hsm?.remove());

  it('login to a token without user PIN', async () => {
    const events: SignerEvent[] = [];
    const error = await rejection(
      createPkcs11Signer(uriFor('nouser', 'siwa', '01'), {
        pin: userPin,
        onEvent: (event) => events.push(event),
      }),
    );

    expect(error.code).toBe('ERR_PKCS11_LOGIN_FAILED');
    expect(error.details).toEqual({ token: 'nouser', returnValue: 'CKR_USER_PIN_NOT_INITIALIZED' });
    expect(error.message).toContain('Login to token "nouser" failed');
    expect(error.message).toContain('CKR_USER_PIN_NOT_INITIALIZED');
    expect(error.message).toContain('The token has no user PIN yet');
    expect(error.message).toContain('softhsm2-util --init-token with --pin');
    expectNoSecrets(error, events);
  });

  // SoftHSM2 has no PIN expiry setting, and it returns CKR_PIN_INCORRECT for a PIN that is too
  // short or too long, so the wrapped binding returns these values from C_Login instead.
  const loginValues = [
    { value: 'CKR_PIN_EXPIRED:163', name: 'CKR_PIN_EXPIRED', fix: 'Set a valid user PIN' },
    { value: 'CKR_DEVICE_ERROR:48', name: 'CKR_DEVICE_ERROR', fix: 'softhsm2-util --show-slots' },
  ];

  for (const { value, name, fix } of loginValues) {
    it(`login failing with ${name}`, async () => {
      const login = spy('C_Login', () => () => {
        throw new Error(value);
      });
      const events: SignerEvent[] = [];
      const error = await rejection(
        createPkcs11Signer(uriFor('errors', 'signing', '11'), {
          pin: userPin,
          onEvent: (event) => events.push(event),
        }),
      );

      expect(login.calls).toBe(1);
      expect(error.code).toBe('ERR_PKCS11_LOGIN_FAILED');
      expect(error.details).toEqual({ token: 'errors', returnValue: name });
      expect(error.message).toContain('Login to token "errors"');
      expect(error.message).toContain(name);
      expect(error.message).toContain(fix);
      expectNoSecrets(error, events);
    });
  }

  it('sign after CKA_SIGN turned false', async () => {
    const events: SignerEvent[] = [];
    const uri = uriFor('errors', 'signing', '11');
    const signer = await createPkcs11Signer(uri, {
      pin: userPin,
      onEvent: (event) => events.push(event),
    });

    try {
      setKeyAttributes('signing', [{ type: CKA_SIGN, value: false }]);
      const claims = { iss: 'DEF123GHIJ', sub: 'com.example.secret-subject' };
      const error = await rejection(
        signJwt(signer, { header: { alg: 'ES256', kid: 'ABC123DEFG' }, payload: claims }),
      );

      expect(error.code).toBe('ERR_PKCS11_SIGN_FAILED');
      expect(error.details).toEqual({
        operation: 'signing',
        keyId: signer.keyId,
        returnValue: 'CKR_KEY_FUNCTION_NOT_PERMITTED',
      });
      expect(error.message).toContain(`PKCS#11 signing with ${signer.keyId} failed`);
      expect(error.message).toContain('CKR_KEY_FUNCTION_NOT_PERMITTED');
      expect(error.message).toContain('Allow signing on the key, or import the key again.');
      expect(error.message).not.toContain(claims.sub);
      // The return value is not one a new session or login cures, so nothing was retried.
      expect(events.filter((event) => event.type === 'retry')).toEqual([]);
      expectNoSecrets(error, events, keys.signing.privateKey);
    } finally {
      setKeyAttributes('signing', [{ type: CKA_SIGN, value: true }]);
      await signer.close();
    }
  });

  it('public key refresh after CKA_SIGN turned false', async () => {
    const events: SignerEvent[] = [];
    const signer = await createPkcs11Signer(uriFor('errors', 'reading', '12'), {
      pin: userPin,
      onEvent: (event) => events.push(event),
    });

    try {
      // A refresh proves the token's public-key object with a test signature, which now fails.
      setKeyAttributes('reading', [{ type: CKA_SIGN, value: false }]);
      const error = await rejection(signer.getPublicKey({ refresh: true }));

      expect(error.code).toBe('ERR_PKCS11_OPERATION_FAILED');
      expect(error.details).toEqual({
        operation: 'reading the public key',
        keyId: signer.keyId,
        returnValue: 'CKR_KEY_FUNCTION_NOT_PERMITTED',
      });
      expect(error.message).toContain(`PKCS#11 reading the public key with ${signer.keyId}`);
      expect(error.message).toContain('CKR_KEY_FUNCTION_NOT_PERMITTED');
      expect(error.message).toContain('Allow signing on the key');
      expectNoSecrets(error, events, keys.reading.privateKey);
    } finally {
      setKeyAttributes('reading', [{ type: CKA_SIGN, value: true }]);
      await signer.close();
    }
  });

  it('key search failing with CKR_DEVICE_ERROR', async () => {
    // SoftHSM2 cannot be made to fail a search on purpose, so the wrapped binding returns
    // CKR_DEVICE_ERROR from C_FindObjectsInit, as an HSM with a hardware fault would.
    const findInit = spy('C_FindObjectsInit', () => () => {
      throw new Error('CKR_DEVICE_ERROR:48');
    });
    const events: SignerEvent[] = [];
    const error = await rejection(
      createPkcs11Signer(uriFor('errors', 'signing', '11'), {
        pin: userPin,
        onEvent: (event) => events.push(event),
      }),
    );

    expect(findInit.calls).toBeGreaterThan(0);
    expect(error.code).toBe('ERR_PKCS11_OPERATION_FAILED');
    expect(error.details).toEqual({
      operation: 'C_FindObjectsInit',
      returnValue: 'CKR_DEVICE_ERROR',
    });
    expect((error.cause as Error).name).toBe('Pkcs11Error');
    expect(error.message).toContain('PKCS#11 C_FindObjectsInit failed for the key search');
    expect(error.message).toContain('CKR_DEVICE_ERROR');
    expect(error.message).toContain('softhsm2-util --show-slots');
    expectNoSecrets(error, events);
  });

  it('import with a full token', async () => {
    // SoftHSM2 has no object limit short of a full disk, so the wrapped binding returns
    // CKR_DEVICE_MEMORY for the public-key object, as a full token would. The private-key object
    // is written for real, and the import must destroy it.
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const create = spy(
      'C_CreateObject',
      (original) =>
        function (this: unknown, ...args: unknown[]) {
          if (templateClass(args[1] as Template) === CKO_PUBLIC_KEY) {
            throw new Error('CKR_DEVICE_MEMORY:49');
          }
          return original.apply(this, args);
        },
    );
    const error = await rejection(
      importP8ToPkcs11(key, uriFor('errors', 'full', '21'), { pin: userPin }),
    );

    expect(create.calls).toBe(2);
    expect(error.code).toBe('ERR_PKCS11_IMPORT_FAILED');
    expect(error.details).toEqual({
      token: 'errors',
      object: 'full',
      id: '%21',
      step: 'C_CreateObject for the public key',
      returnValue: 'CKR_DEVICE_MEMORY',
    });
    expect(error.message).toContain('The import of "full" (id=%21) into token "errors" failed');
    expect(error.message).toContain('CKR_DEVICE_MEMORY');
    expect(error.message).toContain('The token is out of memory');
    expectNoSecrets(error, [], key);

    for (const created of spies) created.restore();
    spies = [];
    const lookup = await rejection(
      createPkcs11Signer(uriFor('errors', 'full', '21'), { pin: userPin }),
    );
    expect(lookup.code).toBe('ERR_PKCS11_KEY_NOT_FOUND');
  });

  // SoftHSM2 stores the attributes the template requests, so these wrap C_CreateObject to change
  // the template on its way to the real module, as a token whose policy overrides them would.
  const alteredImports = [
    {
      name: 'private key left readable',
      id: '22',
      alter: (template: Template) => {
        if (templateClass(template) !== CKO_PRIVATE_KEY) return template;
        return template.map((attribute) => {
          if (attribute.type === CKA_SENSITIVE) return { ...attribute, value: false };
          if (attribute.type === CKA_EXTRACTABLE) return { ...attribute, value: true };
          return attribute;
        });
      },
      problem: 'CKA_SENSITIVE=false, CKA_EXTRACTABLE=true',
    },
    {
      name: 'public point of another key',
      id: '23',
      alter: (template: Template) => {
        if (templateClass(template) !== CKO_PUBLIC_KEY) return template;
        const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
        const jwk = other.export({ format: 'jwk' });
        const point = Buffer.concat([
          Buffer.from([0x04, 0x41, 0x04]),
          Buffer.from(jwk.x!, 'base64url'),
          Buffer.from(jwk.y!, 'base64url'),
        ]);
        return template.map((attribute) =>
          attribute.type === CKA_EC_POINT ? { ...attribute, value: point } : attribute,
        );
      },
      problem: 'the public-key object does not hold the public key of the .p8',
    },
  ];

  for (const { name, id, alter, problem } of alteredImports) {
    it(`import with ${name}`, async () => {
      const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const create = spy(
        'C_CreateObject',
        (original) =>
          function (this: unknown, ...args: unknown[]) {
            return original.apply(this, [args[0], alter(args[1] as Template), ...args.slice(2)]);
          },
      );
      const object = `altered-${id}`;
      const error = await rejection(
        importP8ToPkcs11(key, uriFor('errors', object, id), { pin: userPin }),
      );

      expect(create.calls).toBe(2);
      expect(error.code).toBe('ERR_PKCS11_IMPORT_VERIFY_FAILED');
      expect(error.details).toMatchObject({ token: 'errors', object, id: `%${id}` });
      expect(error.details!.problem).toContain(problem);
      expect(error.message).toContain(`The import of "${object}" (id=%${id}) into token "errors"`);
      expect(error.message).toContain(problem);
      expect(error.message).toContain('The new objects were destroyed.');
      expect(error.message).toContain("report this message to the token's vendor");
      expectNoSecrets(error, [], key);

      for (const created of spies) created.restore();
      spies = [];
      const lookup = await rejection(
        createPkcs11Signer(uriFor('errors', object, id), { pin: userPin }),
      );
      expect(lookup.code).toBe('ERR_PKCS11_KEY_NOT_FOUND');
    });
  }
});
