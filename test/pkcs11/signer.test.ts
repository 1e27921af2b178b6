// The PKCS#11 signer against a real SoftHSM2 token: the conformance suite, concurrency, public
// keys from the token or the caller, session recovery and module sharing.
import { createPublicKey, verify } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPkcs11Signer } from '../../adapters/pkcs11/index.js';
import { moduleRegistry } from '../../adapters/pkcs11/module.js';
import { signJwt } from '../../src/jws.js';
import { createSigner } from '../../src/key-uri.js';
import type { SignerEvent } from '../../src/signer.js';
import { describeSignerConformance } from '../conformance/suite.js';
import {
  createSoftHsm,
  createTestKey,
  describeWithSoftHsm,
  softHsmModulePath,
  userPin,
  type SoftHsm,
} from './softhsm.js';

const keys = { main: createTestKey(), noPublic: createTestKey(), other: createTestKey() };
let hsm: SoftHsm;

function uriFor(object: string, id: string): string {
  return `pkcs11:token=signer-tests;object=${object};id=%${id}?module-path=${softHsmModulePath}`;
}

const options = { pin: userPin };

describeWithSoftHsm('pkcs11 signer', () => {
  beforeAll(() => {
    hsm = createSoftHsm();
    hsm.createToken('signer-tests');
    hsm.importPem('signer-tests', keys.main.pem, { label: 'siwa', id: '01' });
    hsm.importPem('signer-tests', keys.noPublic.pem, {
      label: 'bare',
      id: '02',
      noPublicKey: true,
    });
    hsm.importPem('signer-tests', keys.other.pem, { label: 'other', id: '03' });
  });

  afterAll(() => {
    // The folder goes even when a test left a signer open, which the check then reports.
    const openModules = moduleRegistry().modules.size;
    hsm?.remove();
    expect(openModules).toBe(0);
  });

  describeSignerConformance('pkcs11', async () => {
    const signer = await createPkcs11Signer(uriFor('siwa', '01'), options);
    return { signer, expectedPublicKey: keys.main.publicKey, close: () => signer.close() };
  });

  it('100 concurrent signs all verify', async () => {
    const signer = await createPkcs11Signer(uriFor('siwa', '01'), options);
    const inputs = Array.from({ length: 100 }, (_, i) => Buffer.from(`header.payload-${i}`));
    const signatures = await Promise.all(inputs.map((input) => signer.sign(input)));
    await signer.close();

    for (const [i, signature] of signatures.entries()) {
      expect(signature.length).toBe(64);
      const key = { key: keys.main.publicKey, dsaEncoding: 'ieee-p1363' as const };
      expect(verify('sha256', inputs[i]!, key, signature)).toBe(true);
    }
  });

  it('pool caps open sessions at maxSessions', async () => {
    const signer = await createPkcs11Signer(uriFor('siwa', '01'), { ...options, maxSessions: 2 });
    const binding = [...moduleRegistry().modules.values()][0]!.binding as unknown as Record<
      string,
      (...args: unknown[]) => unknown
    >;
    let open = 0;
    let peak = 0;
    const realSign = binding.C_SignAsync!;
    binding.C_SignAsync = async (...args: unknown[]) => {
      open += 1;
      peak = Math.max(peak, open);
      try {
        return await realSign.apply(binding, args);
      } finally {
        open -= 1;
      }
    };

    await Promise.all(Array.from({ length: 20 }, (_, i) => signer.sign(Buffer.from(`x${i}`))));
    binding.C_SignAsync = realSign;
    await signer.close();
    expect(peak).toBe(2);
  });

  it('createSigner routes pkcs11: references here', async () => {
    const signer = await createSigner(uriFor('siwa', '01'), options);
    const token = await signJwt(signer, { header: { alg: 'ES256' }, payload: { iss: 'T' } });
    await signer.close?.();
    const [header, body, signature] = token.split('.') as [string, string, string];
    const key = { key: keys.main.publicKey, dsaEncoding: 'ieee-p1363' as const };
    const input = Buffer.from(`${header}.${body}`);
    expect(verify('sha256', input, key, Buffer.from(signature, 'base64url'))).toBe(true);
  });

  it('keyId has no PIN or query part', async () => {
    const signer = await createPkcs11Signer(`${uriFor('siwa', '01')}&pin-value=${userPin}`);
    expect(signer.keyId).toBe('pkcs11:token=signer-tests;object=siwa;id=%01');
    await signer.close();
  });

  it('pin-value works with a warning event', async () => {
    const events: SignerEvent[] = [];
    const signer = await createPkcs11Signer(`${uriFor('siwa', '01')}&pin-value=${userPin}`, {
      onEvent: (event) => events.push(event),
    });
    await signer.sign(Buffer.from('a.b'));
    await signer.close();
    expect(events.map((e) => e.code)).toEqual(['pin-value-in-uri']);
    expect(JSON.stringify(events)).not.toContain(userPin);
  });

  it('missing public-key object without a supplied key', async () => {
    const signer = await createPkcs11Signer(uriFor('bare', '02'), options);
    const signature = await signer.sign(Buffer.from('a.b'));
    expect(signature.length).toBe(64);
    await expect(signer.getPublicKey()).rejects.toMatchObject({
      code: 'ERR_PKCS11_PUBLIC_KEY_MISSING',
      message: expect.stringContaining('publicKey option'),
    });
    await expect(
      signJwt(signer, { header: { alg: 'ES256' }, payload: { iss: 'T' } }),
    ).rejects.toMatchObject({ code: 'ERR_PKCS11_PUBLIC_KEY_MISSING' });
    await signer.close();
  });

  it('missing public-key object with a supplied PEM key', async () => {
    const pem = keys.noPublic.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const signer = await createPkcs11Signer(uriFor('bare', '02'), { ...options, publicKey: pem });
    const publicKey = await signer.getPublicKey();
    expect(publicKey.export({ format: 'jwk' })).toEqual(
      keys.noPublic.publicKey.export({ format: 'jwk' }),
    );
    const token = await signJwt(signer, { header: { alg: 'ES256' }, payload: { iss: 'T' } });
    expect(token.split('.')).toHaveLength(3);
    await signer.close();
  });

  it('supplied key that disagrees with the token', async () => {
    const attempt = createPkcs11Signer(uriFor('siwa', '01'), {
      ...options,
      publicKey: keys.other.publicKey,
    });
    await expect(attempt).rejects.toMatchObject({ code: 'ERR_PKCS11_PUBLIC_KEY_MISMATCH' });
  });

  it('supplied key of the wrong curve', async () => {
    const attempt = createPkcs11Signer(uriFor('bare', '02'), {
      ...options,
      publicKey: createTestKey('p384').publicKey,
    });
    await expect(attempt).rejects.toMatchObject({ code: 'ERR_PKCS11_PUBLIC_KEY_INVALID' });
  });

  it('signer with the wrong public key fails signJwt', async () => {
    // The supplied key belongs to another private key, so the core's check must reject the token.
    const signer = await createPkcs11Signer(uriFor('bare', '02'), {
      ...options,
      publicKey: keys.other.publicKey,
    });
    await expect(
      signJwt(signer, { header: { alg: 'ES256' }, payload: { iss: 'T' } }),
    ).rejects.toMatchObject({ code: 'ERR_SIGNATURE_VERIFY_FAILED' });
    await signer.close();
  });

  it('recovers after all sessions were closed', async () => {
    const events: SignerEvent[] = [];
    const signer = await createPkcs11Signer(uriFor('siwa', '01'), {
      ...options,
      onEvent: (event) => events.push(event),
    });
    await signer.sign(Buffer.from('warm.up'));
    const entry = [...moduleRegistry().modules.values()][0]!;
    const token = [...entry.tokens.values()][0]!;
    // C_CloseAllSessions is not in the adapter's binding surface, so reach the full binding.
    (entry.binding as unknown as { C_CloseAllSessions(slot: Buffer): void }).C_CloseAllSessions(
      token.slot,
    );

    const input = Buffer.from('after.close');
    const signature = await signer.sign(input);
    const key = { key: keys.main.publicKey, dsaEncoding: 'ieee-p1363' as const };
    expect(verify('sha256', input, key, signature)).toBe(true);
    expect(events.filter((e) => e.type === 'retry')).toHaveLength(1);
    expect(events[0]!.reason).toMatch(
      /^CKR_(SESSION_HANDLE_INVALID|SESSION_CLOSED|USER_NOT_LOGGED_IN)$/,
    );
    await signer.close();
  });

  it('recovers after the token logged out', async () => {
    const events: SignerEvent[] = [];
    const signer = await createPkcs11Signer(uriFor('siwa', '01'), {
      ...options,
      onEvent: (event) => events.push(event),
    });
    await signer.sign(Buffer.from('warm.up'));
    const entry = [...moduleRegistry().modules.values()][0]!;
    const token = [...entry.tokens.values()][0]!;
    (entry.binding as unknown as { C_Logout(session: Buffer): void }).C_Logout(token.anchor!);

    const signature = await signer.sign(Buffer.from('after.logout'));
    expect(signature.length).toBe(64);
    expect(events.filter((e) => e.type === 'retry')).toHaveLength(1);
    await signer.close();
  });

  it('signers share one module and one login', async () => {
    const first = await createPkcs11Signer(uriFor('siwa', '01'), options);
    const second = await createPkcs11Signer(uriFor('other', '03'), options);
    const entry = [...moduleRegistry().modules.values()][0]!;
    expect(moduleRegistry().modules.size).toBe(1);
    expect(entry.users).toBe(2);
    expect(entry.tokens.size).toBe(1);

    await first.close();
    expect(entry.users).toBe(1);
    expect((await second.sign(Buffer.from('still.works'))).length).toBe(64);
    await second.close();
    expect(moduleRegistry().modules.size).toBe(0);
  });

  it('second signer with another PIN is rejected', async () => {
    const first = await createPkcs11Signer(uriFor('siwa', '01'), options);
    const attempt = createPkcs11Signer(uriFor('other', '03'), { pin: 'not-the-pin' });
    await expect(attempt).rejects.toMatchObject({ code: 'ERR_PKCS11_PIN_MISMATCH' });
    await first.close();
  });

  it('closed signer rejects sign', async () => {
    const signer = await createPkcs11Signer(uriFor('siwa', '01'), options);
    await signer.close();
    await signer.close();
    await expect(signer.sign(Buffer.from('a.b'))).rejects.toMatchObject({
      code: 'ERR_PKCS11_SIGNER_CLOSED',
    });
  });

  it('close waits for signs in flight', async () => {
    const signer = await createPkcs11Signer(uriFor('siwa', '01'), options);
    const pending = Array.from({ length: 10 }, (_, i) => signer.sign(Buffer.from(`f${i}`)));
    const closed = signer.close();
    const results = await Promise.allSettled(pending);
    await closed;
    const fulfilled = results.filter((r) => r.status === 'fulfilled');
    // Signs that had a session finish; signs still waiting for one are rejected as closed.
    for (const result of results) {
      if (result.status === 'rejected') {
        expect(result.reason).toMatchObject({ code: 'ERR_PKCS11_SIGNER_CLOSED' });
      }
    }
    expect(fulfilled.length).toBeGreaterThan(0);
    expect(moduleRegistry().modules.size).toBe(0);
  });

  it('aborted sign has a coded error', async () => {
    const signer = await createPkcs11Signer(uriFor('siwa', '01'), options);
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await expect(
      signer.sign(Buffer.from('a.b'), { signal: controller.signal }),
    ).rejects.toMatchObject({ code: 'ERR_PKCS11_ABORTED' });
    await expect(signer.getPublicKey({ signal: controller.signal })).rejects.toMatchObject({
      code: 'ERR_PKCS11_ABORTED',
      cause: controller.signal.reason,
    });
    await signer.close();
  });

  it('public key from the token is the imported one', async () => {
    const signer = await createPkcs11Signer(uriFor('other', '03'), options);
    const refreshed = await signer.getPublicKey({ refresh: true });
    const expected = createPublicKey(keys.other.pem).export({ format: 'jwk' });
    expect(refreshed.export({ format: 'jwk' })).toEqual(expected);
    await signer.close();
  });
});
