import { sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildIfStale,
  createTestKey,
  expectOneErrorLine,
  nowSeconds,
  runCli,
  type TestKey,
} from './support.js';

let key: TestKey;

function signToken(
  claims: Record<string, unknown>,
  header: Record<string, unknown> = { alg: 'ES256', kid: 'ABC123DEFG' },
  dsaEncoding: 'der' | 'ieee-p1363' = 'ieee-p1363',
): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = `${encode(header)}.${encode(claims)}`;
  const signature = sign('sha256', Buffer.from(signingInput), { key: key.privateKey, dsaEncoding });
  return `${signingInput}.${signature.toString('base64url')}`;
}

function clientSecretClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSeconds();
  return {
    iss: 'DEF123GHIJ',
    iat: now - 30,
    exp: now + 86_400 * 10,
    aud: 'https://appleid.apple.com',
    sub: 'com.example.web',
    ...overrides,
  };
}

/** Returns the lines under "problems:" in the text report. */
function problemLines(stdout: string): string[] {
  const after = stdout.split(/^problems: .*$/m)[1] ?? '';
  return after.split('\n').filter((line) => line.startsWith('  '));
}

beforeAll(() => {
  buildIfStale();
  key = createTestKey();
});

afterAll(() => key.remove());

describe('inspect', () => {
  it('prints a valid client secret with readable times', async () => {
    const claims = clientSecretClaims();
    const run = await runCli(['inspect', signToken(claims)]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^kind: client-secret$/m);
    expect(run.stdout).toContain('  alg: "ES256"');
    expect(run.stdout).toContain('  kid: "ABC123DEFG"');
    expect(run.stdout).toContain('  iss: "DEF123GHIJ"');
    const expIso = new Date((claims.exp as number) * 1000).toISOString().replace('.000Z', 'Z');
    expect(run.stdout).toContain(`  exp: ${claims.exp} (${expIso}, in 9 days)`);
    expect(run.stdout).toMatch(/ {2}iat: \d+ \(\S+Z, 3\d seconds ago\)/);
    expect(run.stdout).toContain('signature: 64 bytes (r||s)');
    expect(run.stdout).toContain('problems: none');
  });

  it('reads the token from stdin with -', async () => {
    const run = await runCli(['inspect', '-'], { input: `${signToken(clientSecretClaims())}\n` });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('problems: none');
  });

  it('lists each problem on its own line', async () => {
    const now = nowSeconds();
    const token = signToken(
      clientSecretClaims({
        iat: now + 600,
        exp: now + 200 * 86_400,
        aud: 'appleid.apple.com',
        extra: 1,
      }),
      { alg: 'ES256', kid: 'abc' },
    );
    const run = await runCli(['inspect', token]);
    expect(run.code).toBe(1);
    const lines = problemLines(run.stdout);
    expect(lines.length).toBeGreaterThanOrEqual(5);
    for (const field of ['kid', 'aud', 'iat', 'exp', 'extra']) {
      expect(lines.some((line) => line.includes(field))).toBe(true);
    }
    for (const line of lines) {
      expect(line).toMatch(
        /^ {2}(error|warning) \S+ \[[\w-]+, (apple|reports|unconfirmed|derived)\]: /,
      );
    }
    expect(run.stdout).toContain('invalid_client');
  });

  it('flags times in milliseconds', async () => {
    const nowMs = Date.now();
    const token = signToken(clientSecretClaims({ iat: nowMs, exp: nowMs + 3_600_000 }));
    const run = await runCli(['inspect', token]);
    expect(run.code).toBe(1);
    expect(problemLines(run.stdout).some((line) => /iat/.test(line))).toBe(true);
  });

  it('flags a DER-sized signature', async () => {
    const token = signToken(clientSecretClaims(), undefined, 'der');
    const run = await runCli(['inspect', token]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/signature: (70|71|72) bytes/);
    expect(problemLines(run.stdout).some((line) => /signature/.test(line))).toBe(true);
  });

  it('checks against the kind given with --kind', async () => {
    const token = signToken(clientSecretClaims());
    const run = await runCli(['inspect', token, '--kind', 'apns']);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^kind: apns$/m);
  });

  it('prints JSON with --json', async () => {
    const claims = clientSecretClaims();
    const run = await runCli(['inspect', signToken(claims), '--json']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(report.kind).toBe('client-secret');
    expect(report.claims).toEqual(claims);
    expect(report.problems).toEqual([]);
    expect(report.signatureLength).toBe(64);
  });

  it('rejects an unknown --kind', async () => {
    const run = await runCli(['inspect', signToken(clientSecretClaims()), '--kind', 'fax']);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
  });

  it('reports a malformed token without echoing it', async () => {
    const token = 'eyJhbGciOiJFUzI1NiJ9.notjsonnotjsonnotjson.AAAA';
    const run = await runCli(['inspect', token]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(run.stderr).not.toContain('notjsonnotjson');
    expect(run.stderr).not.toContain('eyJhbGciOiJFUzI1NiJ9');
  });

  it('names the Apple error of an App Store Connect token', async () => {
    const now = nowSeconds();
    const claims = { iss: '57246542-96fe-1a63-e053-0824d011072a', iat: now - 30, exp: now + 1800 };
    const header = { alg: 'ES256', kid: '2X9R4HXF34', typ: 'JWT' };
    const token = signToken({ ...claims, aud: 'appstoreconnect-v1' }, header);
    const run = await runCli(['inspect', token]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^kind: app-store-connect$/m);
    const lines = problemLines(run.stdout);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ {2}error claims\.exp \[lifetime-max, apple\]: /);
    expect(lines[0]).toContain('(Apple: HTTP 401 NOT_AUTHORIZED)');
  });

  it('names ExpiredProviderToken for a stale APNs token', async () => {
    const token = signToken({ iss: 'DEF123GHIJ', iat: nowSeconds() - 3700 });
    const run = await runCli(['inspect', token, '--kind', 'apns']);
    expect(run.code).toBe(1);
    const lines = problemLines(run.stdout);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('[iat-within-hour, apple]');
    expect(lines[0]).toContain('(Apple: HTTP 403 ExpiredProviderToken)');
  });

  it('rejects an aud claim in a WeatherKit token', async () => {
    const now = nowSeconds();
    const claims = {
      iss: 'DEF123GHIJ',
      iat: now - 30,
      exp: now + 3600,
      sub: 'com.example.weather',
    };
    const header = { alg: 'ES256', kid: 'ABC123DEFG', id: 'DEF123GHIJ.com.example.weather' };
    const token = signToken({ ...claims, aud: 'weatherkit' }, header);
    const run = await runCli(['inspect', token]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(
      /^kind: weatherkit \(a guess, because its aud "weatherkit" names no/m,
    );
    const lines = problemLines(run.stdout);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ {2}error claims\.aud \[claim-extra, apple\]: /);
  });

  it('escapes control characters from the token', async () => {
    const header = { alg: 'ES256', kid: 'ABC123DEFG', '\u001b[31mred': 'x' };
    const claims = clientSecretClaims({
      '\u001b]0;title\u0007\u001b[2J': 1,
      note: 'left\u202eright\u009b',
    });
    const run = await runCli(['inspect', signToken(claims, header)]);

    expect(run.code).toBe(1);
    // Everything a terminal acts on: C0 and C1 controls (but the newline), and bidi controls.
    const controls =
      // eslint-disable-next-line no-control-regex
      /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/;
    expect(run.stdout).not.toMatch(controls);
    expect(run.stderr).not.toMatch(controls);
    expect(run.stdout).toContain('\\u001b[31mred');
    expect(run.stdout).toContain('\\u202e');

    const json = await runCli(['inspect', signToken(claims, header), '--json']);
    expect(json.stdout).not.toMatch(controls);
    const report = JSON.parse(json.stdout) as { claims: Record<string, unknown> };
    expect(report.claims.note).toBe('left\u202eright\u009b');
  });

  it('says when the kind is a guess', async () => {
    const token = signToken({ iss: 'DEF123GHIJ', iat: nowSeconds() - 30 });
    const run = await runCli(['inspect', token]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^kind: apns \(a guess, because APNs and DeviceCheck .*\)$/m);
    expect(run.stdout).toContain('problems: none');
  });
});

describe('inspect with many or long names', () => {
  const manyNames = (count: number) =>
    Object.fromEntries(Array.from({ length: count }, (_, index) => [`x${index}`, index]));

  it('bounds the report for 5000 extra claims', async () => {
    const token = signToken(clientSecretClaims(manyNames(5000)));
    const run = await runCli(['inspect', token]);
    expect(run.code).toBe(1);
    const lines = run.stdout.split('\n');
    expect(lines.length).toBeLessThan(70);

    const problems = problemLines(run.stdout);
    expect(problems).toHaveLength(21);
    expect(problems[20]).toMatch(/^ {2}warning claims \[claim-extra, reports\]: .*and 4980 more/);
    expect(run.stdout).toContain('  x14: 14\n');
    expect(run.stdout).not.toContain('  x15: 15\n');
    expect(run.stdout).toContain('  … and 4985 more claims (pass --json to see them all)\n');
  });

  it('cuts long names to 64 characters', async () => {
    const longName = 'n'.repeat(10_000);
    const token = signToken(clientSecretClaims({ [longName]: 1 }), {
      alg: 'ES256',
      kid: 'ABC123DEFG',
      [longName]: 2,
    });
    const run = await runCli(['inspect', token]);
    expect(run.code).toBe(1);
    expect(run.stdout).not.toContain('n'.repeat(65));
    expect(run.stdout).toContain(`  ${'n'.repeat(64)}… (10000 characters): 1\n`);
    expect(run.stdout).toContain(`  ${'n'.repeat(64)}… (10000 characters): 2\n`);
    expect(run.stdout.length).toBeLessThan(4000);
  });

  it('keeps every name in --json', async () => {
    const token = signToken(clientSecretClaims(manyNames(100)));
    const run = await runCli(['inspect', token, '--json']);
    const report = JSON.parse(run.stdout) as { claims: object; problems: unknown[] };
    expect(Object.keys(report.claims)).toHaveLength(105);
    expect(report.problems).toHaveLength(21);
  });
});
