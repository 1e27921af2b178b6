/**
 * One table per Apple token kind, under a frozen clock: a valid token whose header and claims
 * are compared exactly and verified by jose and jsonwebtoken, then each rule of the kind broken
 * in turn. Every broken rule must be rejected before the signer is called, with the coded error,
 * field and rule the profile names.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createAppleToken, inspectAppleToken } from '../../src/apple/index.js';
import type { AppleTokenKind } from '../../src/apple/types.js';
import type { Signer } from '../../src/signer.js';
import {
  businessClientId,
  businessKeyId,
  createTestKey,
  day,
  eventLog,
  expectFollowsProfile,
  issuerId,
  keyId,
  now,
  nowSeconds,
  rejection,
  teamId,
  verifyIndependently,
  warningRules,
  type TestKey,
} from './support.js';

const iat = nowSeconds - 30;

interface ValidCase {
  name: string;
  kind: AppleTokenKind;
  options: Record<string, unknown>;
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  /** Rules of the warnings the mint must report, in order. */
  warnings?: string[];
}

interface BrokenCase {
  name: string;
  kind: AppleTokenKind;
  /** Changes to the kind's valid options; `undefined` removes an option. */
  change: Record<string, unknown>;
  code: string;
  field?: string;
  rule?: string;
}

const base: Record<AppleTokenKind, Record<string, unknown>> = {
  'client-secret': { teamId, clientId: 'com.example.web', keyId },
  'app-store-connect': { issuerId, keyId: '2X9R4HXF34' },
  'app-store-server': { issuerId, bundleId: 'com.example.app', keyId: '2X9R4HXF34' },
  apns: { teamId, keyId },
  musickit: { teamId, keyId },
  weatherkit: { teamId, serviceId: 'com.example.weather', keyId },
  mapkit: { teamId, keyId },
  devicecheck: { teamId, keyId },
  'business-manager': { clientId: businessClientId, keyId: businessKeyId, jti: 'jti-0001' },
};

