/**
 * One declarative profile per Apple token kind: the header fields, the exact claims set, the
 * identifier shapes, the lifetime cap and what Apple counts it from, the default lifetime and
 * the refresh policy. Each rule cites the Apple page that states it; rules known only from
 * reports produce warnings instead of errors (see identifiers.ts and rules.ts).
 */
import { randomUUID } from 'node:crypto';
import type { BeforeExpiryPolicy, ByAgePolicy } from '../token-policy.js';
import {
  bundleId,
  businessClientId,
  mapsOrigin,
  nonBlank,
  quote,
  serviceId,
  signInClientId,
  tenCharacterId,
  uuid,
  webOrigin,
  type ShapeCheck,
} from './identifiers.js';
import {
  makeFinding,
  type FieldSpec,
  type Finding,
  type ProfileDefinition,
  type SpanCap,
} from './rules.js';
import { checkScopeEntry, longLivedScopeShortfall } from './scope.js';
import type { AppleTokenField, AppleTokenKind, AppleTokenProfile } from './types.js';

const day = 86_400;
// Sign in with Apple and MusicKit: exp at most 15,777,000 s (about six months) after Apple's now.
const sixMonthsSeconds = 15_777_000;
const portalKeysPage = 'Certificates, Identifiers & Profiles → Keys';
const teamIdPage = 'in the Apple Developer account under Membership details';

const teamId = tenCharacterId('Team ID', teamIdPage);
const portalKeyId = (service: string): ShapeCheck =>
  tenCharacterId('key ID', `in ${portalKeysPage} for a key with ${service} enabled`);
const issuerId = uuid('issuer ID', 'App Store Connect → Users and Access → Integrations');

// Refresh long-lived tokens halfway through their life, and never serve one close to exp.
const beforeExpiry = (minRemainingSeconds: number): BeforeExpiryPolicy => ({
  type: 'before-expiry',
  refreshAtFraction: 0.5,
  minRemainingSeconds,
});

// APNs: refresh no more often than every 20 minutes and no less often than every 60. The
// maximum age stops 5 minutes short of the hour in case Apple's clock runs ahead of ours.
const byAge: ByAgePolicy = {
  type: 'by-age',
  minAgeSeconds: 1200,
  maxAgeSeconds: 3300,
  targetAgeSeconds: 2700,
};

function keyIdHeader(shape: ShapeCheck): FieldSpec {
  return { name: 'kid', option: 'keyId', required: true, type: 'string', shape };
}

const typJwt: FieldSpec = { name: 'typ', required: true, type: 'string', value: 'JWT' };

function stringClaim(name: string, option: string, shape: ShapeCheck, required = true): FieldSpec {
  return { name, option, required, type: 'string', shape };
}

function fixedClaim(name: string, value: string): FieldSpec {
  return { name, required: true, type: 'string', value };
}

const iatClaim: FieldSpec = {
  name: 'iat',
  option: 'iatSkewSeconds',
  required: true,
  type: 'time',
  build: (_options, times) => times.iat,
};

const expClaim: FieldSpec = {
  name: 'exp',
  option: 'lifetime',
  required: true,
  type: 'time',
  build: (_options, times) => times.exp,
};

const keyIdField = (description: string): AppleTokenField => ({
  option: 'keyId',
  flag: '--key-id',
  description,
  required: true,
  type: 'string',
});

const teamIdField: AppleTokenField = {
  option: 'teamId',
  flag: '--team-id',
  description: 'The 10-character Team ID (iss).',
  required: true,
  type: 'string',
};

const lifetimeField = (description: string): AppleTokenField => ({
  option: 'lifetime',
  flag: '--lifetime',
  description,
  required: false,
  type: 'duration',
});

const skewField: AppleTokenField = {
  option: 'iatSkewSeconds',
  flag: '--iat-skew',
  description: 'How far to backdate iat against clock skew, 0 to 300 s (default 30s).',
  required: false,
  type: 'duration',
};

/** Completes a definition with the field lists that the public profile shows. */
function define(
  definition: Omit<ProfileDefinition, 'headerFields' | 'claimFields' | 'requiredClaims'>,
): ProfileDefinition {
  return Object.freeze({
    ...definition,
    headerFields: ['alg', ...definition.header.map((spec) => spec.name)],
    claimFields: definition.claims.map((spec) => spec.name),
    requiredClaims: definition.claims.filter((spec) => spec.required).map((spec) => spec.name),
  });
}

