/**
 * inspectAppleToken on hand-built tokens: working out the kind from the claims, and naming each
 * broken rule with the Apple error it would cause. Tokens are signed with node:crypto so that
 * they can carry mistakes the minting functions refuse to make.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { inspectAppleToken } from '../../src/apple/index.js';
import type { AppleTokenKind } from '../../src/apple/types.js';
import {
  businessClientId,
  businessKeyId,
  day,
  issuerId,
  keyId,
  now,
  nowSeconds,
  teamId,
} from './support.js';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const iat = nowSeconds - 30;

function signToken(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  dsaEncoding: 'der' | 'ieee-p1363' = 'ieee-p1363',
): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = `${encode(header)}.${encode(claims)}`;
  const signature = sign('sha256', Buffer.from(signingInput), { key: privateKey, dsaEncoding });
  return `${signingInput}.${signature.toString('base64url')}`;
}

interface Sample {
  kind: AppleTokenKind;
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
}

const samples: Record<AppleTokenKind, Sample> = {
  'client-secret': {
    kind: 'client-secret',
    header: { alg: 'ES256', kid: keyId },
    claims: {
      iss: teamId,
      iat,
      exp: nowSeconds + 30 * day,
      aud: 'https://appleid.apple.com',
      sub: 'com.example.web',
    },
  },
  'app-store-connect': {
    kind: 'app-store-connect',
    header: { alg: 'ES256', kid: '2X9R4HXF34', typ: 'JWT' },
    claims: { iss: issuerId, iat, exp: nowSeconds + 900, aud: 'appstoreconnect-v1' },
  },
  'app-store-server': {
    kind: 'app-store-server',
    header: { alg: 'ES256', kid: '2X9R4HXF34', typ: 'JWT' },
    claims: {
      iss: issuerId,
      iat,
      exp: nowSeconds + 900,
      aud: 'appstoreconnect-v1',
      bid: 'com.example.app',
    },
  },
  apns: { kind: 'apns', header: { alg: 'ES256', kid: keyId }, claims: { iss: teamId, iat } },
  musickit: {
    kind: 'musickit',
    header: { alg: 'ES256', kid: keyId },
    claims: { iss: teamId, iat, exp: nowSeconds + 30 * day },
  },
  weatherkit: {
    kind: 'weatherkit',
    header: { alg: 'ES256', kid: keyId, id: `${teamId}.com.example.weather` },
    claims: { iss: teamId, iat, exp: nowSeconds + 3600, sub: 'com.example.weather' },
  },
  mapkit: {
    kind: 'mapkit',
    header: { alg: 'ES256', kid: keyId, typ: 'JWT' },
    claims: { iss: teamId, iat, exp: nowSeconds + 3600 },
  },
  devicecheck: {
    kind: 'devicecheck',
    header: { alg: 'ES256', kid: keyId },
    claims: { iss: teamId, iat },
  },
  'business-manager': {
    kind: 'business-manager',
    header: { alg: 'ES256', kid: businessKeyId },
    claims: {
      sub: businessClientId,
      aud: 'https://account.apple.com/auth/oauth2/v2/token',
      iat,
      exp: nowSeconds + 3600,
      jti: 'jti-0001',
      iss: businessClientId,
    },
  },
};

function inspect(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  kind?: AppleTokenKind,
) {
  return inspectAppleToken(signToken(header, claims), { kind, now });
}

describe('inspectAppleToken: kind detection', () => {
  const detected: Array<[AppleTokenKind, AppleTokenKind, boolean]> = [
    ['client-secret', 'client-secret', false],
    ['app-store-connect', 'app-store-connect', false],
    ['app-store-server', 'app-store-server', false],
    ['apns', 'apns', true],
    ['musickit', 'musickit', true],
    ['weatherkit', 'weatherkit', false],
    // Only typ tells this MapKit token from a MusicKit token that carries the usual typ header.
    ['mapkit', 'mapkit', true],
    ['devicecheck', 'apns', true],
    ['business-manager', 'business-manager', false],
  ];

  it.each(detected)('works out %s as %s', (kind, expected, guessed) => {
    const { header, claims } = samples[kind];
    const report = inspect(header, claims);
    expect(report.kind).toBe(expected);
    expect(report.problems).toEqual([]);
    expect(report.kindGuess !== undefined).toBe(guessed);
  });

  it.each(Object.keys(samples) as AppleTokenKind[])('passes %s with --kind', (kind) => {
    const { header, claims } = samples[kind];
    const report = inspect(header, claims, kind);
    expect(report.kind).toBe(kind);
    expect(report.problems).toEqual([]);
    expect(report.kindGuess).toBeUndefined();
  });

  it('tells a MusicKit origin list from a MapKit origin', () => {
    const music = inspect(samples.musickit.header, {
      ...samples.musickit.claims,
      origin: ['https://music.example.com'],
    });
    expect(music.kind).toBe('musickit');
    const maps = inspect(samples.musickit.header, {
      ...samples.musickit.claims,
      origin: '*.example.com',
    });
    expect(maps.kind).toBe('mapkit');
  });

  it('calls a MusicKit token with typ a guess', () => {
    const report = inspect({ ...samples.musickit.header, typ: 'JWT' }, samples.musickit.claims);
    expect(report.kind).toBe('mapkit');
    expect(report.kindGuess).toContain('MusicKit');
  });

  it('matches a wrong aud to the closest kind', () => {
    const report = inspect(samples['client-secret'].header, {
      ...samples['client-secret'].claims,
      aud: 'https://appleid.apple.com/auth/token',
    });
    expect(report.kind).toBe('client-secret');
    const rules = report.problems.map((problem) => problem.rule);
    expect(rules).toEqual(['field-value']);
    expect(report.kindGuess).toContain('names no Apple service');
  });

  it('shortens a long aud in the messages', () => {
    const aud = `https://example.com/${'x'.repeat(100_000)}`;
    const unknown = inspect({ alg: 'ES256' }, { aud, foo: 1, bar: 2 });
    const connect = samples['app-store-connect'];
    const guessed = inspect(connect.header, { ...connect.claims, aud });

    expect(unknown.problems[0]!.message.length).toBeLessThan(500);
    expect(guessed.kindGuess!.length).toBeLessThan(500);
  });

  it('names no kind for unrelated claims', () => {
    const report = inspect({ alg: 'ES256' }, { aud: 'https://example.com', foo: 1, bar: 2 });
    expect(report.kind).toBeUndefined();
    expect(report.problems.map((problem) => problem.rule)).toEqual(['kind-known']);
  });
});

interface ProblemCase {
  name: string;
  kind: AppleTokenKind;
  header?: Record<string, unknown>;
  claims?: Record<string, unknown>;
  /** Removed claims. */
  without?: string[];
  severity: 'error' | 'warning';
  field: string;
  rule: string;
  /** Text the Apple error must contain; warnings may carry none. */
  appleError?: string;
  /** Where the rule comes from, when it is not `apple` for an error or `reports` for a warning. */
  source?: 'unconfirmed' | 'derived';
}

