/**
 * RFC 7638 thumbprints and JWKs of keys whose x or y coordinate starts with a zero byte. RFC 7518
 * §6.2.1.2 requires the full 32-byte coordinate, so a JWK that dropped the zero would name
 * another key. Both the library and `kms-jwt public-key` are compared with jose.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jwkThumbprint, publicKeyToJwk } from '../../src/jwk.js';
import { buildIfStale, runCli } from './support.js';

interface ShortKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** Generates keys until one has a coordinate whose first byte is zero (about 1 key in 256). */
function createKeyWithLeadingZero(coordinate: 'x' | 'y'): ShortKey {
  for (;;) {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const raw = pair.publicKey.export({ format: 'der', type: 'spki' }).subarray(-65);
    const first = coordinate === 'x' ? raw[1] : raw[33];
    if (first === 0) return pair;
  }
}

const keys = { x: createKeyWithLeadingZero('x'), y: createKeyWithLeadingZero('y') };
let folder: string;

beforeAll(() => {
  buildIfStale();
  folder = mkdtempSync(join(tmpdir(), 'kms-jwt-short-'));
});

afterAll(() => rmSync(folder, { recursive: true, force: true }));

describe('JWK with a leading zero', () => {
  it.each(['x', 'y'] as const)('keeps 32 bytes of %s', async (coordinate) => {
    const { publicKey } = keys[coordinate];
    const jwk = publicKeyToJwk(publicKey);

    expect(Buffer.from(jwk[coordinate], 'base64url')).toHaveLength(32);
    expect(Buffer.from(jwk[coordinate], 'base64url')[0]).toBe(0);
    expect(jwkThumbprint(publicKey)).toBe(
      await calculateJwkThumbprint(await exportJWK(publicKey), 'sha256'),
    );
  });

  it.each(['x', 'y'] as const)('matches jose in the CLI for %s', async (coordinate) => {
    const { privateKey, publicKey } = keys[coordinate];
    const path = join(folder, `${coordinate}.p8`);
    writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const expected = await calculateJwkThumbprint(await exportJWK(publicKey), 'sha256');

    const run = await runCli(['public-key', '--key', path, '--format', 'jwk']);
    const jwk = JSON.parse(run.stdout) as Record<string, string>;

    expect(run.code).toBe(0);
    expect(await calculateJwkThumbprint(jwk, 'sha256')).toBe(expected);
    expect(run.stderr).toBe(`kms-jwt: thumbprint: ${expected}\n`);
  });
});