const clientSecret = define({
  kind: 'client-secret',
  summary: 'Sign in with Apple / Account & Organizational Data Sharing client secret.',
  sources: [
    'https://developer.apple.com/documentation/accountorganizationaldatasharing/creating-a-client-secret',
    'https://developer.apple.com/documentation/technotes/tn3107-resolving-sign-in-with-apple-response-errors',
  ],
  appleError: 'HTTP 400 invalid_client',
  header: [keyIdHeader(portalKeyId('Sign in with Apple'))],
  claims: [
    stringClaim('iss', 'teamId', teamId),
    iatClaim,
    expClaim,
    fixedClaim('aud', 'https://appleid.apple.com'),
    stringClaim('sub', 'clientId', signInClientId),
  ],
  extraClaimSeverity: 'warning',
  lifetime: {
    countsFrom: 'apple-now',
    maxSeconds: sixMonthsSeconds,
    maxInclusive: true,
    marginSeconds: day,
    marginSource: 'reports',
    // Refused, not warned: secrets at the cap were reported rejected, Apple checks exp against its
    // own clock, and a day is nothing against six months.
    marginSeverity: 'error',
    defaultSeconds: 180 * day,
  },
  maxIatAgeSeconds: undefined,
  refreshPolicy: beforeExpiry(day),
  fields: [
    teamIdField,
    {
      option: 'clientId',
      flag: '--client-id',
      description: 'The App ID (native apps) or Services ID (web) sent as client_id (sub).',
      required: true,
      type: 'string',
    },
    keyIdField('The 10-character ID of a key with Sign in with Apple enabled (kid).'),
    lifetimeField('How long the secret stays valid (default 180d, at most 181d14h30m).'),
    skewField,
  ],
  checks: [],
});

/** App Store Connect: 20 minutes, or up to six months for GETs on Apple's long-lived list. */
function appStoreConnectCap(claims: Readonly<Record<string, unknown>>): SpanCap {
  const shortfall = longLivedScopeShortfall(claims.scope);
  if (shortfall === undefined) {
    // NOTE: Apple says "up to six months" without a number of seconds; 180 days stays inside.
    return {
      maxSeconds: 180 * day,
      inclusive: true,
      marginSeconds: day,
      marginSource: 'derived',
      reason: '',
    };
  }
  return {
    maxSeconds: 1200,
    inclusive: true,
    marginSeconds: 60,
    marginSource: 'reports',
    reason: ` (longer lifetimes need a scope of GET requests on long-lived resources only, but ${shortfall})`,
  };
}

function checkIssuerOrUser(
  view: { claims: Readonly<Record<string, unknown>> },
  profile: ProfileDefinition,
): Finding[] {
  const hasIss = view.claims.iss !== undefined;
  const hasSub = view.claims.sub !== undefined;
  if (hasIss && hasSub) {
    const issue = {
      severity: 'error' as const,
      rule: 'issuer-or-user',
      problem:
        'is "user" beside an iss, but individual-key tokens have no iss and team-key tokens no sub',
      fix: 'Pass issuerId for a team key, or subject "user" for an individual key, not both',
    };
    return [
      makeFinding(
        profile,
        { field: 'claims.sub', option: 'subject' },
        issue,
        'ERR_APPLE_FIELD_UNEXPECTED',
      ),
    ];
  }
  if (hasIss || hasSub) return [];
  const issue = {
    severity: 'error' as const,
    rule: 'issuer-or-user',
    problem:
      'is missing, and so is sub, but a team key needs iss = issuer ID and an individual key sub = "user"',
    fix: 'Pass issuerId for a team key, or subject "user" for an individual key',
  };
  return [
    makeFinding(
      profile,
      { field: 'claims.iss', option: 'issuerId' },
      issue,
      'ERR_APPLE_FIELD_MISSING',
    ),
  ];
}

