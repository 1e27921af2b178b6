/**
 * Helpers for the Apple token tests: a throwaway P-256 key behind the local signer, a frozen
 * clock, independent verification with jose and jsonwebtoken, and a check of a token's header
 * and claims against its kind's profile.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { importSPKI, jwtVerify } from 'jose';
import jsonwebtoken from 'jsonwebtoken';
import { expect } from 'vitest';
import { createPemSigner } from '../../adapters/pem/index.js';
import { appleTokenProfiles } from '../../src/apple/index.js';
import type { AppleTokenKind } from '../../src/apple/types.js';
import type { Signer, SignerEvent } from '../../src/signer.js';

/** 2026-01-01T00:00:00Z, the frozen clock of every Apple token test, in seconds. */
export const nowSeconds = 1_767_225_600;
export const now = (): number => nowSeconds * 1000;
export const day = 86_400;

export const teamId = 'DEF123GHIJ';
export const keyId = 'ABC123DEFG';
export const issuerId = '57246542-96fe-1a63-e053-0824d011072a';
export const businessClientId = 'BUSINESSAPI.0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f';
export const businessKeyId = 'd136aa66-0c3b-4bd4-9892-c20e8db024ab';

/** A throwaway key and the local signer over it. */
export interface TestKey {
  signer: Signer;
  publicKey: KeyObject;
  publicPem: string;
}

/** Generates a P-256 key and wraps it in the local PEM signer. */
export async function createTestKey(): Promise<TestKey> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  const signer = await createPemSigner({ pem });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return { signer, publicKey, publicPem };
}

/**
 * Verifies `token` with jose and with jsonwebtoken at the frozen clock, and returns the header
 * and claims jose decoded.
 */
export async function verifyIndependently(
  token: string,
  publicPem: string,
  atSeconds = nowSeconds,
): Promise<{ header: Record<string, unknown>; claims: Record<string, unknown> }> {
  const joseKey = await importSPKI(publicPem, 'ES256');
  const verified = await jwtVerify(token, joseKey, {
    algorithms: ['ES256'],
    currentDate: new Date(atSeconds * 1000),
  });

  const decoded = jsonwebtoken.verify(token, publicPem, {
    algorithms: ['ES256'],
    clockTimestamp: atSeconds,
  });
  expect(decoded).toEqual(verified.payload);
  return {
    header: verified.protectedHeader as Record<string, unknown>,
    claims: verified.payload as Record<string, unknown>,
  };
}

/**
 * Asserts that a header and claims set follow the kind's profile: the header has exactly the
 * profile's fields, every required claim is present, and no claim is outside the profile.
 */
export function expectFollowsProfile(
  kind: AppleTokenKind,
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
): void {
  const profile = appleTokenProfiles[kind];
  expect(Object.keys(header)).toEqual(profile.headerFields);
  for (const name of profile.requiredClaims) expect(claims).toHaveProperty(name);
  for (const name of Object.keys(claims)) expect(profile.claimFields).toContain(name);
  expect(header.alg).toBe('ES256');
  expect(Number.isInteger(claims.iat)).toBe(true);
  if (claims.exp !== undefined) expect(Number.isInteger(claims.exp)).toBe(true);
}

/** Collects the events a mint sends to `onEvent`. */
export function eventLog(): { events: SignerEvent[]; onEvent: (event: SignerEvent) => void } {
  const events: SignerEvent[] = [];
  return { events, onEvent: (event) => events.push(event) };
}

/** Lists the rules of the warning events in `events`. */
export function warningRules(events: SignerEvent[]): string[] {
  return events.filter((event) => event.type === 'warning').map((event) => String(event.rule));
}

/** Runs `action` and returns the error it rejects with, failing when it resolves. */
export async function rejection(action: () => Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await action();
  } catch (error) {
    return error as Record<string, unknown>;
  }
  throw new Error('expected a rejection, but the call resolved');
}
