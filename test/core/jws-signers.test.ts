/**
 * signJwt with misbehaving signers: a getPublicKey that throws or returns something other than a
 * KeyObject, many calls at once where half the signers use the wrong key, and a payload of
 * megabytes. No call may return a token that independent verifiers reject.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { compactVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { signJwt } from '../../src/jws.js';
import type { Signer } from '../../src/signer.js';

const rightKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const otherKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const header = { alg: 'ES256' as const, kid: 'ABC123DEFG' };

function createSigner(
  signingKey: KeyObject,
  getPublicKey: Signer['getPublicKey'],
  keyId = 'test:misbehaving',
): Signer {
  return {
    keyId,
    async sign(signingInput) {
      // A real backend answers later than at once, so concurrent calls interleave.
      await new Promise((resolve) => setImmediate(resolve));
      return sign('sha256', signingInput, { key: signingKey, dsaEncoding: 'ieee-p1363' });
    },
    getPublicKey,
  };
}

async function outcomeOf(promise: Promise<string>): Promise<string> {
  try {
    return await promise;
  } catch (error) {
    return `error:${String((error as { code?: unknown }).code ?? (error as Error).message)}`;
  }
}

describe('signJwt getPublicKey failures', () => {
  it('passes on an error from getPublicKey', async () => {
    const signer = createSigner(rightKeys.privateKey, async () => {
      throw new Error('key service unavailable');
    });

    await expect(signJwt(signer, { header, payload: {} })).rejects.toThrow(
      'key service unavailable',
    );
  });

  it.each([
    ['a PEM string', () => rightKeys.publicKey.export({ type: 'spki', format: 'pem' })],
    ['a JWK object', () => rightKeys.publicKey.export({ format: 'jwk' })],
    ['undefined', () => undefined],
    [
      'an object shaped like a P-256 KeyObject',
      () => ({
        asymmetricKeyType: 'ec',
        asymmetricKeyDetails: { namedCurve: 'prime256v1' },
      }),
    ],
  ])('rejects %s as the public key', async (_name, value) => {
    const signer = createSigner(rightKeys.privateKey, async () => value() as never);
    const error = await signJwt(signer, { header, payload: {} }).catch((caught: Error) => caught);

    expect((error as { code?: unknown }).code).toBe('ERR_KEY_NOT_P256');
    expect((error as Error).message).toMatch(/is not a KeyObject/);
  });

  it('accepts the private KeyObject as the public key', async () => {
    const signer = createSigner(rightKeys.privateKey, async () => rightKeys.privateKey);
    const token = await signJwt(signer, { header, payload: { sub: 'x' } });

    await expect(compactVerify(token, rightKeys.publicKey)).resolves.toBeDefined();
  });
});

describe('signJwt under load', () => {
  it('keeps 200 concurrent calls apart', async () => {
    const calls = Array.from({ length: 200 }, (_, index) => {
      const wrong = index % 2 === 1;
      const signer = createSigner(
        wrong ? otherKeys.privateKey : rightKeys.privateKey,
        async () => rightKeys.publicKey,
        `test:call-${index}`,
      );
      return outcomeOf(signJwt(signer, { header, payload: { index } }));
    });
    const outcomes = await Promise.all(calls);

    for (const [index, outcome] of outcomes.entries()) {
      if (index % 2 === 1) {
        expect(outcome).toBe('error:ERR_SIGNATURE_VERIFY_FAILED');
        continue;
      }
      const { payload } = await compactVerify(outcome, rightKeys.publicKey);
      expect(JSON.parse(Buffer.from(payload).toString('utf8'))).toEqual({ index });
    }
  });

  it('signs a 5 MB payload', async () => {
    const signer = createSigner(rightKeys.privateKey, async () => rightKeys.publicKey);
    const payload = { blob: 'x'.repeat(5 * 1024 * 1024) };
    const token = await signJwt(signer, { header, payload });
    const verified = await compactVerify(token, rightKeys.publicKey);

    expect(Buffer.from(verified.payload).length).toBe(JSON.stringify(payload).length);
  });
});