const validCases: ValidCase[] = [
  {
    name: 'client secret',
    kind: 'client-secret',
    options: base['client-secret'],
    header: { alg: 'ES256', kid: keyId },
    claims: {
      iss: teamId,
      iat,
      exp: nowSeconds + 180 * day,
      aud: 'https://appleid.apple.com',
      sub: 'com.example.web',
    },
  },
  {
    name: 'App Store Connect team key',
    kind: 'app-store-connect',
    options: base['app-store-connect'],
    header: { alg: 'ES256', kid: '2X9R4HXF34', typ: 'JWT' },
    claims: { iss: issuerId, iat, exp: nowSeconds + 900, aud: 'appstoreconnect-v1' },
  },
  {
    name: 'App Store Connect individual key',
    kind: 'app-store-connect',
    options: { subject: 'user', keyId: '2X9R4HXF34' },
    header: { alg: 'ES256', kid: '2X9R4HXF34', typ: 'JWT' },
    claims: { sub: 'user', iat, exp: nowSeconds + 900, aud: 'appstoreconnect-v1' },
  },
  {
    name: 'App Store Connect scoped to long-lived GETs for 30 days',
    kind: 'app-store-connect',
    options: {
      ...base['app-store-connect'],
      scope: ['GET /v1/ciProducts?limit=10', 'GET /v1/ciBuildRuns/abc/actions'],
      lifetime: '30d',
    },
    header: { alg: 'ES256', kid: '2X9R4HXF34', typ: 'JWT' },
    claims: {
      iss: issuerId,
      iat,
      exp: nowSeconds + 30 * day,
      aud: 'appstoreconnect-v1',
      scope: ['GET /v1/ciProducts?limit=10', 'GET /v1/ciBuildRuns/abc/actions'],
    },
  },
  {
    name: 'App Store Server API',
    kind: 'app-store-server',
    options: base['app-store-server'],
    header: { alg: 'ES256', kid: '2X9R4HXF34', typ: 'JWT' },
    claims: {
      iss: issuerId,
      iat,
      exp: nowSeconds + 1200,
      aud: 'appstoreconnect-v1',
      bid: 'com.example.app',
    },
  },
  {
    name: 'APNs provider token',
    kind: 'apns',
    options: base.apns,
    header: { alg: 'ES256', kid: keyId },
    claims: { iss: teamId, iat },
  },
  {
    name: 'MusicKit without origin',
    kind: 'musickit',
    options: base.musickit,
    header: { alg: 'ES256', kid: keyId },
    claims: { iss: teamId, iat, exp: nowSeconds + 180 * day },
  },
  {
    name: 'MusicKit with an origin list',
    kind: 'musickit',
    options: { ...base.musickit, origin: ['https://music.example.com', 'https://example.com'] },
    header: { alg: 'ES256', kid: keyId },
    claims: {
      iss: teamId,
      iat,
      exp: nowSeconds + 180 * day,
      origin: ['https://music.example.com', 'https://example.com'],
    },
    warnings: ['origin-browser-only'],
  },
  {
    name: 'WeatherKit',
    kind: 'weatherkit',
    options: base.weatherkit,
    header: { alg: 'ES256', kid: keyId, id: `${teamId}.com.example.weather` },
    claims: { iss: teamId, iat, exp: nowSeconds + 3600, sub: 'com.example.weather' },
  },
  {
    name: 'MapKit JS with origin',
    kind: 'mapkit',
    options: { ...base.mapkit, origin: '*.example.com' },
    header: { alg: 'ES256', kid: keyId, typ: 'JWT' },
    claims: { iss: teamId, iat, exp: nowSeconds + 3600, origin: '*.example.com' },
  },
  {
    name: 'Maps Server API with scope',
    kind: 'mapkit',
    options: { ...base.mapkit, scope: 'server_api', lifetime: '30d' },
    header: { alg: 'ES256', kid: keyId, typ: 'JWT' },
    claims: { iss: teamId, iat, exp: nowSeconds + 30 * day, scope: 'server_api' },
  },
  {
    name: 'DeviceCheck',
    kind: 'devicecheck',
    options: base.devicecheck,
    header: { alg: 'ES256', kid: keyId },
    claims: { iss: teamId, iat },
  },
  {
    name: 'Apple Business Manager client assertion',
    kind: 'business-manager',
    options: base['business-manager'],
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
  {
    name: 'Apple School Manager client assertion',
    kind: 'business-manager',
    options: {
      ...base['business-manager'],
      clientId: 'SCHOOLAPI.0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f',
    },
    header: { alg: 'ES256', kid: businessKeyId },
    claims: {
      sub: 'SCHOOLAPI.0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f',
      aud: 'https://account.apple.com/auth/oauth2/v2/token',
      iat,
      exp: nowSeconds + 3600,
      jti: 'jti-0001',
      iss: 'SCHOOLAPI.0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f',
    },
  },
];

const missing = 'ERR_APPLE_FIELD_MISSING';
const invalid = 'ERR_APPLE_FIELD_INVALID';
const unexpected = 'ERR_APPLE_FIELD_UNEXPECTED';
const tooLong = 'ERR_APPLE_LIFETIME_TOO_LONG';

/** Rules every kind shares, broken for each kind. */
function sharedBrokenCases(kind: AppleTokenKind): BrokenCase[] {
  const uuidKey = kind === 'business-manager';
  return [
    { name: 'kid missing', kind, change: { keyId: undefined }, code: missing, field: 'header.kid' },
    {
      name: 'kid of the wrong shape',
      kind,
      change: { keyId: uuidKey ? 'ABC123DEFG' : 'ABC-123' },
      code: invalid,
      field: 'header.kid',
      rule: uuidKey ? 'uuid-shape' : 'team-or-key-id-shape',
    },
    {
      name: 'kid not a string',
      kind,
      change: { keyId: 1234567890 },
      code: invalid,
      field: 'header.kid',
      rule: 'field-type',
    },
    {
      name: 'option of another kind',
      kind,
      change: { bundleId: 'com.example.app', ...(kind === 'app-store-server' ? { teamId } : {}) },
      code: unexpected,
      rule: 'options-known',
    },
    {
      name: 'iat backdating below zero',
      kind,
      change: { iatSkewSeconds: -1 },
      code: 'ERR_APPLE_SKEW_INVALID',
    },
    {
      name: 'iat backdating over 300 s',
      kind,
      change: { iatSkewSeconds: 301 },
      code: 'ERR_APPLE_SKEW_INVALID',
    },
    {
      name: 'fractional iat backdating',
      kind,
      change: { iatSkewSeconds: 1.5 },
      code: 'ERR_APPLE_SKEW_INVALID',
    },
    {
      name: 'clock returning NaN',
      kind,
      change: { now: () => NaN },
      code: 'ERR_APPLE_TIME_INVALID',
    },
    {
      name: 'clock in seconds',
      kind,
      change: { now: () => nowSeconds },
      code: 'ERR_APPLE_TIME_INVALID',
      field: 'now',
    },
    {
      name: 'clock in microseconds',
      kind,
      change: { now: () => nowSeconds * 1_000_000 },
      code: 'ERR_APPLE_TIME_INVALID',
      field: 'now',
    },
  ];
}

/** Rules of kinds whose `iss` is a Team ID. */
function teamIdCases(kind: AppleTokenKind): BrokenCase[] {
  return [
    { name: 'Team ID missing', kind, change: { teamId: undefined }, code: missing },
    {
      name: 'issuer UUID as the Team ID',
      kind,
      change: { teamId: issuerId },
      code: invalid,
      field: 'claims.iss',
      rule: 'team-or-key-id-shape',
    },
    {
      name: 'Team ID of 9 characters',
      kind,
      change: { teamId: 'DEF123GHI' },
      code: invalid,
      field: 'claims.iss',
      rule: 'team-or-key-id-shape',
    },
  ];
}

/** Rules of kinds that take an exp, with a lifetime that is not a positive duration. */
function lifetimeValueCases(kind: AppleTokenKind): BrokenCase[] {
  return [
    { name: 'lifetime zero', kind, change: { lifetime: 0 }, code: 'ERR_APPLE_LIFETIME_INVALID' },
    {
      name: 'lifetime negative',
      kind,
      change: { lifetime: -60 },
      code: 'ERR_APPLE_LIFETIME_INVALID',
    },
    {
      name: 'lifetime in milliseconds as a fraction',
      kind,
      change: { lifetime: 1.5 },
      code: 'ERR_APPLE_LIFETIME_INVALID',
    },
    {
      name: 'lifetime text not a duration',
      kind,
      change: { lifetime: '10 days' },
      code: 'ERR_DURATION_INVALID',
    },
  ];
}

const brokenCases: BrokenCase[] = [
  ...(Object.keys(base) as AppleTokenKind[]).flatMap(sharedBrokenCases),
  ...(
    ['client-secret', 'apns', 'musickit', 'weatherkit', 'mapkit', 'devicecheck'] as const
  ).flatMap(teamIdCases),
  ...(
    [
      'client-secret',
      'app-store-connect',
      'app-store-server',
      'musickit',
      'weatherkit',
      'mapkit',
      'business-manager',
    ] as const
  ).flatMap(lifetimeValueCases),

  // Sign in with Apple client secret.
  {
    name: 'client ID missing',
    kind: 'client-secret',
    change: { clientId: undefined },
    code: missing,
    field: 'claims.sub',
  },
  {
    name: 'client ID empty',
    kind: 'client-secret',
    change: { clientId: '' },
    code: invalid,
    field: 'claims.sub',
    rule: 'client-id-shape',
  },
  {
    name: 'client ID with a space',
    kind: 'client-secret',
    change: { clientId: 'com.example web' },
    code: invalid,
    rule: 'client-id-shape',
  },
  {
    name: 'client ID with a zero-width space',
    kind: 'client-secret',
    change: { clientId: 'com.example.web\u200b' },
    code: invalid,
    field: 'claims.sub',
    rule: 'client-id-shape',
  },
  {
    name: 'client ID with a bidi override',
    kind: 'client-secret',
    change: { clientId: '\u202ecom.example.web' },
    code: invalid,
    rule: 'client-id-shape',
  },
  {
    name: 'client ID with a Cyrillic look-alike',
    kind: 'client-secret',
    change: { clientId: 'com.ex\u0430mple.web' },
    code: invalid,
    rule: 'client-id-shape',
  },
  {
    name: 'client ID in full-width letters',
    kind: 'client-secret',
    change: { clientId: 'com.example.\uff57\uff45\uff42' },
    code: invalid,
    rule: 'client-id-shape',
  },
  {
    name: 'lifetime over six months',
    kind: 'client-secret',
    change: { lifetime: '200d' },
    code: tooLong,
    field: 'claims.exp',
    rule: 'lifetime-max',
  },

  // App Store Connect.
  {
    name: 'neither issuer ID nor subject',
    kind: 'app-store-connect',
    change: { issuerId: undefined },
    code: missing,
    field: 'claims.iss',
    rule: 'issuer-or-user',
  },
  {
    name: 'both issuer ID and subject',
    kind: 'app-store-connect',
    change: { subject: 'user' },
    code: unexpected,
    field: 'claims.sub',
    rule: 'issuer-or-user',
  },
  {
    name: 'Team ID as the issuer ID',
    kind: 'app-store-connect',
    change: { issuerId: teamId },
    code: invalid,
    field: 'claims.iss',
    rule: 'uuid-shape',
  },
  {
    name: 'subject other than user',
    kind: 'app-store-connect',
    change: { issuerId: undefined, subject: 'admin' },
    code: invalid,
    field: 'claims.sub',
    rule: 'field-value',
  },
  {
    name: 'scope entry without a method',
    kind: 'app-store-connect',
    change: { scope: ['/v1/apps'] },
    code: invalid,
    field: 'claims.scope',
    rule: 'scope-entry-shape',
  },
  {
    name: 'scope entry with a lower-case method',
    kind: 'app-store-connect',
    change: { scope: ['get /v1/apps'] },
    code: invalid,
    rule: 'scope-entry-shape',
  },
  {
    name: 'scope as one string',
    kind: 'app-store-connect',
    change: { scope: 'GET /v1/apps' },
    code: invalid,
    rule: 'field-type',
  },
  {
    name: 'scope empty',
    kind: 'app-store-connect',
    change: { scope: [] },
    code: invalid,
    rule: 'field-type',
  },
  {
    name: 'unscoped token over 20 minutes',
    kind: 'app-store-connect',
    change: { lifetime: '21m' },
    code: tooLong,
    rule: 'lifetime-max',
  },
  {
    name: 'iat backdating past 20 minutes',
    kind: 'app-store-connect',
    change: { lifetime: '20m', iatSkewSeconds: 60 },
    code: tooLong,
    rule: 'lifetime-max',
  },
  {
    name: 'long lifetime for a resource off the long-lived list',
    kind: 'app-store-connect',
    change: { scope: ['GET /v1/apps'], lifetime: '1h' },
    code: tooLong,
    rule: 'lifetime-max',
  },
  {
    name: 'long lifetime for a POST on a long-lived resource',
    kind: 'app-store-connect',
    change: { scope: ['POST /v1/ciBuildRuns'], lifetime: '1h' },
    code: tooLong,
    rule: 'lifetime-max',
  },
  {
    name: 'long lifetime through a dot segment',
    kind: 'app-store-connect',
    change: { scope: ['GET /v1/apps/../ciProducts'], lifetime: '30d' },
    code: invalid,
    field: 'claims.scope',
    rule: 'scope-entry-shape',
  },
  {
    name: 'long lifetime when one entry is off the list',
    kind: 'app-store-connect',
    change: { scope: ['GET /v1/ciProducts', 'GET /v1/users'], lifetime: '1h' },
    code: tooLong,
    rule: 'lifetime-max',
  },
  {
    name: 'scoped token over 180 days',
    kind: 'app-store-connect',
    change: { scope: ['GET /v1/ciProducts'], lifetime: '181d' },
    code: tooLong,
    rule: 'lifetime-max',
  },

  // App Store Server API.
  {
    name: 'bundle ID missing',
    kind: 'app-store-server',
    change: { bundleId: undefined },
    code: missing,
    field: 'claims.bid',
  },
  {
    name: 'bundle ID with a space',
    kind: 'app-store-server',
    change: { bundleId: 'com.example app' },
    code: invalid,
    field: 'claims.bid',
    rule: 'bundle-id-shape',
  },
  {
    name: 'issuer ID missing',
    kind: 'app-store-server',
    change: { issuerId: undefined },
    code: missing,
    field: 'claims.iss',
  },
  {
    name: 'Team ID as the issuer ID',
    kind: 'app-store-server',
    change: { issuerId: teamId },
    code: invalid,
    rule: 'uuid-shape',
  },
  {
    name: 'lifetime over 60 minutes',
    kind: 'app-store-server',
    change: { lifetime: '61m' },
    code: tooLong,
    rule: 'lifetime-max',
  },
  {
    name: 'iat backdating past 60 minutes',
    kind: 'app-store-server',
    change: { lifetime: '60m' },
    code: tooLong,
    rule: 'lifetime-max',
  },

  // APNs and DeviceCheck carry no exp.
  {
    name: 'lifetime on a token without exp',
    kind: 'apns',
    change: { lifetime: '1h' },
    code: unexpected,
    rule: 'options-known',
  },
  {
    name: 'lifetime on a token without exp',
    kind: 'devicecheck',
    change: { lifetime: '1h' },
    code: unexpected,
    rule: 'options-known',
  },
  {
    name: 'App Store Connect issuer option',
    kind: 'devicecheck',
    change: { issuerId },
    code: unexpected,
    rule: 'options-known',
  },

  // MusicKit.
  {
    name: 'origin as one string',
    kind: 'musickit',
    change: { origin: 'https://music.example.com' },
    code: invalid,
    field: 'claims.origin',
    rule: 'field-type',
  },
  {
    name: 'origin entry empty',
    kind: 'musickit',
    change: { origin: [''] },
    code: invalid,
    rule: 'origin-shape',
  },
  {
    name: 'origin entry with a BEL',
    kind: 'musickit',
    change: { origin: ['https://music.example.com\u0007'] },
    code: invalid,
    field: 'claims.origin',
    rule: 'origin-shape',
  },
  {
    name: 'origin entry with a ZWSP',
    kind: 'musickit',
    change: { origin: ['https://music.example.com', 'https://\u200bweb.example.com'] },
    code: invalid,
    rule: 'origin-shape',
  },
  {
    name: 'wildcard origin with a NUL',
    kind: 'musickit',
    change: { origin: ['*.example.com\u0000'] },
    code: invalid,
    rule: 'origin-shape',
  },
  {
    name: 'origin host not in punycode',
    kind: 'musickit',
    change: { origin: ['https://m\u00fcsic.example.com'] },
    code: invalid,
    rule: 'origin-shape',
  },
  {
    name: 'lifetime over 15 777 000 s',
    kind: 'musickit',
    change: { lifetime: 15_777_001 },
    code: tooLong,
    rule: 'lifetime-max',
  },

  // WeatherKit.
  {
    name: 'Service ID missing',
    kind: 'weatherkit',
    change: { serviceId: undefined },
    code: missing,
    field: 'claims.sub',
  },
  {
    name: 'Team ID as the Service ID',
    kind: 'weatherkit',
    change: { serviceId: teamId },
    code: invalid,
    field: 'claims.sub',
    rule: 'service-id-shape',
  },
  {
    name: 'Service ID without a dot',
    kind: 'weatherkit',
    change: { serviceId: 'weather' },
    code: invalid,
    rule: 'service-id-shape',
  },

  // MapKit JS and Maps Server API.
  {
    name: 'scope not framework names',
    kind: 'mapkit',
    change: { scope: 'Server API' },
    code: invalid,
    field: 'claims.scope',
    rule: 'maps-scope-shape',
  },
  {
    name: 'origin with a space',
    kind: 'mapkit',
    change: { origin: 'a.example.com b.example.com' },
    code: invalid,
    field: 'claims.origin',
    rule: 'origin-shape',
  },
  {
    name: 'origin with a zero-width space',
    kind: 'mapkit',
    change: { origin: '*.example.com\u200b' },
    code: invalid,
    field: 'claims.origin',
    rule: 'origin-shape',
  },
  {
    name: 'origin with a control character',
    kind: 'mapkit',
    change: { origin: '*.example.com\u0007' },
    code: invalid,
    rule: 'origin-shape',
  },
  {
    name: 'origin as a list',
    kind: 'mapkit',
    change: { origin: ['*.example.com'] },
    code: invalid,
    rule: 'field-type',
  },

  // Apple School Manager and Apple Business Manager.
  {
    name: 'client ID missing',
    kind: 'business-manager',
    change: { clientId: undefined },
    code: missing,
    field: 'claims.sub',
  },
  {
    name: 'client ID without its API prefix',
    kind: 'business-manager',
    change: { clientId: '0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f' },
    code: invalid,
    field: 'claims.sub',
    rule: 'client-id-shape',
  },
  {
    name: 'Sign in with Apple client ID',
    kind: 'business-manager',
    change: { clientId: 'com.example.web' },
    code: invalid,
    rule: 'client-id-shape',
  },
  {
    name: 'jti with a space',
    kind: 'business-manager',
    change: { jti: 'a b' },
    code: invalid,
    field: 'claims.jti',
    rule: 'value-blank',
  },
  {
    name: 'jti empty',
    kind: 'business-manager',
    change: { jti: '' },
    code: invalid,
    rule: 'value-blank',
  },
  {
    name: 'lifetime of 180 days',
    kind: 'business-manager',
    change: { lifetime: '180d' },
    code: tooLong,
    rule: 'lifetime-max',
  },
];

/** Wraps a signer to count sign calls, so that tests can see a token rejected before signing. */
function countingSigner(inner: Signer): Signer & { calls: number } {
  const counting = {
    keyId: inner.keyId,
    calls: 0,
    sign: (input: Uint8Array) => {
      counting.calls += 1;
      return inner.sign(input);
    },
    getPublicKey: () => inner.getPublicKey(),
  };
  return counting;
}

function withChange(
  options: Record<string, unknown>,
  change: Record<string, unknown>,
): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...options, ...change };
  for (const [name, value] of Object.entries(change)) if (value === undefined) delete merged[name];
  return merged;
}

