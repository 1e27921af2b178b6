/**
 * `kms-jwt verify` and JOSE header parameters that change how a token must be read. A `crit`
 * header names extensions that a verifier must understand, or else reject the token
 * (RFC 7515 §4.1.11), and this verifier understands none.
 */
import { sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale, createTestKey, nowSeconds, runCli, type TestKey } from './support.js';

let key: TestKey;

beforeAll(() => {
  buildIfStale();
  key = createTestKey();
});

afterAll(() => key.remove());

function signWithHeader(header: Record<string, unknown>): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const claims = { iss: 'DEF123GHIJ', iat: nowSeconds() - 30, exp: nowSeconds() + 3600 };
  const signingInput = `${encode(header)}.${encode(claims)}`;
  const signature = sign('sha256', Buffer.from(signingInput), {
    key: key.privateKey,
    dsaEncoding: 'ieee-p1363',
  });
  return `${signingInput}.${signature.toString('base64url')}`;
}

describe('kms-jwt verify crit', () => {
  it.each([
    [
      'an unknown extension',
      { alg: 'ES256', crit: ['urn:example:policy'], 'urn:example:policy': 1 },
    ],
    ['unencoded payload', { alg: 'ES256', crit: ['b64'], b64: false }],
    ['an empty list', { alg: 'ES256', crit: [] }],
  ])('rejects %s', async (_name, header) => {
    const run = await runCli(['verify', '-', '--key', key.path], { input: signWithHeader(header) });

    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^kms-jwt: invalid: .*crit/);
  });

  it('accepts a header without crit', async () => {
    const token = signWithHeader({ alg: 'ES256', kid: 'ABC123DEFG', typ: 'JWT' });
    const run = await runCli(['verify', '-', '--key', key.path], { input: token });

    expect(run.code).toBe(0);
    expect(run.stdout).toBe('valid\n');
  });
});
