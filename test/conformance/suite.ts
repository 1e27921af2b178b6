/**
 * The adapter conformance suite: the same scenarios against every signer. Each adapter's test
 * file calls `describeSignerConformance` with a setup that returns a ready signer and the public
 * key it must match. Tokens are checked by jose, jsonwebtoken and node:crypto, which nobody here
 * wrote, as well as by this package's own verifier.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { compactVerify, importSPKI, jwtVerify } from 'jose';
import jsonwebtoken from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isValidSignature, signJwt } from '../../src/jws.js';
import type { Signer } from '../../src/signer.js';

/** What an adapter's setup hands the suite. */
export interface ConformanceFixture {
  signer: Signer;
  /** The public key the backend really holds, taken from the key material the test created. */
  expectedPublicKey: KeyObject;
  /** Stops servers and releases the signer. */
  close(): Promise<void>;
}

const frozenNow = 1_767_225_600; // 2026-01-01T00:00:00Z

function clientSecretParts(kid: string) {
  return {
    header: { alg: 'ES256' as const, kid },
    payload: {
      iss: 'TEAMAAAA11',
      iat: frozenNow - 30,
      exp: frozenNow + 86_400,
      aud: 'https://appleid.apple.com',
      sub: 'com.example.web',
    },
  };
}

async function verifyWithIndependentVerifiers(token: string, publicKey: KeyObject) {
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const joseKey = await importSPKI(pem, 'ES256');
  const { payload } = await jwtVerify(token, joseKey, {
    algorithms: ['ES256'],
    currentDate: new Date(frozenNow * 1000),
    audience: 'https://appleid.apple.com',
    issuer: 'TEAMAAAA11',
  });
  const decoded = jsonwebtoken.verify(token, pem, {
    algorithms: ['ES256'],
    clockTimestamp: frozenNow,
  }) as Record<string, unknown>;

  const [header, body, signature] = token.split('.') as [string, string, string];
  const rawSignature = Buffer.from(signature, 'base64url');
  const nodeValid = verify(
    'sha256',
    Buffer.from(`${header}.${body}`),
    { key: publicKey, dsaEncoding: 'ieee-p1363' },
    rawSignature,
  );
  return { payload, decoded, rawSignature, nodeValid };
}

/** Registers the conformance scenarios for one adapter. */
export function describeSignerConformance(
  name: string,
  setup: () => Promise<ConformanceFixture>,
): void {
  describe(`${name} conformance`, () => {
    let fixture: ConformanceFixture;

    beforeAll(async () => {
      fixture = await setup();
    });

    afterAll(async () => {
      await fixture?.close();
    });

    it('public key matches the backend key', async () => {
      const publicKey = await fixture.signer.getPublicKey();
      const expected = fixture.expectedPublicKey.export({ format: 'jwk' });
      expect(publicKey.export({ format: 'jwk' })).toEqual(expected);
    });

    it('sign returns 64 bytes that verify', async () => {
      const input = Buffer.from('eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJURUFNQUFBQTExIn0');
      const signature = await fixture.signer.sign(input);
      expect(signature).toBeInstanceOf(Uint8Array);
      expect(signature.length).toBe(64);
      expect(isValidSignature(fixture.expectedPublicKey, input, signature)).toBe(true);
    });

    it('token verifies with jose, jsonwebtoken and node:crypto', async () => {
      const parts = clientSecretParts('KEYBBBB222');
      const token = await signJwt(fixture.signer, parts);
      const checked = await verifyWithIndependentVerifiers(token, fixture.expectedPublicKey);

      expect(checked.payload).toEqual(parts.payload);
      expect(checked.decoded).toEqual(parts.payload);
      expect(checked.rawSignature.length).toBe(64);
      expect(checked.nodeValid).toBe(true);
    });

    it('token header and claims survive exactly', async () => {
      const parts = clientSecretParts('KEYBBBB222');
      const token = await signJwt(fixture.signer, parts);
      const [header, body] = token.split('.') as [string, string];
      expect(JSON.parse(Buffer.from(header, 'base64url').toString())).toEqual(parts.header);
      expect(JSON.parse(Buffer.from(body, 'base64url').toString())).toEqual(parts.payload);
      expect(token).not.toMatch(/=/);
    });

    it('twenty signatures all verify', async () => {
      // Twenty tries make it near certain that short r or s values (1 in 256 each) turn up.
      const parts = clientSecretParts('KEYBBBB222');
      const tokens = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          signJwt(fixture.signer, { ...parts, payload: { ...parts.payload, jti: String(i) } }),
        ),
      );
      const pem = fixture.expectedPublicKey.export({ type: 'spki', format: 'pem' }).toString();
      for (const token of tokens) {
        const { payload } = await compactVerify(token, createPublicKey(pem));
        expect(JSON.parse(Buffer.from(payload).toString()).iss).toBe('TEAMAAAA11');
      }
    });

    it('aborted signal rejects before signing', async () => {
      const controller = new AbortController();
      controller.abort();
      await expect(
        signJwt(fixture.signer, clientSecretParts('KEYBBBB222'), { signal: controller.signal }),
      ).rejects.toThrow();
    });
  });
}
