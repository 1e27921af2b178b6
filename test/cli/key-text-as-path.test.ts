/**
 * `--key` given the key text itself, for example `--key "$APPLE_KEY"` in place of
 * `--key env:APPLE_KEY`. The error line must not repeat the key in any shape the CLI's PEM
 * redaction misses: a bare base64 body or a JWK.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildIfStale,
  createTestKey,
  expectOneErrorLine,
  runCli,
  type TestKey,
} from './support.js';

let key: TestKey;

beforeAll(() => {
  buildIfStale();
  key = createTestKey();
});

afterAll(() => key.remove());

function keyTexts(): Array<[string, string]> {
  const lines = key.pem.trim().split('\n');
  return [
    ['the base64 body', lines.slice(1, -1).join('')],
    ['a private JWK', JSON.stringify(key.privateKey.export({ format: 'jwk' }))],
    ['PEM with literal \\n', key.pem.trimEnd().replace(/\n/g, '\\n')],
  ];
}

function expectNoKeyFragment(output: string): void {
  const body = key.pem.trim().split('\n').slice(1, -1).join('');
  for (let start = 0; start + 12 <= body.length; start += 6) {
    expect(output).not.toContain(body.slice(start, start + 12));
  }
  expect(output).not.toContain(String(key.privateKey.export({ format: 'jwk' }).d));
}

describe('kms-jwt --key with key text', () => {
  it('hides it in client-secret', async () => {
    for (const [, text] of keyTexts()) {
      const run = await runCli([
        'client-secret',
        ...['--team-id', 'DEF123GHIJ', '--client-id', 'com.example.web'],
        ...['--key-id', 'ABC123DEFG', '--key', text],
      ]);

      expect(run.code).toBe(3);
      expectOneErrorLine(run, 'ERR_KEY_FILE_NOT_FOUND');
      expectNoKeyFragment(run.stderr);
    }
  });

  it('hides it in public-key with debug output', async () => {
    for (const [, text] of keyTexts()) {
      const run = await runCli(['public-key', '--key', text], { env: { KMS_JWT_DEBUG: '1' } });

      expect(run.code).toBe(3);
      expect(run.stderr).toMatch(/looks like key text/);
      expectNoKeyFragment(run.stderr);
    }
  });
});

describe('kms-jwt --key with a mangled pkcs11 reference', () => {
  // A space or a quote before "pkcs11:" makes the reference a relative file path.
  const pin = '739164';
  const references = [
    ` pkcs11:token=apple;object=siwa?pin-value=${pin}`,
    `"pkcs11:token=apple;object=siwa?pin-value=${pin}"`,
    `pkcs11 :token=apple;object=siwa?pin%2Dvalue=${pin}`,
  ];

  it('hides the PIN in client-secret and public-key', async () => {
    for (const reference of references) {
      const mint = await runCli([
        'client-secret',
        ...['--team-id', 'DEF123GHIJ', '--client-id', 'com.example.web'],
        ...['--key-id', 'ABC123DEFG', '--key', reference],
      ]);
      expect(mint.code).toBe(3);
      expectOneErrorLine(mint, 'ERR_KEY_FILE_NOT_FOUND');
      expect(mint.stderr).toContain('contains a pin-value attribute');
      expect(mint.stderr).not.toContain(pin);

      const debug = await runCli(['public-key', '--key', reference], {
        env: { KMS_JWT_DEBUG: '1' },
      });
      expect(debug.code).toBe(3);
      expect(debug.stderr).toContain('space or a quote comes before "pkcs11:"');
      expect(debug.stderr).not.toContain(pin);
    }
  });
});

describe('kms-jwt --key env: with key text', () => {
  it('hides base64 that passes as a name', async () => {
    // Without "+", "/" and "=", a base64 line has the shape of a variable name.
    const body = key.pem.trim().split('\n').slice(1, -1).join('');
    const name = body.replace(/[^A-Za-z0-9]/g, '').slice(0, 64);
    const run = await runCli(['public-key', '--key', `env:${name}`], {
      env: { KMS_JWT_DEBUG: '1' },
    });

    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/^kms-jwt: error: \[ERR_KEY_ENV_UNSET\] /);
    expect(run.stderr).toContain('not the key text itself');
    expect(run.stderr).not.toContain(name.slice(0, 24));
    expect(run.stderr).not.toContain(name.slice(40));
  });
});