let key: TestKey;

beforeAll(async () => {
  key = await createTestKey();
});

describe.each(validCases)('valid $kind token: $name', (testCase) => {
  it('has exactly the expected header and claims', async () => {
    const log = eventLog();
    const options = { ...testCase.options, signer: key.signer, now, onEvent: log.onEvent };
    const minted = await createAppleToken(testCase.kind, options as never);

    expect(minted.kind).toBe(testCase.kind);
    expect(minted.header).toStrictEqual(testCase.header);
    expect(Object.keys(minted.header)).toEqual(Object.keys(testCase.header));
    expect(minted.claims).toStrictEqual(testCase.claims);
    expect(Object.keys(minted.claims)).toEqual(Object.keys(testCase.claims));
    expect(minted.issuedAt.getTime()).toBe(iat * 1000);
    const exp = testCase.claims.exp as number | undefined;
    expect(minted.expiresAt?.getTime()).toBe(exp === undefined ? undefined : exp * 1000);
    expect(warningRules(log.events)).toEqual(testCase.warnings ?? []);
  });

  it('verifies with jose and jsonwebtoken and follows its profile', async () => {
    const options = { ...testCase.options, signer: key.signer, now };
    const minted = await createAppleToken(testCase.kind, options as never);

    const verified = await verifyIndependently(minted.token, key.publicPem);
    expect(verified.header).toStrictEqual(testCase.header);
    expect(verified.claims).toStrictEqual(testCase.claims);
    expectFollowsProfile(testCase.kind, verified.header, verified.claims);
  });

  it('passes inspection as its own kind', async () => {
    const options = { ...testCase.options, signer: key.signer, now };
    const minted = await createAppleToken(testCase.kind, options as never);

    const report = inspectAppleToken(minted.token, { kind: testCase.kind, now });
    const errors = report.problems.filter((problem) => problem.severity === 'error');
    expect(errors).toEqual([]);
    expect(report.problems.map((problem) => problem.rule)).toEqual(testCase.warnings ?? []);
    expect(report.signatureLength).toBe(64);
  });
});

