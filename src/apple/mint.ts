/**
 * Minting: resolves the clock, the `iat` backdating and the lifetime, builds the header and
 * claims a profile declares, checks them with the profile's rules, and signs through `signJwt`.
 * Every rule Apple documents is enforced before the signer is called; rules known only from
 * reports are sent to `onEvent` as `warning` events.
 */
import { parseDuration } from '../duration.js';
import { ClaimsError } from '../errors.js';
import { signJwt, type JwsHeader } from '../jws.js';
import { emitEvent, type RuntimeOptions } from '../signer.js';
import { profileDefinitions } from './profiles.js';
import { checkToken, type Finding, type MintTimes, type ProfileDefinition } from './rules.js';
import type { AppleToken, AppleTokenKind, AppleTokenOptionsByKind, Lifetime } from './types.js';

/** The default `iat` backdating: Apple documents no tolerance, and reports suggest 30 to 60 s. */
export const defaultIatSkewSeconds = 30;
const maxIatSkewSeconds = 300;
const runtimeOptionNames = [
  'signer',
  'keyId',
  'iatSkewSeconds',
  'signal',
  'timeoutMs',
  'now',
  'onEvent',
];

/**
 * Mints an Apple token of any kind with the options of that kind.
 *
 * @example
 * const { token } = await createAppleToken('apns', {
 *   signer,
 *   teamId: 'DEF123GHIJ',
 *   keyId: 'ABC123DEFG',
 * });
 */
export async function createAppleToken<K extends AppleTokenKind>(
  kind: K,
  options: AppleTokenOptionsByKind[K],
): Promise<AppleToken<K>> {
  const profile = profileFor(kind);
  assertOptions(profile, options as unknown as Record<string, unknown>);
  const runtime = options as RuntimeOptions;

  const nowSeconds = readClock(profile, runtime.now);
  const iatSkewSeconds = resolveSkew(profile, options.iatSkewSeconds);
  const lifetimeSeconds = resolveLifetime(profile, (options as { lifetime?: Lifetime }).lifetime);
  const times: MintTimes = {
    iat: nowSeconds - iatSkewSeconds,
    exp: lifetimeSeconds === undefined ? undefined : nowSeconds + lifetimeSeconds,
  };

  const values = options as unknown as Record<string, unknown>;
  const header = buildFields(profile.header, values, times, { alg: 'ES256' }) as JwsHeader;
  const claims = buildFields(profile.claims, values, times, {});
  const findings = checkToken(profile, {
    header,
    claims,
    nowSeconds,
    minting: { lifetimeSeconds, iatSkewSeconds },
  });
  reportFindings(profile, findings, runtime);

  const token = await signJwt(options.signer, { header, payload: claims }, runtime);
  return {
    kind,
    token,
    header,
    claims,
    issuedAt: new Date(times.iat * 1000),
    expiresAt: times.exp === undefined ? undefined : new Date(times.exp * 1000),
  };
}

/**
 * Builds the header and claims of a token of `kind` for `options` and `times`, without checks
 * or a signature, such as to compare them with a token that another process minted.
 *
 * @example
 * const { header, claims } = buildTokenFields('apns', { teamId, keyId }, { iat, exp: undefined });
 * // header: { alg: 'ES256', kid: keyId }, claims: { iss: teamId, iat }
 */
export function buildTokenFields(
  kind: AppleTokenKind,
  options: object,
  times: MintTimes,
): { header: Record<string, unknown>; claims: Record<string, unknown> } {
  const profile = profileFor(kind);
  const values = options as Record<string, unknown>;
  return {
    header: buildFields(profile.header, values, times, { alg: 'ES256' }),
    claims: buildFields(profile.claims, values, times, {}),
  };
}

function profileFor(kind: string): ProfileDefinition {
  const profile = (profileDefinitions as Record<string, ProfileDefinition | undefined>)[kind];
  if (profile && Object.hasOwn(profileDefinitions, kind)) return profile;
  throw new ClaimsError(
    'ERR_APPLE_KIND_UNKNOWN',
    `Unknown Apple token kind ${JSON.stringify(kind)}. Use one of: ${Object.keys(profileDefinitions).join(', ')}.`,
    { details: { kind: String(kind) } },
  );
}

/** Rejects misuse (TypeError) and options that belong to another kind (coded error). */
function assertOptions(profile: ProfileDefinition, options: Record<string, unknown>): void {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`Minting a ${profile.kind} token expects an options object.`);
  }
  const signer = options.signer as { sign?: unknown; getPublicKey?: unknown } | undefined;
  if (typeof signer?.sign !== 'function' || typeof signer.getPublicKey !== 'function') {
    throw new TypeError(`Minting a ${profile.kind} token expects options.signer to be a Signer.`);
  }

  const known = knownOptions(profile);
  const unknown = Object.keys(options).filter(
    (name) => !known.has(name) && options[name] !== undefined,
  );
  if (unknown.length === 0) return;
  const noExp = profile.lifetime
    ? ''
    : ` ${profile.kind} tokens carry no exp, so they take no lifetime.`;
  throw new ClaimsError(
    'ERR_APPLE_FIELD_UNEXPECTED',
    `${profile.kind} token: option ${unknown.join(', ')} does not belong to this kind (rule ` +
      `options-known).${noExp} Its options are ${[...known].filter((n) => n !== 'signer').join(', ')}.`,
    { details: { kind: profile.kind, field: unknown[0], rule: 'options-known' } },
  );
}

