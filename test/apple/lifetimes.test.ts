/**
 * Lifetimes at each kind's cap, just below it and just above it, with and without `iat`
 * backdating, under a frozen clock. Kinds whose cap Apple counts as `exp - iat` must count the
 * backdating in; kinds whose cap counts from Apple's clock must not. The second table inspects
 * minted tokens on a clock that differs from the minting clock, as Apple's may.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createAppleToken, inspectAppleToken } from '../../src/apple/index.js';
import { signJwt } from '../../src/jws.js';
import type { AppleTokenKind } from '../../src/apple/types.js';
import {
  businessClientId,
  businessKeyId,
  createTestKey,
  day,
  eventLog,
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

const sixMonths = 15_777_000;
const longLivedScope = ['GET /v1/ciProducts'];

const identities: Record<AppleTokenKind, Record<string, unknown>> = {
  'client-secret': { teamId, clientId: 'com.example.web', keyId },
  'app-store-connect': { issuerId, keyId: '2X9R4HXF34' },
  'app-store-server': { issuerId, bundleId: 'com.example.app', keyId: '2X9R4HXF34' },
  apns: { teamId, keyId },
  musickit: { teamId, keyId },
  weatherkit: { teamId, serviceId: 'com.example.weather', keyId },
  mapkit: { teamId, keyId },
  devicecheck: { teamId, keyId },
  'business-manager': { clientId: businessClientId, keyId: businessKeyId },
};

interface LifetimeCase {
  kind: AppleTokenKind;
  lifetime: number;
  skew: number;
  scope?: string[];
  /**
   * `ok`: no warning; `margin`: minted with a lifetime-margin warning; `refused`: refused inside
   * the margin; `max`: refused past the cap.
   */
  outcome: 'ok' | 'margin' | 'refused' | 'max';
}

function rows(
  kind: AppleTokenKind,
  skew: number,
  entries: Array<[number, LifetimeCase['outcome']]>,
  scope?: string[],
): LifetimeCase[] {
  return entries.map(([lifetime, outcome]) => ({ kind, lifetime, skew, outcome, scope }));
}

const lifetimeCases: LifetimeCase[] = [
  // Apple counts 15 777 000 s from its own clock, so backdating iat changes nothing, and the
  // last day below the cap is refused.
  ...rows('client-secret', 30, [
    [180 * day, 'ok'],
    [sixMonths - day, 'ok'],
    [sixMonths - day + 1, 'refused'],
    [sixMonths, 'refused'],
    [sixMonths + 1, 'max'],
  ]),
  ...rows('client-secret', 300, [
    [sixMonths - day, 'ok'],
    [sixMonths, 'refused'],
    [sixMonths + 1, 'max'],
  ]),
  ...rows('client-secret', 0, [[sixMonths + 1, 'max']]),
  ...rows('musickit', 30, [
    [180 * day, 'ok'],
    [sixMonths - day + 1, 'refused'],
    [sixMonths, 'refused'],
    [sixMonths + 1, 'max'],
  ]),

  // App Store Connect counts exp - iat: at most 1200 s, and the backdating counts.
  ...rows('app-store-connect', 0, [
    [1140, 'ok'],
    [1141, 'margin'],
    [1200, 'margin'],
    [1201, 'max'],
  ]),
  ...rows('app-store-connect', 30, [
    [900, 'ok'],
    [1170, 'margin'],
    [1171, 'max'],
    [1200, 'max'],
  ]),
  ...rows('app-store-connect', 300, [
    [900, 'margin'],
    [901, 'max'],
  ]),
  ...rows(
    'app-store-connect',
    0,
    [
      [179 * day, 'ok'],
      [180 * day, 'margin'],
      [180 * day + 1, 'max'],
    ],
    longLivedScope,
  ),
  ...rows('app-store-connect', 30, [[180 * day, 'max']], longLivedScope),

  // App Store Server API: at most 60 minutes after iat; the last 5 minutes warn.
  ...rows('app-store-server', 0, [
    [3300, 'ok'],
    [3301, 'margin'],
    [3600, 'margin'],
    [3601, 'max'],
  ]),
  ...rows('app-store-server', 30, [
    [3570, 'margin'],
    [3571, 'max'],
  ]),

  // Business and School Manager: exp less than 180 days after iat.
  ...rows('business-manager', 0, [
    [179 * day, 'ok'],
    [179 * day + 1, 'margin'],
    [180 * day - 1, 'margin'],
    [180 * day, 'max'],
  ]),
  ...rows('business-manager', 30, [
    [180 * day - 31, 'margin'],
    [180 * day - 30, 'max'],
  ]),

  // Apple documents no cap for WeatherKit and Maps tokens.
  ...rows('weatherkit', 30, [[365 * day, 'ok']]),
  ...rows('mapkit', 30, [[10 * 365 * day, 'ok']]),
];

