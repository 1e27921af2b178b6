/**
 * Text that a server supplies (gRPC status details, importFailureReason, resource names) reaches
 * error messages and `details` only with its control characters escaped and its length capped.
 * So a hostile endpoint cannot forge log lines or send terminal escapes through it.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { escapeServerText } from '../../adapters/gcp-kms/errors.js';
import { createGcpKmsSigner, importP8ToGcpKms } from '../../adapters/gcp-kms/index.js';
import { signJwt } from '../../src/jws.js';
import type { GcpKmsEmulator, GcpKmsFaults } from '../emulators/gcp-kms/index.js';
import { clientSecretParts, keyRing, rejection, startEmulator } from './support.js';

let kms: GcpKmsEmulator;

beforeAll(async () => {
  kms = await startEmulator();
});

afterAll(async () => {
  await kms.stop();
});

beforeEach(() => {
  kms.reset();
  kms.importJobPendingPolls = 0;
  kms.importPendingPolls = 0;
});

/**
 * Builds a forged log line after CR LF, ANSI escapes (clear screen, set the window title), an
 * 8-bit CSI (C1), a Unicode line separator and a right-to-left override, then padding.
 */
function hostileText(padding: number): string {
  const forged = 'denied\r\n2026-01-01T00:00:00Z INFO token minted for admin';
  const escapes = '\u001b[2J\u001b]0;owned\u0007\u009b31m\u2028\u202egnp.exe\u0000\u007f';
  return `${forged}${escapes}${'A'.repeat(padding)}`;
}

/** Control characters (C0, DEL, C1), line and paragraph separators, and bidi controls. */
const unsafeCharacter =
  // eslint-disable-next-line no-control-regex -- finding control characters is its purpose.
  /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

/** Checks one text taken into a message or `details`: escaped, readable and capped. */
function expectSafe(text: unknown, maxLength: number): void {
  expect(typeof text).toBe('string');
  const value = text as string;
  expect(value).not.toMatch(unsafeCharacter);
  expect(value.length).toBeLessThanOrEqual(maxLength);
  expect(value).toContain('\\u001b[2J');
}

function p256Key() {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

describe('Cloud KMS server text in errors', () => {
  const faults: (keyof GcpKmsFaults)[] = ['permissionDenied', 'failedPrecondition', 'unavailable'];

  for (const fault of faults) {
    it(`escapes status details (${fault})`, async () => {
      const key = kms.createKey({ keyRing });
      const signer = await createGcpKmsSigner(kms.reference(key.versionName), { maxAttempts: 1 });
      (kms.faults[fault] as number) = Infinity;
      kms.faults.statusText = hostileText(2_000);
      const error = await rejection(signJwt(signer, clientSecretParts()));
      await signer.close?.();

      expect(error.code).toMatch(/^ERR_GCP_KMS_/);
      expectSafe(error.message, 1_200);
      expectSafe(error.details!.serverMessage, 320);
      expect(error.message).toContain('INFO token minted for admin');
    });
  }

  it('escapes importFailureReason', async () => {
    const target = `${keyRing}/cryptoKeys/hostile-reason`;
    kms.faults.corruptWrappedKey = 1;
    kms.faults.importFailureReason = hostileText(100_000);
    const error = await rejection(
      importP8ToGcpKms(p256Key(), kms.reference(target), { pollIntervalMs: 5 }),
    );

    expect(error.code).toBe('ERR_GCP_KMS_IMPORT_FAILED');
    expect(error.details!.step).toBe('wait-version');
    expectSafe(error.message, 2_000);
    expectSafe(error.details!.importFailureReason, 320);
  });

  it('escapes status details during import', async () => {
    const target = `${keyRing}/cryptoKeys/hostile-status`;
    kms.faults.deniedMethods = ['ImportCryptoKeyVersion'];
    kms.faults.statusText = hostileText(2_000);
    const error = await rejection(
      importP8ToGcpKms(p256Key(), kms.reference(target), { pollIntervalMs: 5 }),
    );

    expect(error.details!.step).toBe('import-version');
    expectSafe(error.message, 2_000);
  });

  it('escapes a wrong name at set-up', async () => {
    const key = kms.createKey({ keyRing });
    kms.faults.responseName = hostileText(50_000);
    const error = await rejection(
      createGcpKmsSigner(kms.reference(key.versionName), { maxAttempts: 1 }),
    );

    expect(error.code).toBe('ERR_GCP_KMS_INTEGRITY');
    expect(error.details!.check).toBe('name');
    expectSafe(error.message, 1_200);
  });

  it('escapes a wrong name when signing', async () => {
    const key = kms.createKey({ keyRing });
    const signer = await createGcpKmsSigner(kms.reference(key.versionName), { maxAttempts: 1 });
    kms.faults.responseName = hostileText(50_000);
    const error = await rejection(signJwt(signer, clientSecretParts()));
    await signer.close?.();

    expect(error.code).toBe('ERR_GCP_KMS_INTEGRITY');
    expect(error.details!.check).toBe('name');
    expectSafe(error.message, 1_200);
  });
});

describe('escapeServerText', () => {
  const cases: [string, string, string][] = [
    ['line breaks', 'denied\r\nINFO forged', 'denied\\u000d\\u000aINFO forged'],
    ['ANSI escape', '\u001b[31mred', '\\u001b[31mred'],
    ['C1 and DEL', 'a\u009bb\u007fc', 'a\\u009bb\\u007fc'],
    ['separators', 'a\u2028b\u2029c', 'a\\u2028b\\u2029c'],
    ['bidi controls', '\u202eexe.txt\u2066', '\\u202eexe.txt\\u2066'],
    ['tab and NUL', 'a\tb\u0000', 'a\\u0009b\\u0000'],
    ['printable text', 'Clé 日本 "quoted" \\ ok', 'Clé 日本 "quoted" \\ ok'],
  ];
  for (const [name, input, expected] of cases) {
    it(`escapes ${name}`, () => {
      expect(escapeServerText(input)).toBe(expected);
    });
  }

  it('keeps text at the cap', () => {
    const text = 'a'.repeat(300);
    expect(escapeServerText(text)).toBe(text);
  });

  it('cuts text over the cap', () => {
    expect(escapeServerText('a'.repeat(301))).toBe(`${'a'.repeat(300)}...`);
  });

  it('never splits an escape', () => {
    const escaped = escapeServerText(`${'a'.repeat(297)}\u001b`);
    expect(escaped).toBe(`${'a'.repeat(297)}...`);
  });

  it('never splits a surrogate pair', () => {
    const escaped = escapeServerText(`${'a'.repeat(299)}\u{1f600}`);
    expect(escaped).toBe(`${'a'.repeat(299)}...`);
  });

  it('takes a smaller cap', () => {
    expect(escapeServerText('abcdef', 4)).toBe('abcd...');
  });
});