const appStoreConnect = define({
  kind: 'app-store-connect',
  summary: 'App Store Connect API token (team key with issuer ID, or individual key).',
  sources: [
    'https://developer.apple.com/documentation/appstoreconnectapi/generating-tokens-for-api-requests',
  ],
  appleError: 'HTTP 401 NOT_AUTHORIZED',
  header: [
    keyIdHeader(tenCharacterId('key ID', 'in App Store Connect → Users and Access → Integrations')),
    typJwt,
  ],
  claims: [
    stringClaim('iss', 'issuerId', issuerId, false),
    { name: 'sub', option: 'subject', required: false, type: 'string', value: 'user' },
    iatClaim,
    expClaim,
    fixedClaim('aud', 'appstoreconnect-v1'),
    {
      name: 'scope',
      option: 'scope',
      required: false,
      type: 'string-list',
      shape: checkScopeEntry,
    },
  ],
  extraClaimSeverity: 'warning',
  lifetime: {
    countsFrom: 'iat',
    maxSeconds: 1200,
    maxInclusive: true,
    marginSeconds: 60,
    marginSource: 'reports',
    defaultSeconds: 900,
  },
  spanCap: appStoreConnectCap,
  maxIatAgeSeconds: undefined,
  refreshPolicy: beforeExpiry(120),
  fields: [
    {
      option: 'issuerId',
      flag: '--issuer-id',
      description: 'The issuer ID (UUID) of a team key (iss). Leave out for an individual key.',
      required: false,
      type: 'string',
    },
    {
      option: 'subject',
      flag: '--subject',
      description: '"user" for an individual key (sub), instead of --issuer-id.',
      required: false,
      type: 'string',
    },
    keyIdField('The API key ID from App Store Connect (kid).'),
    {
      option: 'scope',
      flag: '--scope',
      description: 'A request the token is limited to, such as "GET /v1/apps"; repeatable.',
      required: false,
      type: 'string-list',
    },
    lifetimeField('How long the token stays valid (default 15m; at most 20m unless scoped).'),
    skewField,
  ],
  checks: [checkIssuerOrUser],
});

const appStoreServer = define({
  kind: 'app-store-server',
  summary: 'App Store Server API token (In-App Purchase key), with the bundle ID in bid.',
  sources: [
    'https://developer.apple.com/documentation/appstoreserverapi/generating-json-web-tokens-for-api-requests',
  ],
  appleError: 'HTTP 401 Unauthorized',
  header: [
    keyIdHeader(
      tenCharacterId(
        'key ID',
        'in App Store Connect → Users and Access → Integrations → In-App Purchase',
      ),
    ),
    typJwt,
  ],
  claims: [
    stringClaim('iss', 'issuerId', issuerId),
    iatClaim,
    expClaim,
    fixedClaim('aud', 'appstoreconnect-v1'),
    stringClaim('bid', 'bundleId', bundleId),
  ],
  extraClaimSeverity: 'warning',
  lifetime: {
    countsFrom: 'iat',
    maxSeconds: 3600,
    maxInclusive: true,
    // A 60-minute token has been reported to fail; stay 5 minutes short of the cap.
    marginSeconds: 300,
    marginSource: 'reports',
    defaultSeconds: 1200,
  },
  maxIatAgeSeconds: undefined,
  // NOTE: Apple's page requests a new JWT per request, but the provider reuses one instead.
  refreshPolicy: beforeExpiry(60),
  fields: [
    {
      option: 'issuerId',
      flag: '--issuer-id',
      description: 'The issuer ID (UUID) from App Store Connect (iss).',
      required: true,
      type: 'string',
    },
    {
      option: 'bundleId',
      flag: '--bundle-id',
      description: "The app's bundle ID (bid).",
      required: true,
      type: 'string',
    },
    keyIdField('The In-App Purchase key ID (kid).'),
    lifetimeField('How long the token stays valid (default 20m; at most 60m).'),
    skewField,
  ],
  checks: [],
});