const knownOptionsByKind = new Map<string, ReadonlySet<string>>();

/** Returns the option names a kind accepts, computed once per kind. */
function knownOptions(profile: ProfileDefinition): ReadonlySet<string> {
  let known = knownOptionsByKind.get(profile.kind);
  if (known === undefined) {
    known = new Set([...runtimeOptionNames, ...profile.fields.map((field) => field.option)]);
    knownOptionsByKind.set(profile.kind, known);
  }
  return known;
}

function readClock(profile: ProfileDefinition, now: (() => number) | undefined): number {
  const milliseconds = (now ?? Date.now)();
  if (typeof milliseconds === 'number' && Number.isFinite(milliseconds) && milliseconds > 0) {
    return Math.floor(milliseconds / 1000);
  }
  throw new ClaimsError(
    'ERR_APPLE_TIME_INVALID',
    `${profile.kind} token: the now() clock returned ${String(milliseconds)}, but must return ` +
      'milliseconds since the epoch (rule clock-milliseconds). Pass now: () => Date.now() or leave it out.',
    { details: { kind: profile.kind, field: 'now', rule: 'clock-milliseconds' } },
  );
}

function resolveSkew(profile: ProfileDefinition, skew: number | undefined): number {
  if (skew === undefined) return defaultIatSkewSeconds;
  if (Number.isInteger(skew) && skew >= 0 && skew <= maxIatSkewSeconds) return skew;
  throw new ClaimsError(
    'ERR_APPLE_SKEW_INVALID',
    `${profile.kind} token: iatSkewSeconds is ${JSON.stringify(skew)}, but must be whole seconds ` +
      `from 0 to ${maxIatSkewSeconds} (rule skew-range). Leave it out for the default of ` +
      `${defaultIatSkewSeconds} s.`,
    { details: { kind: profile.kind, field: 'iatSkewSeconds', rule: 'skew-range' } },
  );
}

function resolveLifetime(
  profile: ProfileDefinition,
  lifetime: Lifetime | undefined,
): number | undefined {
  if (!profile.lifetime) return undefined;
  if (lifetime === undefined) return profile.lifetime.defaultSeconds;

  const seconds = typeof lifetime === 'string' ? parseDuration(lifetime) : lifetime;
  if (Number.isSafeInteger(seconds) && seconds > 0) return seconds;
  throw new ClaimsError(
    'ERR_APPLE_LIFETIME_INVALID',
    `${profile.kind} token: lifetime is ${JSON.stringify(lifetime)}, but must be a positive whole ` +
      'number of seconds or a duration such as "12h" (rule lifetime-positive). Leave it out for ' +
      `the default of ${profile.lifetime.defaultSeconds} s.`,
    { details: { kind: profile.kind, field: 'lifetime', rule: 'lifetime-positive' } },
  );
}

function buildFields(
  specs: ProfileDefinition['header'],
  options: Record<string, unknown>,
  times: MintTimes,
  initial: Record<string, unknown>,
): Record<string, unknown> {
  const fields = initial;
  for (const spec of specs) {
    // A field with an option takes the caller's value, so that the rules check it as given.
    const value = spec.build
      ? spec.build(options, times)
      : spec.option
        ? options[spec.option]
        : spec.value;
    if (value !== undefined) fields[spec.name] = value;
  }
  return fields;
}

/** Throws the first error as a ClaimsError and sends every warning to `onEvent`. */
function reportFindings(
  profile: ProfileDefinition,
  findings: Finding[],
  runtime: RuntimeOptions,
): void {
  const errors = findings.filter((finding) => finding.severity === 'error');
  const first = errors[0];
  if (first) {
    const answer = first.appleError ? ` Otherwise Apple answers ${first.appleError}.` : '';
    throw new ClaimsError(first.code, `${first.message}${answer}`, {
      details: {
        kind: profile.kind,
        field: first.field,
        rule: first.rule,
        source: first.source,
        option: first.option,
        appleError: first.appleError,
        problems: errors.map(({ field, rule }) => ({ field, rule })),
      },
    });
  }
  for (const warning of findings) {
    emitEvent(runtime, {
      type: 'warning',
      kind: profile.kind,
      field: warning.field,
      rule: warning.rule,
      source: warning.source,
      message: warning.message,
    });
  }
}
