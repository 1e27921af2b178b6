/**
 * signJwt: compact serialisation, the ES256-only and 64-byte checks, and the verify-after-sign
 * step with its single refresh. Test signers are built on node:crypto keys made here, and jose
 * checks the tokens independently.
 */
import { createHash, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { compactVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import * as root from '../../src/index.js';
import { markTrustedLocalSigner } from '../../src/internal.js';
import { signJwt } from '../../src/jws.js';
import type { GetPublicKeyOptions, Signer, SignerEvent } from '../../src/signer.js';

const rightKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const otherKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });

const header = { alg: 'ES256' as const, kid: 'ABC123DEFG' };
// `sub` encodes to bytes that standard base64 writes as '+' and '/', and both parts need padding.
const payload = { iss: 'TEAMAAAA11', iat: 1_767_225_570, sub: '~~~??>' };
const expectedHeader = 'eyJhbGciOiJFUzI1NiIsImtpZCI6IkFCQzEyM0RFRkcifQ';
const expectedPayload = 'eyJpc3MiOiJURUFNQUFBQTExIiwiaWF0IjoxNzY3MjI1NTcwLCJzdWIiOiJ-fn4_Pz4ifQ';

interface TestSigner extends Signer {
  signCalls: number;
  keyRequests: GetPublicKeyOptions[];
}

/** Builds a signer over node:crypto. `keys` lists the public keys returned, in order. */
function createTestSigner(options: {
  keys?: KeyObject[];
  signWith?: (signingInput: Uint8Array) => Uint8Array;
}): TestSigner {
  const keys = options.keys ?? [rightKeys.publicKey];
  const signer: TestSigner = {
    keyId: 'test:signer',
    signCalls: 0,
    keyRequests: [],
    async sign(signingInput) {
      signer.signCalls += 1;
      if (options.signWith) return options.signWith(signingInput);
      return sign('sha256', signingInput, {
        key: rightKeys.privateKey,
        dsaEncoding: 'ieee-p1363',
      });
    },
    async getPublicKey(request = {}) {
      signer.keyRequests.push(request);
      const index = Math.min(signer.keyRequests.length - 1, keys.length - 1);
      return keys[index]!;
    },
  };
  return signer;
}

async function codeOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return (error as { code?: unknown }).code ?? error;
  }
  return 'resolved';
}

function signatureVerifies(token: string, publicKey: KeyObject): boolean {
  const [encodedHeader, encodedPayload, signature] = token.split('.') as [string, string, string];
  return verify(
    'sha256',
    Buffer.from(`${encodedHeader}.${encodedPayload}`),
    { key: publicKey, dsaEncoding: 'ieee-p1363' },
    Buffer.from(signature, 'base64url'),
  );
}

describe('signJwt serialisation', () => {
  it('uses base64url without padding', async () => {
    const token = await signJwt(createTestSigner({}), { header, payload });
    const [encodedHeader, encodedPayload, signature, extra] = token.split('.');

    expect(encodedHeader).toBe(expectedHeader);
    expect(encodedPayload).toBe(expectedPayload);
    expect(signature).toMatch(/^[A-Za-z0-9_-]{86}$/);
    expect(extra).toBeUndefined();
    expect(token).not.toMatch(/[=+/]/);
  });

  it('verifies with jose', async () => {
    const token = await signJwt(createTestSigner({}), { header, payload });
    const { payload: bytes, protectedHeader } = await compactVerify(token, rightKeys.publicKey);
    expect(protectedHeader).toEqual(header);
    expect(JSON.parse(Buffer.from(bytes).toString('utf8'))).toEqual(payload);
  });
});