/** Reports show tokens near these caps failing; the other margins are this package's own. */
function marginSource(testCase: LifetimeCase): string {
  const derived = testCase.kind === 'business-manager' || testCase.scope !== undefined;
  return derived ? 'derived' : 'reports';
}

let key: TestKey;

beforeAll(async () => {
  key = await createTestKey();
});

function optionsFor(testCase: LifetimeCase, onEvent?: (event: never) => void): never {
  return {
    ...identities[testCase.kind],
    ...(testCase.scope ? { scope: testCase.scope } : {}),
    lifetime: testCase.lifetime,
    iatSkewSeconds: testCase.skew,
    signer: key.signer,
    now,
    onEvent,
  } as never;
}

describe.each(lifetimeCases)(
  '$kind lifetime $lifetime s, iat backdated $skew s: $outcome',
  (testCase) => {
    it('is minted or refused as the cap requires', async () => {
      const log = eventLog();
      if (testCase.outcome === 'max' || testCase.outcome === 'refused') {
        const error = await rejection(() =>
          createAppleToken(testCase.kind, optionsFor(testCase, log.onEvent)),
        );
        const rule = testCase.outcome === 'max' ? 'lifetime-max' : 'lifetime-margin';
        expect(error.code).toBe('ERR_APPLE_LIFETIME_TOO_LONG');
        expect((error.details as Record<string, unknown>).rule).toBe(rule);
        expect(String(error.message)).toContain(testCase.kind);
        return;
      }

      const minted = await createAppleToken(testCase.kind, optionsFor(testCase, log.onEvent));
      expect(minted.claims.iat).toBe(nowSeconds - testCase.skew);
      expect(minted.claims.exp).toBe(nowSeconds + testCase.lifetime);
      const expected = testCase.outcome === 'margin' ? ['lifetime-margin'] : [];
      expect(warningRules(log.events)).toEqual(expected);
      for (const event of log.events) expect(event.source).toBe(marginSource(testCase));

      const verified = await verifyIndependently(minted.token, key.publicPem);
      expect(verified.claims.exp).toBe(nowSeconds + testCase.lifetime);
    });
  },
);

interface SkewCase {
  name: string;
  kind: AppleTokenKind;
  lifetime?: number;
  skew?: number;
  /** Seconds the inspecting clock (Apple's) is ahead of the minting clock; negative is behind. */
  offset: number;
  /** Rules of the problems inspection must report, errors first. */
  problems: string[];
}

const skewCases: SkewCase[] = [
  { name: 'same clock', kind: 'client-secret', offset: 0, problems: [] },
  { name: 'Apple 90 s behind', kind: 'client-secret', offset: -90, problems: [] },
  {
    name: 'Apple 91 s behind sees iat from its future',
    kind: 'client-secret',
    offset: -91,
    problems: ['iat-future'],
  },
  {
    name: 'longest secret with Apple 101 s behind',
    kind: 'client-secret',
    lifetime: sixMonths - day,
    offset: -101,
    problems: ['lifetime-margin', 'iat-future'],
  },
  {
    name: 'longest token with Apple 1 s behind',
    kind: 'musickit',
    lifetime: sixMonths - day,
    offset: -1,
    problems: ['lifetime-margin'],
  },
  {
    name: 'longest token on the same clock',
    kind: 'musickit',
    lifetime: sixMonths - day,
    offset: 0,
    problems: [],
  },
  {
    name: 'secret past its exp',
    kind: 'client-secret',
    lifetime: 3600,
    offset: 3601,
    problems: ['not-expired'],
  },
  {
    name: '20-minute token with a local clock 40 s fast',
    kind: 'app-store-connect',
    lifetime: 1200,
    skew: 0,
    offset: -40,
    problems: ['lifetime-margin'],
  },
  {
    name: '20-minute token with a local clock 61 s fast',
    kind: 'app-store-connect',
    lifetime: 1200,
    skew: 0,
    offset: -61,
    problems: ['iat-future', 'lifetime-margin'],
  },
  { name: 'APNs token 60 minutes old', kind: 'apns', offset: 3570, problems: [] },
  {
    name: 'APNs token over 60 minutes old',
    kind: 'apns',
    offset: 3571,
    problems: ['iat-within-hour'],
  },
  {
    name: 'APNs token over an hour in Apple’s future',
    kind: 'apns',
    offset: -3631,
    problems: ['iat-within-hour'],
  },
  {
    name: 'DeviceCheck token over 60 minutes old',
    kind: 'devicecheck',
    offset: 3571,
    problems: ['iat-within-hour'],
  },
];