/** APNs and DeviceCheck share one shape: iss and iat only, replaced by age. */
function providerTokenProfile(kind: 'apns' | 'devicecheck'): ProfileDefinition {
  const apns = kind === 'apns';
  const service = apns ? 'Apple Push Notifications service (APNs)' : 'DeviceCheck';
  return define({
    kind,
    summary: apns
      ? 'APNs provider authentication token (iss and iat only, refreshed every 20 to 60 minutes).'
      : 'DeviceCheck and App Attest receipt-refresh token (built like the APNs token).',
    sources: apns
      ? [
          'https://developer.apple.com/documentation/usernotifications/establishing-a-token-based-connection-to-apns',
        ]
      : [
          'https://developer.apple.com/documentation/devicecheck/accessing_and_modifying_per_device_data',
        ],
    appleError: apns
      ? 'HTTP 403 InvalidProviderToken (or ExpiredProviderToken for a stale iat)'
      : 'HTTP 401 "Unable to verify authorization token"',
    header: [keyIdHeader(portalKeyId(service))],
    claims: [stringClaim('iss', 'teamId', teamId), iatClaim],
    extraClaimSeverity: 'warning',
    lifetime: undefined,
    maxIatAgeSeconds: 3600,
    refreshPolicy: byAge,
    fields: [
      teamIdField,
      keyIdField(`The 10-character ID of a key with ${service} enabled (kid).`),
      skewField,
    ],
    checks: [],
  });
}

function checkOriginBinding(
  view: { claims: Readonly<Record<string, unknown>> },
  profile: ProfileDefinition,
): Finding[] {
  if (view.claims.origin === undefined) return [];
  const issue = {
    severity: 'warning' as const,
    rule: 'origin-browser-only',
    problem: 'binds the token to requests whose Origin header matches an entry',
    fix: 'Leave origin out of tokens for server-to-server calls, which send no Origin header and get HTTP 401',
  };
  return [
    makeFinding(
      profile,
      { field: 'claims.origin', option: 'origin' },
      issue,
      'ERR_APPLE_FIELD_INVALID',
      'HTTP 401 for requests without a matching Origin header',
    ),
  ];
}

const musicKit = define({
  kind: 'musickit',
  summary: 'Apple Music API / MusicKit developer token, with an optional origin list.',
  sources: ['https://developer.apple.com/documentation/applemusicapi/generating-developer-tokens'],
  appleError: 'HTTP 401 Unauthorized',
  header: [keyIdHeader(portalKeyId('MusicKit'))],
  claims: [
    stringClaim('iss', 'teamId', teamId),
    iatClaim,
    expClaim,
    { name: 'origin', option: 'origin', required: false, type: 'string-list', shape: webOrigin },
  ],
  extraClaimSeverity: 'warning',
  lifetime: {
    countsFrom: 'apple-now',
    maxSeconds: sixMonthsSeconds,
    maxInclusive: true,
    marginSeconds: day,
    marginSource: 'reports',
    // Refused, not warned: secrets at the cap were reported rejected, Apple checks exp against its
    // own clock, and a day is nothing against six months.
    marginSeverity: 'error',
    defaultSeconds: 180 * day,
  },
  maxIatAgeSeconds: undefined,
  refreshPolicy: beforeExpiry(day),
  fields: [
    teamIdField,
    keyIdField('The 10-character ID of a key with MusicKit enabled (kid).'),
    {
      option: 'origin',
      flag: '--origin',
      description:
        'A web origin allowed to use the token, such as https://music.example.com; repeatable.',
      required: false,
      type: 'string-list',
    },
    lifetimeField('How long the token stays valid (default 180d, at most 181d14h30m).'),
    skewField,
  ],
  checks: [checkOriginBinding],
});

function checkWeatherKitId(
  view: { header: Readonly<Record<string, unknown>>; claims: Readonly<Record<string, unknown>> },
  profile: ProfileDefinition,
): Finding[] {
  const expected = `${String(view.claims.iss)}.${String(view.claims.sub)}`;
  if (view.header.id === undefined || view.header.id === expected) return [];
  const issue = {
    severity: 'error' as const,
    rule: 'id-team-dot-service',
    problem: `is ${quote(view.header.id)}, but must be the Team ID and Service ID joined by a dot (iss.sub = ${quote(expected)})`,
    fix: 'Set the id header to "<Team ID>.<Service ID>"',
  };
  return [makeFinding(profile, { field: 'header.id' }, issue, 'ERR_APPLE_FIELD_INVALID')];
}