describe.each(brokenCases)('broken $kind token: $name', (testCase) => {
  it('is rejected before signing', async () => {
    const signer = countingSigner(key.signer);
    const options = withChange(base[testCase.kind], testCase.change);
    const error = await rejection(() =>
      createAppleToken(testCase.kind, { now, ...options, signer } as never),
    );

    expect(error.code).toBe(testCase.code);
    expect(signer.calls).toBe(0);
    const message = String(error.message);
    const details = error.details as Record<string, unknown>;
    if (testCase.code.startsWith('ERR_APPLE_')) expect(message).toContain(testCase.kind);
    if (testCase.field !== undefined) {
      expect(details.field).toBe(testCase.field);
      expect(message).toContain(testCase.field);
    }
    if (testCase.rule !== undefined && testCase.rule !== 'options-known') {
      expect(details.source).toBe('apple');
    }
    if (testCase.rule !== undefined) {
      expect(details.rule).toBe(testCase.rule);
      expect(message).toContain(`rule ${testCase.rule}`);
    }
  });
});

describe('option values in error messages', () => {
  const long = 'x'.repeat(100_000);

  it.each([
    ['iatSkewSeconds', { iatSkewSeconds: long }, 'ERR_APPLE_SKEW_INVALID'],
    ['lifetime', { lifetime: [long] }, 'ERR_APPLE_LIFETIME_INVALID'],
    ['teamId', { teamId: { value: long } }, 'ERR_APPLE_FIELD_INVALID'],
  ])('shortens a long %s', async (_option, change, code) => {
    const options = { ...base['client-secret'], ...change, signer: key.signer, now };
    const error = await rejection(() => createAppleToken('client-secret', options as never));

    expect(error.code).toBe(code);
    expect(String(error.message).length).toBeLessThan(500);
  });

  it('keeps surrogate pairs whole when it cuts', async () => {
    // Two ASCII characters first, so that a cut at 60 UTF-16 units falls inside a pair.
    const teamId = `a${'\u{1F600}'.repeat(100)}`;
    const options = { ...base['client-secret'], teamId, signer: key.signer, now };
    const error = await rejection(() => createAppleToken('client-secret', options as never));

    expect(error.code).toBe('ERR_APPLE_FIELD_INVALID');
    const message = String(error.message);
    expect(message).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
    expect(message).toContain('\u{1F600}…" (103 characters)');
  });

  it.each([
    { option: 'iatSkewSeconds', value: NaN, code: 'ERR_APPLE_SKEW_INVALID', shown: 'NaN' },
    {
      option: 'iatSkewSeconds',
      value: Infinity,
      code: 'ERR_APPLE_SKEW_INVALID',
      shown: 'Infinity',
    },
    { option: 'lifetime', value: NaN, code: 'ERR_APPLE_LIFETIME_INVALID', shown: 'NaN' },
    {
      option: 'lifetime',
      value: 180n * 86_400n,
      code: 'ERR_APPLE_LIFETIME_INVALID',
      shown: '15552000n',
    },
    { option: 'teamId', value: 10n, code: 'ERR_APPLE_FIELD_INVALID', shown: '10n' },
    {
      option: 'keyId',
      value: Symbol('kid'),
      code: 'ERR_APPLE_FIELD_INVALID',
      shown: 'Symbol(kid)',
    },
  ])('shows $option $shown as given', async ({ option, value, code, shown }) => {
    const options = { ...base['client-secret'], [option]: value, signer: key.signer, now };
    const error = await rejection(() => createAppleToken('client-secret', options as never));

    expect(error.code).toBe(code);
    expect(String(error.message)).toContain(`is ${shown}`);
  });

  it('describes a circular option value', async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const options = { ...base['client-secret'], teamId: circular, signer: key.signer, now };
    const error = await rejection(() => createAppleToken('client-secret', options as never));

    expect(error.code).toBe('ERR_APPLE_FIELD_INVALID');
  });
});