const problemCases: ProblemCase[] = [
  {
    name: 'typ on an APNs token',
    kind: 'apns',
    header: { typ: 'JWT' },
    severity: 'warning',
    field: 'header.typ',
    rule: 'typ-undocumented',
    appleError: 'InvalidProviderToken',
  },
  {
    name: 'aud on a WeatherKit token',
    kind: 'weatherkit',
    claims: { aud: 'weatherkit' },
    severity: 'error',
    field: 'claims.aud',
    rule: 'claim-extra',
    appleError: '401',
  },
  {
    name: 'WeatherKit id header not TEAM.SERVICE',
    kind: 'weatherkit',
    header: { id: `${teamId}.com.example.app` },
    severity: 'error',
    field: 'header.id',
    rule: 'id-team-dot-service',
    appleError: '401',
  },
  {
    name: 'WeatherKit id header missing',
    kind: 'weatherkit',
    header: { id: undefined },
    severity: 'error',
    field: 'header.id',
    rule: 'field-required',
    appleError: '401',
  },
  {
    name: 'App Store Server token without bid',
    kind: 'app-store-server',
    without: ['bid'],
    severity: 'error',
    field: 'claims.bid',
    rule: 'field-required',
    appleError: '401',
  },
  {
    name: 'App Store Connect token without typ',
    kind: 'app-store-connect',
    header: { typ: undefined },
    severity: 'error',
    field: 'header.typ',
    rule: 'field-required',
    appleError: 'NOT_AUTHORIZED',
  },
  {
    name: 'App Store Connect token over 20 minutes',
    kind: 'app-store-connect',
    claims: { exp: iat + 1201 },
    severity: 'error',
    field: 'claims.exp',
    rule: 'lifetime-max',
    appleError: 'NOT_AUTHORIZED',
  },
  {
    name: 'client secret with the wrong aud',
    kind: 'client-secret',
    claims: { aud: 'appleid.apple.com' },
    severity: 'error',
    field: 'claims.aud',
    rule: 'field-value',
    appleError: 'invalid_client',
  },
  {
    name: 'client secret without kid',
    kind: 'client-secret',
    header: { kid: undefined },
    severity: 'error',
    field: 'header.kid',
    rule: 'field-required',
    appleError: 'invalid_client',
  },
  {
    name: 'client secret with kid in the claims',
    kind: 'client-secret',
    claims: { kid: keyId },
    severity: 'warning',
    field: 'claims.kid',
    rule: 'claim-extra',
  },
  {
    name: 'client secret with a lower-case Team ID',
    kind: 'client-secret',
    claims: { iss: 'def123ghij' },
    severity: 'warning',
    field: 'claims.iss',
    rule: 'team-or-key-id-case',
  },
  {
    name: 'iat as a string',
    kind: 'apns',
    claims: { iat: String(iat) },
    severity: 'error',
    field: 'claims.iat',
    rule: 'time-integer-seconds',
    appleError: 'InvalidProviderToken',
  },
  {
    name: 'iat in milliseconds',
    kind: 'musickit',
    claims: { iat: iat * 1000 },
    severity: 'error',
    field: 'claims.iat',
    rule: 'time-integer-seconds',
    appleError: '401',
  },
  {
    name: 'fractional exp',
    kind: 'client-secret',
    claims: { exp: nowSeconds + 3600.5 },
    severity: 'warning',
    field: 'claims.exp',
    rule: 'time-integer-seconds',
  },
  {
    name: 'HS256 alg',
    kind: 'mapkit',
    header: { alg: 'HS256' },
    severity: 'error',
    field: 'header.alg',
    rule: 'alg-es256',
    appleError: '401',
  },
  {
    name: 'DeviceCheck token with an issuer UUID',
    kind: 'devicecheck',
    claims: { iss: issuerId },
    severity: 'error',
    field: 'claims.iss',
    rule: 'team-or-key-id-shape',
    appleError: 'Unable to verify authorization token',
  },
  {
    name: 'Business Manager assertion with a 10-character kid',
    kind: 'business-manager',
    header: { kid: keyId },
    severity: 'error',
    field: 'header.kid',
    rule: 'uuid-shape',
    appleError: 'invalid_client',
  },
  {
    name: 'Business Manager assertion without jti',
    kind: 'business-manager',
    without: ['jti'],
    severity: 'error',
    field: 'claims.jti',
    rule: 'field-required',
    appleError: 'invalid_client',
  },
  {
    name: 'Business Manager assertion whose iss is not its sub',
    kind: 'business-manager',
    claims: { iss: 'SCHOOLAPI.0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f' },
    severity: 'warning',
    field: 'claims.iss',
    rule: 'iss-equals-sub',
    source: 'derived',
  },
  {
    name: 'Maps scope Apple does not document',
    kind: 'mapkit',
    claims: { scope: 'mapkit_js' },
    severity: 'warning',
    field: 'claims.scope',
    rule: 'maps-scope-value',
    source: 'unconfirmed',
  },
  {
    name: 'MusicKit origin on a server-to-server token',
    kind: 'musickit',
    claims: { origin: ['https://music.example.com'] },
    severity: 'warning',
    field: 'claims.origin',
    rule: 'origin-browser-only',
    appleError: 'Origin header',
  },
];