describe('signJwt input checks', () => {
  it.each([['RS256'], ['none'], ['es256'], ['ES384'], [undefined]])(
    'rejects alg %s with TypeError',
    async (alg) => {
      const signer = createTestSigner({});
      const parts = { header: { alg }, payload } as unknown as Parameters<typeof signJwt>[1];
      await expect(signJwt(signer, parts)).rejects.toThrow(TypeError);
      expect(signer.signCalls).toBe(0);
    },
  );

  it.each([
    ['no parts', undefined],
    ['no header', { payload }],
    ['array payload', { header, payload: [] }],
    ['null payload', { header, payload: null }],
  ])('rejects %s with TypeError', async (_name, parts) => {
    const signer = createTestSigner({});
    await expect(
      signJwt(signer, parts as unknown as Parameters<typeof signJwt>[1]),
    ).rejects.toThrow(TypeError);
  });

  it.each([
    ['a key path', './AuthKey_ABC123DEFG.p8'],
    ['an object without getPublicKey', { keyId: 'x', sign: async () => new Uint8Array(64) }],
    ['nothing', undefined],
  ])('rejects %s as the signer with TypeError', async (_name, signer) => {
    const error = await signJwt(signer as never, { header, payload }).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toContain("await createSigner('file:AuthKey_KEYID.p8')");
  });

  it.each([
    ['63 bytes', () => new Uint8Array(63)],
    ['65 bytes', () => new Uint8Array(65)],
    ['DER', (input: Uint8Array) => sign('sha256', input, rightKeys.privateKey)],
    ['a string', () => 'a'.repeat(64) as unknown as Uint8Array],
  ])('rejects a signature of %s', async (_name, signWith) => {
    const signer = createTestSigner({ signWith });
    const error = await signJwt(signer, { header, payload }).catch((caught: unknown) => caught);
    expect((error as { code?: unknown }).code).toBe('ERR_SIGNATURE_LENGTH');
    expect((error as Error).message).toMatch(/exactly 64 bytes/);
    expect(signer.keyRequests).toHaveLength(0);
  });

  it('rejects an aborted signal before signing', async () => {
    const signer = createTestSigner({});
    const controller = new AbortController();
    const reason = new Error('stopped by the test');
    controller.abort(reason);

    const error = await signJwt(signer, { header, payload }, { signal: controller.signal }).catch(
      (caught: unknown) => caught,
    );
    expect(error).toMatchObject({ code: 'ERR_SIGN_ABORTED', details: { keyId: 'test:signer' } });
    expect((error as Error).cause).toBe(reason);
    expect((error as Error).message).toContain('test:signer');
    expect(signer.signCalls).toBe(0);
    expect(signer.keyRequests).toHaveLength(0);
  });

  it('codes an abort in a token function', async () => {
    const signer = createTestSigner({});
    const controller = new AbortController();
    controller.abort(new Error('stopped by the test'));

    const minting = root.createAppleClientSecret({
      signer,
      teamId: 'DEF123GHIJ',
      clientId: 'com.example.web',
      keyId: 'ABC123DEFG',
      signal: controller.signal,
    });
    await expect(minting).rejects.toMatchObject({ code: 'ERR_SIGN_ABORTED' });
    expect(signer.signCalls).toBe(0);
  });

  it('codes an abort without a reason', async () => {
    const signer = createTestSigner({});
    const controller = new AbortController();
    controller.abort();

    const error = await signJwt(signer, { header, payload }, { signal: controller.signal }).catch(
      (caught: unknown) => caught,
    );
    expect(error).toMatchObject({ code: 'ERR_SIGN_ABORTED' });
    expect((error as Error).cause).toMatchObject({ name: 'AbortError' });
    expect(signer.signCalls).toBe(0);
  });
});

describe('signJwt verify-after-sign', () => {
  it('passes with the right key', async () => {
    const signer = createTestSigner({});
    const events: SignerEvent[] = [];
    const token = await signJwt(signer, { header, payload }, { onEvent: (e) => events.push(e) });

    expect(signatureVerifies(token, rightKeys.publicKey)).toBe(true);
    expect(signer.keyRequests).toEqual([{ signal: undefined }]);
    expect(events).toEqual([]);
  });

  it('refreshes a stale key once', async () => {
    const signer = createTestSigner({ keys: [otherKeys.publicKey, rightKeys.publicKey] });
    const events: SignerEvent[] = [];
    const token = await signJwt(signer, { header, payload }, { onEvent: (e) => events.push(e) });

    expect(signatureVerifies(token, rightKeys.publicKey)).toBe(true);
    expect(signer.keyRequests.map((request) => request.refresh === true)).toEqual([false, true]);
    expect(events).toEqual([{ type: 'refresh', reason: 'verify-failed', keyId: 'test:signer' }]);
  });

  it('fails with the wrong key after one refresh', async () => {
    const signer = createTestSigner({ keys: [otherKeys.publicKey] });
    const events: SignerEvent[] = [];
    const code = await codeOf(
      signJwt(signer, { header, payload }, { onEvent: (e) => events.push(e) }),
    );

    expect(code).toBe('ERR_SIGNATURE_VERIFY_FAILED');
    expect(signer.keyRequests.map((request) => request.refresh === true)).toEqual([false, true]);
    expect(events.filter((event) => event.type === 'refresh')).toHaveLength(1);
  });

  it('names the likely causes', async () => {
    const signer = createTestSigner({ keys: [otherKeys.publicKey] });
    const error = (await signJwt(signer, { header, payload }).catch((e: unknown) => e)) as Error;
    expect(error.message).toMatch(/different key/);
    expect(error.message).toMatch(/hashed an already hashed input/);
    expect(error.message).toMatch(/DER-to-JOSE conversion/);
  });

  it('catches a backend that hashes twice', async () => {
    // The signer sends the digest, and the backend hashes it again before signing.
    const doubleHashing = (signingInput: Uint8Array) => {
      const digest = createHash('sha256').update(signingInput).digest();
      return sign('sha256', digest, { key: rightKeys.privateKey, dsaEncoding: 'ieee-p1363' });
    };
    const signer = createTestSigner({ signWith: doubleHashing });
    expect(await codeOf(signJwt(signer, { header, payload }))).toBe('ERR_SIGNATURE_VERIFY_FAILED');
  });

  it('catches r and s swapped', async () => {
    const swapped = (signingInput: Uint8Array) => {
      const jose = sign('sha256', signingInput, {
        key: rightKeys.privateKey,
        dsaEncoding: 'ieee-p1363',
      });
      return Buffer.concat([jose.subarray(32), jose.subarray(0, 32)]);
    };
    const signer = createTestSigner({ signWith: swapped });
    expect(await codeOf(signJwt(signer, { header, payload }))).toBe('ERR_SIGNATURE_VERIFY_FAILED');
  });

  it('rejects a public key that is not P-256', async () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey;
    const signer = createTestSigner({ keys: [p384] });
    expect(await codeOf(signJwt(signer, { header, payload }))).toBe('ERR_KEY_NOT_P256');
    expect(signer.keyRequests.map((request) => request.refresh === true)).toEqual([false, true]);
  });

  it('refreshes a stale key of another curve', async () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey;
    const signer = createTestSigner({ keys: [p384, rightKeys.publicKey] });
    const token = await signJwt(signer, { header, payload });
    expect(signatureVerifies(token, rightKeys.publicKey)).toBe(true);
  });

  it('returns the bytes it verified', async () => {
    // A signer that reuses its output buffer changes the bytes after returning them. Whenever
    // that happens, signJwt must either fail or return a signature that verifies.
    for (let delay = 0; delay < 12; delay++) {
      let output = Buffer.alloc(0);
      const signer: Signer = {
        keyId: 'test:reused-buffer',
        async sign(signingInput) {
          output = sign('sha256', signingInput, {
            key: rightKeys.privateKey,
            dsaEncoding: 'ieee-p1363',
          });
          return output;
        },
        async getPublicKey() {
          overwriteAfterMicrotasks(() => output.fill(7), delay);
          return rightKeys.publicKey;
        },
      };
      const token = await signJwt(signer, { header, payload }).catch(() => undefined);
      if (token) expect(signatureVerifies(token, rightKeys.publicKey), `delay ${delay}`).toBe(true);
    }
  });
});

