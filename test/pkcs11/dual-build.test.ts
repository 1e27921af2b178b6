// The ESM and CJS builds of the pkcs11 entry share one initialised module in one process. A child
// process loads both dist builds side by side and creates a signer in each for the same SoftHSM2
// token, while it counts the calls into the native module.
import { execFileSync } from 'node:child_process';
import { verify } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  createSoftHsm,
  createTestKey,
  describeWithSoftHsm,
  softHsmModulePath,
  userPin,
  type SoftHsm,
} from './softhsm.js';

const key = createTestKey();
let hsm: SoftHsm;

const script = `
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const native = Object.getPrototypeOf(require('pkcs11js').PKCS11.prototype);
const calls = { C_Initialize: 0, C_Finalize: 0, C_Login: 0 };
for (const name of Object.keys(calls)) {
  const original = native[name];
  native[name] = function (...args) {
    calls[name] += 1;
    return original.apply(this, args);
  };
}

const esm = await import(pathToFileURL('./dist/pkcs11.js').href);
const cjs = require('./dist/pkcs11.cjs');
const events = [];
const options = { pin: process.env.TEST_PIN, onEvent: (event) => events.push(event) };
const fromEsm = await esm.createPkcs11Signer(process.env.TEST_URI, options);
const fromCjs = await cjs.createPkcs11Signer(process.env.TEST_URI, options);

const registry = globalThis[Symbol.for('kms-jwt-signer.pkcs11.modules.v1')];
const entry = [...registry.modules.values()][0];
const input = Buffer.from('dual.build');
const result = {
  twoCopies: esm.createPkcs11Signer !== cjs.createPkcs11Signer,
  modules: registry.modules.size,
  users: entry.users,
  tokens: entry.tokens.size,
  esmSignature: Buffer.from(await fromEsm.sign(input)).toString('base64url'),
  cjsSignature: Buffer.from(await fromCjs.sign(input)).toString('base64url'),
};
await fromEsm.close();
result.finalizesAfterFirstClose = calls.C_Finalize;
await fromCjs.close();
result.modulesAfterClose = registry.modules.size;
result.calls = calls;
result.events = events.map((event) => event.code);
console.log(JSON.stringify(result));
`;

describeWithSoftHsm('pkcs11 ESM and CJS builds together', () => {
  let result: Record<string, unknown>;

  beforeAll(() => {
    hsm = createSoftHsm();
    hsm.createToken('dual-build');
    hsm.importPem('dual-build', key.pem, { label: 'siwa', id: '01' });
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      env: {
        ...process.env,
        TEST_PIN: userPin,
        TEST_URI: `pkcs11:token=dual-build;object=siwa?module-path=${softHsmModulePath}`,
      },
    });
    result = JSON.parse(output) as Record<string, unknown>;
  });

  afterAll(() => hsm?.remove());

  it('are two copies of the adapter', () => {
    expect(result.twoCopies).toBe(true);
  });

  it('share one module entry and one login', () => {
    expect(result.modules).toBe(1);
    expect(result.users).toBe(2);
    expect(result.tokens).toBe(1);
    expect(result.calls).toMatchObject({ C_Initialize: 1, C_Login: 1 });
    expect(result.events).not.toContain('module-already-initialized');
  });

  it('both sign with the token key', () => {
    const input = Buffer.from('dual.build');
    for (const name of ['esmSignature', 'cjsSignature']) {
      const signature = Buffer.from(result[name] as string, 'base64url');
      const publicKey = { key: key.publicKey, dsaEncoding: 'ieee-p1363' as const };
      expect(verify('sha256', input, publicKey, signature)).toBe(true);
    }
  });

  it('finalise once, after the last close', () => {
    expect(result.finalizesAfterFirstClose).toBe(0);
    expect(result.calls).toMatchObject({ C_Finalize: 1 });
    expect(result.modulesAfterClose).toBe(0);
  });
});