function applyChanges(
  base: Record<string, unknown>,
  changes: Record<string, unknown> = {},
  without: string[] = [],
): Record<string, unknown> {
  const result: Record<string, unknown> = { ...base, ...changes };
  for (const [name, value] of Object.entries(changes)) if (value === undefined) delete result[name];
  for (const name of without) delete result[name];
  return result;
}

describe.each(problemCases)('inspectAppleToken: $name', (testCase) => {
  it('names the field, the rule and the Apple error', () => {
    const sample = samples[testCase.kind];
    const header = applyChanges(sample.header, testCase.header);
    const claims = applyChanges(sample.claims, testCase.claims, testCase.without);
    const report = inspect(header, claims, testCase.kind);

    const problem = report.problems.find((p) => p.rule === testCase.rule);
    expect(problem).toBeDefined();
    expect(problem!.severity).toBe(testCase.severity);
    const defaultSource = testCase.severity === 'error' ? 'apple' : 'reports';
    expect(problem!.source).toBe(testCase.source ?? defaultSource);
    expect(problem!.field).toBe(testCase.field);
    expect(problem!.message).toContain(testCase.kind);
    expect(problem!.message).toContain(testCase.field);
    if (testCase.appleError !== undefined)
      expect(problem!.appleError).toContain(testCase.appleError);
    const errors = report.problems.filter((p) => p.severity === 'error');
    expect(errors.length > 0).toBe(testCase.severity === 'error');
  });
});