describe.each(skewCases)('$kind inspected on another clock: $name', (testCase) => {
  it('reports the problems that clock would see', async () => {
    const options = {
      ...identities[testCase.kind],
      ...(testCase.lifetime === undefined ? {} : { lifetime: testCase.lifetime }),
      ...(testCase.skew === undefined ? {} : { iatSkewSeconds: testCase.skew }),
      signer: key.signer,
      now,
    };
    const minted = await createAppleToken(testCase.kind, options as never);

    const inspectNow = () => (nowSeconds + testCase.offset) * 1000;
    const report = inspectAppleToken(minted.token, { kind: testCase.kind, now: inspectNow });
    expect(report.problems.map((problem) => problem.rule)).toEqual(testCase.problems);
    for (const problem of report.problems.filter((p) => p.severity === 'error')) {
      expect(problem.appleError).toBeTruthy();
    }
  });
});

// 1e11 s since the epoch (the year 5138) is the latest time claim the checks accept.
const latestTime = 100_000_000_000;

describe.each(['weatherkit', 'mapkit'] as const)('%s with a huge lifetime', (kind) => {
  const mint = (lifetime: number) =>
    createAppleToken(kind, {
      ...identities[kind],
      lifetime,
      iatSkewSeconds: 0,
      signer: key.signer,
      now,
    } as never);

  it('mints exp at the latest time', async () => {
    const minted = await mint(latestTime - nowSeconds);
    expect(minted.claims.exp).toBe(latestTime);
    const { claims } = await verifyIndependently(minted.token, key.publicPem);
    expect(claims.exp).toBe(latestTime);
  });

  it('names the lifetime past the latest time', async () => {
    const error = await rejection(() => mint(latestTime - nowSeconds + 1));
    expect(error.code).toBe('ERR_APPLE_LIFETIME_TOO_LONG');
    expect((error.details as Record<string, unknown>).rule).toBe('exp-range');
    expect(error.message).toContain(`a lifetime of ${latestTime - nowSeconds + 1} s`);
    expect(error.message).toContain('year 5138');
    expect(error.message).toContain(`at most ${latestTime - nowSeconds} s`);
    expect(error.message).not.toContain('which is milliseconds');
    expect(error.message).not.toContain('Divide exp by 1000');
  });

  it('names the lifetime of 1e11 s', async () => {
    const error = await rejection(() => mint(1e11));
    expect(error.code).toBe('ERR_APPLE_LIFETIME_TOO_LONG');
    expect(error.message).toContain('a lifetime of 100000000000 s (about 3169 years)');
    expect(error.message).not.toContain('which is milliseconds');
  });
});

describe('huge lifetimes on capped kinds', () => {
  it('reports the cap, not the range', async () => {
    const error = await rejection(() =>
      createAppleToken('client-secret', {
        ...identities['client-secret'],
        lifetime: 1e11,
        signer: key.signer,
        now,
      } as never),
    );
    expect(error.code).toBe('ERR_APPLE_LIFETIME_TOO_LONG');
    expect((error.details as Record<string, unknown>).rule).toBe('lifetime-max');
  });
});

describe('inspecting an exp past the year 5138', () => {
  const signed = (exp: number) =>
    signJwt(key.signer, {
      header: { alg: 'ES256', kid: keyId, id: `${teamId}.com.example.weather` },
      payload: { iss: teamId, iat: nowSeconds, exp, sub: 'com.example.weather' },
    });

  it('names exp - iat for seconds', async () => {
    const token = await signed(nowSeconds + 1e11);
    const report = inspectAppleToken(token, { kind: 'weatherkit', now });
    expect(report.problems.map((problem) => problem.rule)).toEqual(['exp-range']);
    const [problem] = report.problems;
    expect(problem?.message).toContain('exp - iat = 100000000000 s (about 3169 years)');
    expect(problem?.message).not.toContain('which is milliseconds');
  });

  it('still names milliseconds', async () => {
    const token = await signed((nowSeconds + 3600) * 1000);
    const report = inspectAppleToken(token, { kind: 'weatherkit', now });
    expect(report.problems.map((problem) => problem.rule)).toEqual(['time-integer-seconds']);
    expect(report.problems[0]?.message).toContain('which is milliseconds');
  });
});
