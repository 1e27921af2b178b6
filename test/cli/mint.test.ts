/**
 * `kms-jwt mint KIND` for every Apple token kind, through the built CLI: the token on stdout
 * verified by jose and jsonwebtoken, the header and claims of the kind, the per-kind help, and
 * the exit codes and single error line of rejected input. `inspect` then checks each minted
 * token against its kind.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildIfStale,
  createTestKey,
  decodePart,
  expectOneErrorLine,
  nowSeconds,
  runCli,
  verifyIndependently,
  type TestKey,
} from './support.js';

const teamId = 'DEF123GHIJ';
const issuerId = '57246542-96fe-1a63-e053-0824d011072a';
const businessClientId = 'BUSINESSAPI.0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f';
const businessKeyId = 'd136aa66-0c3b-4bd4-9892-c20e8db024ab';

interface KindCase {
  kind: string;
  args: string[];
  header: Record<string, unknown>;
  /** Claims other than iat and exp, compared exactly. */
  claims: Record<string, unknown>;
  /** exp - iat, or undefined for kinds without exp. */
  span: number | undefined;
  /** Flags the per-kind help must list. */
  flags: string[];
  /** Whether inspect can tell the kind from the claims alone. */
  detected: boolean;
}

const kindCases: KindCase[] = [
  {
    kind: 'client-secret',
    args: ['--team-id', teamId, '--client-id', 'com.example.web'],
    header: { alg: 'ES256', kid: 'ABC123DEFG' },
    claims: { iss: teamId, aud: 'https://appleid.apple.com', sub: 'com.example.web' },
    span: 180 * 86_400 + 30,
    flags: ['--team-id', '--client-id', '--key-id', '--lifetime', '--iat-skew'],
    detected: true,
  },
  {
    kind: 'app-store-connect',
    args: ['--issuer-id', issuerId, '--scope', 'GET /v1/apps', '--scope', 'GET /v1/builds'],
    header: { alg: 'ES256', kid: 'ABC123DEFG', typ: 'JWT' },
    claims: { iss: issuerId, aud: 'appstoreconnect-v1', scope: ['GET /v1/apps', 'GET /v1/builds'] },
    span: 930,
    flags: ['--issuer-id', '--subject', '--scope', '--lifetime'],
    detected: true,
  },
  {
    kind: 'app-store-server',
    args: ['--issuer-id', issuerId, '--bundle-id', 'com.example.app', '--lifetime', '5m'],
    header: { alg: 'ES256', kid: 'ABC123DEFG', typ: 'JWT' },
    claims: { iss: issuerId, aud: 'appstoreconnect-v1', bid: 'com.example.app' },
    span: 330,
    flags: ['--issuer-id', '--bundle-id', '--lifetime'],
    detected: true,
  },
  {
    kind: 'apns',
    args: ['--team-id', teamId],
    header: { alg: 'ES256', kid: 'ABC123DEFG' },
    claims: { iss: teamId },
    span: undefined,
    flags: ['--team-id', '--key-id', '--iat-skew'],
    detected: false,
  },
  {
    kind: 'musickit',
    args: ['--team-id', teamId, '--lifetime', '30d'],
    header: { alg: 'ES256', kid: 'ABC123DEFG' },
    claims: { iss: teamId },
    span: 30 * 86_400 + 30,
    flags: ['--team-id', '--origin', '--lifetime'],
    detected: false,
  },
  {
    kind: 'weatherkit',
    args: ['--team-id', teamId, '--service-id', 'com.example.weather'],
    header: { alg: 'ES256', kid: 'ABC123DEFG', id: `${teamId}.com.example.weather` },
    claims: { iss: teamId, sub: 'com.example.weather' },
    span: 3630,
    flags: ['--team-id', '--service-id', '--lifetime'],
    detected: true,
  },
  {
    kind: 'mapkit',
    args: ['--team-id', teamId, '--scope', 'server_api', '--origin', '*.example.com'],
    header: { alg: 'ES256', kid: 'ABC123DEFG', typ: 'JWT' },
    claims: { iss: teamId, origin: '*.example.com', scope: 'server_api' },
    span: 3630,
    flags: ['--team-id', '--origin', '--scope', '--lifetime'],
    detected: true,
  },
  {
    kind: 'devicecheck',
    args: ['--team-id', teamId],
    header: { alg: 'ES256', kid: 'ABC123DEFG' },
    claims: { iss: teamId },
    span: undefined,
    flags: ['--team-id', '--key-id'],
    detected: false,
  },
  {
    kind: 'business-manager',
    args: ['--client-id', businessClientId, '--key-id', businessKeyId, '--jti', 'jti-0001'],
    header: { alg: 'ES256', kid: businessKeyId },
    claims: {
      sub: businessClientId,
      aud: 'https://account.apple.com/auth/oauth2/v2/token',
      jti: 'jti-0001',
      iss: businessClientId,
    },
    span: 3630,
    flags: ['--client-id', '--key-id', '--jti', '--lifetime'],
    detected: true,
  },
];