describe('list options', () => {
  function signedClaims(token: string): Record<string, unknown> {
    return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));
  }

  it('signs the scope it checked, whatever its toJSON returns', async () => {
    const scope = Object.assign(['GET /v1/ciProducts'], { toJSON: () => ['POST /v1/apps'] });
    const options = { ...base['app-store-connect'], scope, lifetime: '30d' };
    const minted = await createAppleToken('app-store-connect', {
      ...options,
      signer: key.signer,
      now,
    } as never);

    expect(signedClaims(minted.token).scope).toEqual(['GET /v1/ciProducts']);
    expect(minted.claims.scope).toEqual(['GET /v1/ciProducts']);
  });

  it('signs the origin list it checked, however often it is read', async () => {
    let reads = 0;
    const origin: string[] = [];
    Object.defineProperty(origin, 0, {
      enumerable: true,
      get: () => (reads++ === 0 ? 'https://music.example.com' : 'https://other.example.com'),
    });
    const minted = await createAppleToken('musickit', {
      ...base.musickit,
      origin,
      signer: key.signer,
      now,
    } as never);

    expect(signedClaims(minted.token).origin).toEqual(['https://music.example.com']);
  });
});

describe('signer option', () => {
  it.each([
    ['a key path', './AuthKey_ABC123DEFG.p8'],
    ['a key reference', 'awskms:alias/apple-siwa'],
    ['nothing', undefined],
  ])('names createSigner when given %s', async (_shape, signer) => {
    const options = { ...base['client-secret'], signer, now };
    let caught: unknown;
    try {
      await createAppleToken('client-secret', options as never);
    } catch (error) {
      caught = error;
    }

    expect(caught).toBeInstanceOf(TypeError);
    expect((caught as Error).message).toContain("await createSigner('file:AuthKey_KEYID.p8')");
  });
});