const weatherKit = define({
  kind: 'weatherkit',
  summary: 'WeatherKit REST API token (id header TEAM.SERVICE, sub = Service ID, no other claims).',
  sources: [
    'https://developer.apple.com/documentation/weatherkitrestapi/request-authentication-for-weatherkit-rest-api',
  ],
  appleError: 'HTTP 401 (or 403 Access Denied)',
  header: [
    keyIdHeader(portalKeyId('WeatherKit')),
    {
      name: 'id',
      required: true,
      type: 'string',
      build: (options) => `${String(options.teamId)}.${String(options.serviceId)}`,
    },
  ],
  claims: [
    stringClaim('iss', 'teamId', teamId),
    iatClaim,
    expClaim,
    stringClaim('sub', 'serviceId', serviceId),
  ],
  // Apple asks that the token contain only these claims.
  extraClaimSeverity: 'error',
  lifetime: {
    countsFrom: 'iat',
    maxSeconds: undefined,
    maxInclusive: true,
    marginSeconds: 0,
    marginSource: 'derived',
    defaultSeconds: 3600,
  },
  maxIatAgeSeconds: undefined,
  refreshPolicy: beforeExpiry(300),
  fields: [
    teamIdField,
    {
      option: 'serviceId',
      flag: '--service-id',
      description: 'The registered WeatherKit Service ID, such as com.example.weather (sub).',
      required: true,
      type: 'string',
    },
    keyIdField('The 10-character ID of a key with WeatherKit enabled (kid).'),
    lifetimeField('How long the token stays valid (default 1h; Apple documents no cap).'),
    skewField,
  ],
  checks: [checkWeatherKitId],
});

function checkMapsScope(
  view: { claims: Readonly<Record<string, unknown>> },
  profile: ProfileDefinition,
): Finding[] {
  const scope = view.claims.scope;
  if (typeof scope !== 'string') return [];
  const where = { field: 'claims.scope', option: 'scope' };
  if (!/^[a-z_]+(?: [a-z_]+)*$/.test(scope)) {
    const issue = {
      severity: 'error' as const,
      rule: 'maps-scope-shape',
      problem: `is ${quote(scope)}, but must be Maps framework names separated by single spaces`,
      fix: 'Use "server_api" for the Maps Server API, or leave scope out',
    };
    return [makeFinding(profile, where, issue, 'ERR_APPLE_FIELD_INVALID')];
  }
  const unknown = scope.split(' ').filter((name) => name !== 'server_api');
  if (unknown.length === 0) return [];
  const issue = {
    severity: 'warning' as const,
    rule: 'maps-scope-value',
    source: 'unconfirmed' as const,
    problem: `names ${quote(unknown.join(' '))}, but Apple documents only "server_api"`,
    fix: 'Check the scope against the Maps Server API token page',
  };
  return [makeFinding(profile, where, issue, 'ERR_APPLE_FIELD_INVALID')];
}

const mapKit = define({
  kind: 'mapkit',
  summary: 'MapKit JS and Maps Server API token, with optional origin and scope.',
  sources: [
    'https://developer.apple.com/documentation/mapkitjs/creating-a-maps-token',
    'https://developer.apple.com/documentation/applemapsserverapi/creating-and-using-tokens-with-maps-server-api',
  ],
  appleError: 'HTTP 401 at https://maps-api.apple.com/v1/token (MapKit JS fails to initialise)',
  header: [keyIdHeader(portalKeyId('MapKit JS / Maps')), typJwt],
  claims: [
    stringClaim('iss', 'teamId', teamId),
    iatClaim,
    expClaim,
    stringClaim('origin', 'origin', mapsOrigin, false),
    { name: 'scope', option: 'scope', required: false, type: 'string' },
  ],
  extraClaimSeverity: 'warning',
  lifetime: {
    countsFrom: 'iat',
    maxSeconds: undefined,
    maxInclusive: true,
    marginSeconds: 0,
    marginSource: 'derived',
    defaultSeconds: 3600,
  },
  maxIatAgeSeconds: undefined,
  refreshPolicy: beforeExpiry(300),
  fields: [
    teamIdField,
    keyIdField('The 10-character ID of a key with MapKit JS / Maps enabled (kid).'),
    {
      option: 'origin',
      flag: '--origin',
      description: 'The domain allowed to use the token in a browser, such as *.example.com.',
      required: false,
      type: 'string',
    },
    {
      option: 'scope',
      flag: '--scope',
      description: 'Space-separated Maps frameworks: "server_api" for the Maps Server API.',
      required: false,
      type: 'string',
    },
    lifetimeField('How long the token stays valid (default 1h; Apple documents no cap).'),
    skewField,
  ],
  checks: [checkMapsScope],
});

