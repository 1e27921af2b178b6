import { createPublicKey } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale, createTestKey, runCli, type TestKey } from './support.js';

let key: TestKey;
let thumbprint: string;

beforeAll(async () => {
  buildIfStale();
  key = createTestKey();
  thumbprint = await calculateJwkThumbprint(await exportJWK(key.publicKey), 'sha256');
});

afterAll(() => key.remove());

describe('public-key', () => {
  it('prints the SPKI PEM, thumbprint on stderr', async () => {
    const run = await runCli(['public-key', '--key', key.path]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(key.publicPem);
    expect(run.stderr).toBe(`kms-jwt: thumbprint: ${thumbprint}\n`);
  });

  it('prints a one-line JWK with --format jwk', async () => {
    const run = await runCli(['public-key', '--key', key.path, '--format', 'jwk']);
    expect(run.code).toBe(0);
    expect(run.stdout.endsWith('\n')).toBe(true);
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
    const jwk = JSON.parse(run.stdout) as Record<string, string>;
    expect(jwk).toEqual(await exportJWK(key.publicKey));
    expect(jwk).not.toHaveProperty('d');
    expect(createPublicKey({ key: jwk, format: 'jwk' }).equals(key.publicKey)).toBe(true);
    expect(run.stderr).toBe(`kms-jwt: thumbprint: ${thumbprint}\n`);
  });

  it('prints the thumbprint alone with --format thumbprint', async () => {
    const run = await runCli(['public-key', '--key', key.path, '--format', 'thumbprint']);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`${thumbprint}\n`);
    expect(run.stderr).toBe('');
  });

  it('reads an env: reference', async () => {
    const run = await runCli(['public-key', '--key', 'env:THE_KEY', '--format', 'thumbprint'], {
      env: { THE_KEY: key.pem },
    });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`${thumbprint}\n`);
  });
});