function overwriteAfterMicrotasks(overwrite: () => void, count: number): void {
  let remaining = count;
  const step = () => {
    if (remaining-- > 0) queueMicrotask(step);
    else overwrite();
  };
  queueMicrotask(step);
}

describe('signJwt trusted local exemption', () => {
  it('skips verification for a marked signer', async () => {
    const signer = createTestSigner({ keys: [otherKeys.publicKey] });
    markTrustedLocalSigner(signer);
    const token = await signJwt(signer, { header, payload });
    expect(signatureVerifies(token, rightKeys.publicKey)).toBe(true);
    expect(signer.keyRequests).toHaveLength(0);
  });

  it('does not carry over to a copy', async () => {
    const marked = createTestSigner({ keys: [otherKeys.publicKey] });
    markTrustedLocalSigner(marked);
    const copy = { ...marked, sign: marked.sign, getPublicKey: marked.getPublicKey };
    expect(await codeOf(signJwt(copy, { header, payload }))).toBe('ERR_SIGNATURE_VERIFY_FAILED');
  });

  it('has no option that disables it', async () => {
    const signer = createTestSigner({ keys: [otherKeys.publicKey] });
    const options = { verify: false, skipVerify: true, trusted: true } as object;
    expect(await codeOf(signJwt(signer, { header, payload }, options))).toBe(
      'ERR_SIGNATURE_VERIFY_FAILED',
    );
  });

  it('is not exported from the root', () => {
    expect(Object.keys(root)).not.toContain('markTrustedLocalSigner');
    expect(Object.keys(root)).not.toContain('isTrustedLocalSigner');
  });
});

describe('signJwt events and errors', () => {
  it('never carry token text', async () => {
    const events: SignerEvent[] = [];
    const onEvent = (event: SignerEvent) => events.push(event);
    const stale = createTestSigner({ keys: [otherKeys.publicKey, rightKeys.publicKey] });
    const token = await signJwt(stale, { header, payload }, { onEvent });
    const wrong = createTestSigner({ keys: [otherKeys.publicKey] });
    const error = (await signJwt(wrong, { header, payload }, { onEvent }).catch(
      (caught: unknown) => caught,
    )) as Error & { details: unknown };

    expect(events.length).toBe(2);
    const reported = JSON.stringify({ events, message: error.message, details: error.details });
    for (const part of [...token.split('.'), expectedHeader, expectedPayload, 'TEAMAAAA11']) {
      expect(reported).not.toContain(part);
    }
  });

  it('survive a throwing onEvent', async () => {
    const signer = createTestSigner({ keys: [otherKeys.publicKey, rightKeys.publicKey] });
    const onEvent = () => {
      throw new Error('callback failure');
    };
    const token = await signJwt(signer, { header, payload }, { onEvent });
    expect(signatureVerifies(token, rightKeys.publicKey)).toBe(true);
  });
});