/** Signs header and claims given as raw JSON text, which may repeat a member name. */
function signJsonText(headerJson: string, claimsJson: string): string {
  const encode = (text: string) => Buffer.from(text).toString('base64url');
  const signingInput = `${encode(headerJson)}.${encode(claimsJson)}`;
  const signature = sign('sha256', Buffer.from(signingInput), {
    key: privateKey,
    dsaEncoding: 'ieee-p1363',
  });
  return `${signingInput}.${signature.toString('base64url')}`;
}

describe('inspectAppleToken: duplicate member names', () => {
  const { header, claims } = samples['client-secret'];
  const claimsJson = JSON.stringify(claims);

  it('flags a claim given twice', () => {
    // JSON.parse keeps the last aud, but a parser that keeps the first sees another audience.
    const repeated = claimsJson.replace('{', '{"aud":"https://example.com",');
    const report = inspectAppleToken(signJsonText(JSON.stringify(header), repeated), { now });

    expect(report.kind).toBe('client-secret');
    const problem = report.problems.find((p) => p.rule === 'json-duplicate-name');
    expect(problem?.severity).toBe('error');
    expect(problem?.field).toBe('claims.aud');
    expect(problem?.source).toBe('derived');
    expect(problem?.message).toContain('claims.aud');
  });

  it('flags a header field given twice', () => {
    const repeated = '{"alg":"none","alg":"ES256","kid":"ABC123DEFG"}';
    const report = inspectAppleToken(signJsonText(repeated, claimsJson), { now });

    const fields = report.problems
      .filter((p) => p.rule === 'json-duplicate-name')
      .map((p) => p.field);
    expect(fields).toEqual(['header.alg']);
  });

  it('compares names after unescaping', () => {
    const repeated = claimsJson.replace('{', '{"\\u0073ub":"com.example.app",');
    const report = inspectAppleToken(signJsonText(JSON.stringify(header), repeated), { now });

    const fields = report.problems
      .filter((p) => p.rule === 'json-duplicate-name')
      .map((p) => p.field);
    expect(fields).toEqual(['claims.sub']);
  });

  it('ignores names repeated in nested objects', () => {
    const nested = claimsJson.replace(
      '{',
      '{"x":[{"aud":1},{"aud":2}],"y":{"sub":1,"z":"\\"sub\\""},',
    );
    const report = inspectAppleToken(signJsonText(JSON.stringify(header), nested), { now });

    expect(report.problems.map((p) => p.rule)).not.toContain('json-duplicate-name');
  });
});

