/**
 * signJwt checks the JSON it serialises, not only the objects it was given. A header or claims
 * object whose JSON differs from its own fields (a `toJSON` method, a getter, an array or a
 * Date) must never reach the signer. Otherwise the token would carry a header without
 * `alg: "ES256"`, or claims that are not a JSON object.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signJwt, type JwtParts } from '../../src/jws.js';
import type { Signer } from '../../src/signer.js';

const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });

function createCountingSigner(): Signer & { signCalls: number } {
  const signer = {
    keyId: 'test:serialisation',
    signCalls: 0,
    async sign(signingInput: Uint8Array) {
      signer.signCalls += 1;
      return sign('sha256', signingInput, { key: keys.privateKey, dsaEncoding: 'ieee-p1363' });
    },
    async getPublicKey() {
      return keys.publicKey;
    },
  };
  return signer;
}

function headerWithChangingAlg(): Record<string, unknown> {
  let reads = 0;
  return {
    get alg() {
      reads += 1;
      return reads === 1 ? 'ES256' : 'HS256';
    },
  };
}

const payload = { iss: 'DEF123GHIJ', iat: 1_767_225_600 };

const rejectedHeaders: Array<[string, () => unknown]> = [
  ['toJSON returning alg none', () => ({ alg: 'ES256', toJSON: () => ({ alg: 'none' }) })],
  ['toJSON returning undefined', () => ({ alg: 'ES256', toJSON: () => undefined })],
  ['an array with an alg property', () => Object.assign([], { alg: 'ES256' })],
  ['a getter that changes alg', headerWithChangingAlg],
];

const rejectedPayloads: Array<[string, () => unknown]> = [
  ['a Date', () => new Date(0)],
  ['toJSON returning a string', () => ({ toJSON: () => 'claims' })],
  ['toJSON returning an array', () => ({ toJSON: () => [1, 2] })],
  ['toJSON returning undefined', () => ({ toJSON: () => undefined })],
  ['a BigInt claim', () => ({ iat: 1n })],
];

describe('signJwt serialised header', () => {
  it.each(rejectedHeaders)('rejects %s', async (_name, makeHeader) => {
    const signer = createCountingSigner();
    const parts = { header: makeHeader(), payload } as unknown as JwtParts;
    const error = await signJwt(signer, parts).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/header/);
    expect(signer.signCalls).toBe(0);
  });

  it('keeps a header with extra fields', async () => {
    const token = await signJwt(createCountingSigner(), {
      header: { alg: 'ES256', kid: 'ABC123DEFG', typ: 'JWT' },
      payload,
    });
    const header = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8'));

    expect(header).toEqual({ alg: 'ES256', kid: 'ABC123DEFG', typ: 'JWT' });
  });
});

describe('signJwt serialised claims', () => {
  it.each(rejectedPayloads)('rejects %s', async (_name, makePayload) => {
    const signer = createCountingSigner();
    const parts = { header: { alg: 'ES256' }, payload: makePayload() } as unknown as JwtParts;
    const error = await signJwt(signer, parts).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/payload/);
    expect(signer.signCalls).toBe(0);
  });

  it('keeps toJSON that returns an object', async () => {
    const token = await signJwt(createCountingSigner(), {
      header: { alg: 'ES256' },
      payload: { toJSON: () => ({ sub: 'com.example.web' }) },
    });
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));

    expect(claims).toEqual({ sub: 'com.example.web' });
  });
});