function checkAssertionIssuer(
  view: { claims: Readonly<Record<string, unknown>> },
  profile: ProfileDefinition,
): Finding[] {
  const { iss, sub } = view.claims;
  if (iss === undefined || iss === sub) return [];
  const issue = {
    severity: 'warning' as const,
    rule: 'iss-equals-sub',
    source: 'derived' as const,
    problem: `is ${quote(iss)}, but a client assertion's iss is the client ID in sub (${quote(sub)})`,
    fix: "Set iss to the client ID, as Apple's sample does and RFC 7523 §3 requires",
  };
  return [makeFinding(profile, { field: 'claims.iss' }, issue, 'ERR_APPLE_FIELD_INVALID')];
}

const businessManager = define({
  kind: 'business-manager',
  summary: 'Apple School Manager / Apple Business Manager API OAuth client assertion.',
  sources: [
    'https://developer.apple.com/documentation/apple-school-and-business-manager-api/implementing-oauth-for-the-apple-school-manager-and-apple-business-api',
  ],
  appleError:
    'an OAuth error (such as invalid_client) from https://account.apple.com/auth/oauth2/token',
  header: [
    keyIdHeader(
      uuid('key ID', 'Apple Business Manager or Apple School Manager, next to the API key'),
    ),
  ],
  claims: [
    stringClaim('sub', 'clientId', businessClientId),
    {
      name: 'aud',
      required: true,
      type: 'string',
      value: 'https://account.apple.com/auth/oauth2/v2/token',
    },
    iatClaim,
    expClaim,
    {
      name: 'jti',
      option: 'jti',
      required: true,
      type: 'string',
      shape: nonBlank('token ID'),
      build: (options) => options.jti ?? randomUUID(),
    },
    // Apple's sample script sets iss to the client ID too (RFC 7523 §3 requires it).
    { name: 'iss', required: false, type: 'string', build: (options) => options.clientId },
  ],
  extraClaimSeverity: 'warning',
  lifetime: {
    countsFrom: 'iat',
    maxSeconds: 180 * day,
    maxInclusive: false,
    marginSeconds: day,
    marginSource: 'derived',
    defaultSeconds: 3600,
  },
  maxIatAgeSeconds: undefined,
  refreshPolicy: beforeExpiry(300),
  fields: [
    {
      option: 'clientId',
      flag: '--client-id',
      description: 'The client ID, BUSINESSAPI.<uuid> or SCHOOLAPI.<uuid> (sub and iss).',
      required: true,
      type: 'string',
    },
    keyIdField('The key ID (a UUID) shown for the API key (kid).'),
    {
      option: 'jti',
      flag: '--jti',
      description: 'A unique token ID (jti); a random UUID by default.',
      required: false,
      type: 'string',
    },
    lifetimeField('How long the assertion stays valid (default 1h; under 180d).'),
    skewField,
  ],
  checks: [checkAssertionIssuer],
});

/** The rules behind each kind, used by minting and inspection. */
export const profileDefinitions: Readonly<Record<AppleTokenKind, ProfileDefinition>> =
  Object.freeze({
    'client-secret': clientSecret,
    'app-store-connect': appStoreConnect,
    'app-store-server': appStoreServer,
    apns: providerTokenProfile('apns'),
    musickit: musicKit,
    weatherkit: weatherKit,
    mapkit: mapKit,
    devicecheck: providerTokenProfile('devicecheck'),
    'business-manager': businessManager,
  });

/**
 * The profile of each Apple token kind: its summary, header fields, claims, lifetime cap,
 * refresh policy and option descriptions (`fields`), for building CLI flags and help.
 *
 * @example
 * for (const field of appleTokenProfiles['client-secret'].fields) console.log(field.flag);
 */
export const appleTokenProfiles: Readonly<Record<AppleTokenKind, AppleTokenProfile>> =
  profileDefinitions;

/** The kind names, in the order the profiles list them. */
export const appleTokenKinds = Object.keys(profileDefinitions) as AppleTokenKind[];