describe('inspectAppleToken: signature and shape', () => {
  it('flags a DER-encoded signature', () => {
    const { header, claims } = samples['client-secret'];
    const report = inspectAppleToken(signToken(header, claims, 'der'), { now });
    expect(report.signatureLength).toBeGreaterThanOrEqual(68);
    const problem = report.problems.find((p) => p.rule === 'signature-jose-64');
    expect(problem?.field).toBe('signature');
    expect(problem?.message).toContain('DER');
  });

  it('flags an unsigned token', () => {
    const { header, claims } = samples.apns;
    const token = signToken(header, claims).replace(/\.[^.]+$/, '.');
    const report = inspectAppleToken(token, { now });
    expect(report.signatureLength).toBe(0);
    expect(report.problems.map((p) => p.rule)).toContain('signature-jose-64');
  });

  it('rejects text that is not a compact JWS', () => {
    const codes = ['a.b', 'a.b.c.d', '!!.e30.AA', 'e30.bm90anNvbg.AA', 'W10.e30.AA'].map((text) => {
      try {
        inspectAppleToken(text, { now });
        return 'none';
      } catch (error) {
        return (error as { code?: string }).code;
      }
    });
    expect(codes).toEqual(Array(5).fill('ERR_APPLE_TOKEN_MALFORMED'));
  });

  it.each([
    ['abc', 'has 1 dot-separated part, but'],
    ['a.b', 'has 2 dot-separated parts, but'],
  ])('counts the parts of %s', (text, expected) => {
    expect(() => inspectAppleToken(text, { now })).toThrow(expected);
  });

  it.each([
    ['seconds', () => nowSeconds],
    ['microseconds', () => nowSeconds * 1_000_000],
    ['NaN', () => NaN],
    ['a string', () => String(nowSeconds * 1000) as unknown as number],
  ])('rejects a clock returning %s', (_name, clock) => {
    const { header, claims } = samples['client-secret'];
    const token = signToken(header, { ...claims, exp: nowSeconds - 10 });
    expect(() => inspectAppleToken(token, { now: clock })).toThrow(
      expect.objectContaining({ code: 'ERR_APPLE_TIME_INVALID' }),
    );
  });

  it('rejects a kind that does not exist', () => {
    const { header, claims } = samples.apns;
    expect(() =>
      inspectAppleToken(signToken(header, claims), { kind: 'fax' as AppleTokenKind, now }),
    ).toThrow(expect.objectContaining({ code: 'ERR_APPLE_KIND_UNKNOWN' }));
  });

  it('escapes control characters in messages', () => {
    const { header, claims } = samples['client-secret'];
    const token = signToken({ ...header, '\u001b[2J': 1 }, { ...claims, 'a\u202eb': 1 });
    const report = inspectAppleToken(token, { now });

    const messages = report.problems.map((problem) => problem.message);
    expect(messages).toHaveLength(2);
    // eslint-disable-next-line no-control-regex
    for (const message of messages) expect(message).not.toMatch(/[\u001b\u202e]/);
    expect(messages.join('\n')).toContain('\\u001b[2J');
    expect(messages.join('\n')).toContain('a\\u202eb');
  });

  it('keeps token text out of every message', () => {
    const { header, claims } = samples.weatherkit;
    const token = signToken({ ...header, id: 'X.Y' }, { ...claims, aud: 'x' });
    const report = inspectAppleToken(token, { kind: 'weatherkit', now });
    expect(report.problems.length).toBeGreaterThan(0);
    const [headerText, claimsText, signatureText] = token.split('.');
    for (const problem of report.problems) {
      expect(problem.message).not.toContain(headerText);
      expect(problem.message).not.toContain(claimsText);
      expect(problem.message).not.toContain(signatureText);
    }
  });
});