describe('key ID equal to the Team ID', () => {
  it.each(['client-secret', 'apns', 'musickit', 'weatherkit', 'mapkit', 'devicecheck'] as const)(
    'warns while minting %s',
    async (kind) => {
      const log = eventLog();
      const options = {
        ...base[kind],
        keyId: teamId,
        signer: key.signer,
        now,
        onEvent: log.onEvent,
      };
      const minted = await createAppleToken(kind, options as never);

      expect(minted.token.split('.')).toHaveLength(3);
      expect(warningRules(log.events)).toContain('kid-equals-iss');
      const warning = log.events.find((event) => event.rule === 'kid-equals-iss');
      expect(warning?.message).toContain('header.kid (option keyId)');
      expect(warning?.source).toBe('derived');
    },
  );

  it('is listed by inspection', async () => {
    const options = { ...base['client-secret'], keyId: teamId, signer: key.signer, now };
    const minted = await createAppleToken('client-secret', options as never);

    const report = inspectAppleToken(minted.token, { now });
    const rules = report.problems.map((problem) => problem.rule);
    expect(rules).toEqual(['kid-equals-iss']);
    expect(report.problems[0]?.severity).toBe('warning');
  });

  it('stays quiet for distinct IDs', async () => {
    const log = eventLog();
    const options = { ...base['client-secret'], signer: key.signer, now, onEvent: log.onEvent };
    await createAppleToken('client-secret', options as never);

    expect(warningRules(log.events)).not.toContain('kid-equals-iss');
  });
});