let key: TestKey;
// Business and School Manager keys are not named AuthKey_<KEYID>.p8, and their UUID key IDs
// would disagree with such a name.
let businessKey: TestKey;

beforeAll(() => {
  buildIfStale();
  key = createTestKey('ABC123DEFG');
  businessKey = createTestKey('business');
});

afterAll(() => {
  key.remove();
  businessKey.remove();
});

function keyFor(kind: string): TestKey {
  return kind === 'business-manager' ? businessKey : key;
}

describe('mint business-manager key ID', () => {
  it('takes no key ID from an AuthKey file name', async () => {
    const named = createTestKey('ABC123DEFG');
    try {
      const args = ['mint', 'business-manager', '--client-id', businessClientId];
      const run = await runCli([...args, '--key', named.path]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('--key-id');
      expect(run.stdout).toBe('');
    } finally {
      named.remove();
    }
  });
});

describe.each(kindCases)('mint $kind', (testCase) => {
  it('prints a token of the kind', async () => {
    const before = nowSeconds();
    const signing = keyFor(testCase.kind);
    const run = await runCli(['mint', testCase.kind, '--key', signing.path, ...testCase.args]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);

    const token = run.stdout.trim();
    const claims = await verifyIndependently(token, signing.publicPem);
    expect(decodePart(token, 0)).toStrictEqual(testCase.header);
    const { iat, exp, ...rest } = claims;
    expect(rest).toStrictEqual(testCase.claims);
    expect(iat).toBeGreaterThanOrEqual(before - 31);
    expect(iat).toBeLessThanOrEqual(nowSeconds() - 30);
    expect(exp === undefined ? undefined : (exp as number) - (iat as number)).toBe(testCase.span);
  });

  it('lists the fields of the kind in --help', async () => {
    const run = await runCli(['mint', testCase.kind, '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`Usage: kms-jwt mint ${testCase.kind} --key REF`);
    for (const flag of testCase.flags) expect(run.stdout).toMatch(new RegExp(`^ {2}${flag} `, 'm'));
    expect(run.stdout).toMatch(/^Header: alg, kid[\w, ]*\. Claims: [\w, ]+\.$/m);
    expect(run.stdout).toMatch(/^Lifetime: /m);
    for (const line of run.stdout.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
  });

  it('passes inspect as its kind', async () => {
    const signing = keyFor(testCase.kind);
    const minted = await runCli(['mint', testCase.kind, '--key', signing.path, ...testCase.args]);
    const token = minted.stdout.trim();

    const auto = await runCli(['inspect', '-'], { input: token });
    expect(auto.code).toBe(0);
    expect(auto.stdout).toContain('problems: none');
    if (testCase.detected) expect(auto.stdout).toMatch(new RegExp(`^kind: ${testCase.kind}$`, 'm'));
    else
      expect(auto.stdout).toMatch(/^kind: \S+ \(a guess, because .*; pass --kind to be sure\)$/m);

    const given = await runCli(['inspect', '-', '--kind', testCase.kind], { input: token });
    expect(given.code).toBe(0);
    expect(given.stdout).toMatch(new RegExp(`^kind: ${testCase.kind}$`, 'm'));
  });
});

describe('mint', () => {
  it('lists every kind in mint --help', async () => {
    const run = await runCli(['mint', '--help']);
    expect(run.code).toBe(0);
    for (const { kind } of kindCases) expect(run.stdout).toMatch(new RegExp(`^ {2}${kind} `, 'm'));
  });

  it('rejects an unknown kind', async () => {
    const run = await runCli(['mint', 'fax', '--key', key.path]);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('client-secret, app-store-connect');
  });

  it('rejects a missing required field', async () => {
    const run = await runCli(['mint', 'weatherkit', '--key', key.path, '--team-id', teamId]);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('--service-id');
  });

  it('rejects a flag of another kind', async () => {
    const run = await runCli([
      'mint',
      'apns',
      '--key',
      key.path,
      '--team-id',
      teamId,
      '--lifetime',
      '1h',
    ]);
    expect(run.code).toBe(2);
    expectOneErrorLine(run, 'ERR_CLI_USAGE');
    expect(run.stderr).toContain('--lifetime');
  });

  it('rejects an issuer UUID as a DeviceCheck Team ID', async () => {
    const run = await runCli(['mint', 'devicecheck', '--key', key.path, '--team-id', issuerId]);
    expect(run.code).toBe(4);
    expectOneErrorLine(run, 'ERR_APPLE_FIELD_INVALID');
    expect(run.stderr).toContain('devicecheck token: claims.iss');
    expect(run.stderr).toContain('rule team-or-key-id-shape');
  });

  it('rejects iat backdating past 20 minutes', async () => {
    const args = ['--issuer-id', issuerId, '--lifetime', '20m', '--iat-skew', '60s'];
    const run = await runCli(['mint', 'app-store-connect', '--key', key.path, ...args]);
    expect(run.code).toBe(4);
    expectOneErrorLine(run, 'ERR_APPLE_LIFETIME_TOO_LONG');
    expect(run.stderr).toContain('1260 s');
    expect(run.stderr).toContain('NOT_AUTHORIZED');
  });

  it('prints each warning on stderr', async () => {
    const args = ['--team-id', teamId, '--origin', 'https://music.example.com'];
    const run = await runCli(['mint', 'musickit', '--key', key.path, ...args]);
    expect(run.code).toBe(0);
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^kms-jwt: warning: musickit token: claims.origin .*origin-browser-only/,
    );
    expect(run.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
  });

  it('prints JSON with the kind and times', async () => {
    const run = await runCli(['mint', 'apns', '--key', key.path, '--team-id', teamId, '--json']);
    expect(run.code).toBe(0);
    const output = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(output.kind).toBe('apns');
    expect(output.expiresAt).toBeNull();
    expect(output.header).toStrictEqual({ alg: 'ES256', kid: 'ABC123DEFG' });
    const claims = output.claims as Record<string, number>;
    expect(output.issuedAt).toBe(new Date(claims.iat! * 1000).toISOString());
    await verifyIndependently(output.token as string, key.publicPem);
  });

  it('reuses an APNs token from --cache and keys it by team', async () => {
    const cache = join(key.folder, 'apns-cache.json');
    const args = ['mint', 'apns', '--key', key.path, '--cache', cache, '--json'];
    const first = JSON.parse((await runCli([...args, '--team-id', teamId])).stdout);
    const second = JSON.parse((await runCli([...args, '--team-id', teamId])).stdout);
    const other = JSON.parse((await runCli([...args, '--team-id', 'ZZZ999YYYY'])).stdout);

    expect(first.cache).toBe('miss');
    expect(second.cache).toBe('hit');
    expect(second.token).toBe(first.token);
    expect(other.cache).toBe('miss');
    expect(other.claims.iss).toBe('ZZZ999YYYY');
    expect(statSync(cache).mode & 0o777).toBe(0o600);
  });
});
