/**
 * Odd `--key` references on every command that takes one: `file://` URLs with a host or a broken
 * percent-escape, an upper-case scheme, and `file:~/`. Each failure is one coded line with exit
 * code 3, never Node's own uncoded URL error with exit code 5.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildIfStale,
  createTestKey,
  decodePart,
  expectOneErrorLine,
  mintTestToken,
  runCli,
  type TestKey,
} from './support.js';

let key: TestKey;
let token: string;

beforeAll(async () => {
  buildIfStale();
  key = createTestKey();
  token = await mintTestToken(key);
});

afterAll(() => key.remove());

const badFileUrls = ['file://keys.example.com/AuthKey_ABC123DEFG.p8', 'file://%ZZ/AuthKey.p8'];

function commandsWith(reference: string): Array<[string, string[]]> {
  return [
    [
      'client-secret',
      ['client-secret', '--team-id', 'DEF123GHIJ', '--client-id', 'com.example.web'].concat([
        '--key',
        reference,
      ]),
    ],
    ['verify', ['verify', '-', '--key', reference]],
    ['public-key', ['public-key', '--key', reference]],
  ];
}

describe('kms-jwt --key file URLs', () => {
  it.each(badFileUrls)('rejects %s with a coded line', async (reference) => {
    for (const [, args] of commandsWith(reference)) {
      const run = await runCli(args, { input: token });

      expect(run.code).toBe(3);
      expectOneErrorLine(run, 'ERR_KEY_REFERENCE_INVALID');
    }
  });

  it('reads a localhost file URL', async () => {
    const reference = `FILE://localhost${key.path}`;
    for (const [name, args] of commandsWith(reference)) {
      const run = await runCli(args, { input: token });

      expect(run.code).toBe(0);
      expect(run.stderr).not.toMatch(/error|warning/);
      if (name === 'client-secret') expect(decodePart(run.stdout.trim(), 0).kid).toBe(key.keyId);
    }
  });

  it('expands file:~/ for every command', async () => {
    const reference = `file:~/${key.path.split('/').pop()!}`;
    for (const [name, args] of commandsWith(reference)) {
      const run = await runCli(args, { input: token, env: { HOME: key.folder } });

      expect(run.code).toBe(0);
      expect(run.stderr).not.toMatch(/error|warning/);
      if (name === 'verify') expect(run.stdout).toBe('valid\n');
    }
  });
});