describe('inspectAppleToken: many or long names', () => {
  const manyClaims = (count: number, prefix = 'x') =>
    Object.fromEntries(Array.from({ length: count }, (_, index) => [`${prefix}${index}`, 1]));

  it('lists 20 extra claims, then counts the rest', () => {
    const { header, claims } = samples['client-secret'];
    const report = inspect(header, { ...claims, ...manyClaims(10_000) });

    const extra = report.problems.filter((problem) => problem.rule === 'claim-extra');
    expect(extra).toHaveLength(21);
    expect(extra.slice(0, 20).map((problem) => problem.field)).toEqual(
      Array.from({ length: 20 }, (_, index) => `claims.x${index}`),
    );
    expect(extra[20]?.field).toBe('claims');
    expect(extra[20]?.message).toContain('and 9980 more');
    expect(extra[20]?.severity).toBe('warning');
  });

  it('names an extra claim in plain words', () => {
    const { header, claims } = samples.apns;
    const report = inspect(header, { ...claims, sub: 'com.example.app' }, 'apns');
    const extra = report.problems.find((problem) => problem.rule === 'claim-extra');
    expect(extra?.message).toContain(
      'claims.sub is not one of the apns claims; the claims are iss, iat',
    );
  });

  it('lists 20 extra claims one by one', () => {
    const { header, claims } = samples['client-secret'];
    const report = inspect(header, { ...claims, ...manyClaims(20) });
    const extra = report.problems.filter((problem) => problem.rule === 'claim-extra');
    expect(extra).toHaveLength(20);
    expect(extra.every((problem) => problem.field.startsWith('claims.x'))).toBe(true);
  });

  it('keeps the severity of the kind', () => {
    const { header, claims } = samples.weatherkit;
    const report = inspect(header, { ...claims, ...manyClaims(50) }, 'weatherkit');
    const extra = report.problems.filter((problem) => problem.rule === 'claim-extra');
    expect(extra).toHaveLength(21);
    expect(extra.every((problem) => problem.severity === 'error')).toBe(true);
    expect(extra[20]?.message).toContain('and 30 more');
  });

  it('caps extra header fields', () => {
    const { header, claims } = samples['client-secret'];
    const report = inspect({ ...header, ...manyClaims(500, 'h') }, claims);
    const extra = report.problems.filter((problem) => problem.rule === 'header-field-extra');
    expect(extra).toHaveLength(21);
    expect(extra[20]?.field).toBe('header');
    expect(extra[20]?.message).toContain('and 480 more');
  });

  it('keeps typ listed among many fields', () => {
    const { header, claims } = samples['client-secret'];
    const report = inspect({ ...header, ...manyClaims(30, 'h'), typ: 'JWT' }, claims);
    const typ = report.problems.find((problem) => problem.rule === 'typ-undocumented');
    expect(typ?.field).toBe('header.typ');
    expect(typ?.appleError).toBeTruthy();
    const extra = report.problems.filter((problem) => problem.field.startsWith('header'));
    expect(extra).toHaveLength(21);
    expect(extra[20]?.message).toContain('and 11 more');
  });

  it('caps repeated names', () => {
    const { header, claims } = samples['client-secret'];
    const names = Array.from({ length: 100 }, (_, index) => `"r${index}":1,"r${index}":2`);
    const claimsJson = JSON.stringify(claims).replace('{', `{${names.join(',')},`);
    const report = inspectAppleToken(signJsonText(JSON.stringify(header), claimsJson), { now });
    const repeated = report.problems.filter((problem) => problem.rule === 'json-duplicate-name');
    expect(repeated).toHaveLength(21);
    expect(repeated[20]?.message).toContain('and 80 more');
  });

  it('cuts long names to 64 characters', () => {
    const { header, claims } = samples['client-secret'];
    const longName = 'n'.repeat(10_000);
    const report = inspect({ ...header, [longName]: 1 }, { ...claims, [longName]: 1 });
    const extra = report.problems.filter((problem) => problem.rule.endsWith('-extra'));
    expect(extra).toHaveLength(2);
    for (const problem of extra) {
      expect(problem.field).toMatch(/^(claims|header)\.n{64}… \(10000 characters\)$/);
      expect(problem.message).toContain(`${'n'.repeat(64)}… (10000 characters)`);
      expect(problem.message).not.toContain('n'.repeat(65));
      expect(problem.message.length).toBeLessThan(600);
    }
  });

  it('cuts names by code point', () => {
    const { header, claims } = samples['client-secret'];
    const longName = '😀'.repeat(100);
    const report = inspect(header, { ...claims, [longName]: 1 });
    const [problem] = report.problems.filter((p) => p.rule === 'claim-extra');
    expect(problem?.field).toBe(`claims.${'😀'.repeat(64)}… (100 characters)`);
  });

  it('caps the names of an unknown kind', () => {
    const claims = { aud: 'https://example.com', ...manyClaims(300) };
    const report = inspect({ alg: 'ES256', ...manyClaims(300, 'h') }, claims);
    expect(report.kind).toBeUndefined();
    const [problem] = report.problems;
    expect(problem?.rule).toBe('kind-known');
    expect(problem?.message).toContain('header alg, h0, h1');
    expect(problem?.message).toContain('claims aud, x0, x1');
    expect(problem?.message.match(/and 281 more/g)).toHaveLength(2);
    expect(problem?.message.length).toBeLessThan(1500);
  });
});
