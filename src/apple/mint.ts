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
import { quote } from './identifiers.js';
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

  const nowSeconds = readClockSeconds(runtime.now, profile.kind);
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
    // Only the kinds without exp resolve no lifetime, so exp is undefined exactly for them.
    expiresAt: (times.exp === undefined
      ? undefined
      : new Date(times.exp * 1000)) as AppleToken<K>['expiresAt'],
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
    throw new TypeError(
      `Minting a ${profile.kind} token expects options.signer to be a Signer, with sign and ` +
        'getPublicKey. For a key path or reference, create one first: ' +
        "signer: await createSigner('file:AuthKey_KEYID.p8').",
    );
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

// 2001-09-09 in milliseconds. A clock in seconds returns less, and would date its tokens 1970.
const minClockMilliseconds = 1e12;
// The year 5138 in milliseconds. A clock in microseconds returns more.
const maxClockMilliseconds = 1e14;

/**
 * Reads an injected clock, in milliseconds since the epoch, as whole seconds. A clock that
 * returns seconds or microseconds would date every token wrongly, so it raises
 * `ERR_APPLE_TIME_INVALID`, naming the kind being minted or, without one, inspection.
 */
export function readClockSeconds(now: (() => number) | undefined, kind?: AppleTokenKind): number {
  const milliseconds = (now ?? Date.now)();
  if (
    typeof milliseconds === 'number' &&
    milliseconds >= minClockMilliseconds &&
    milliseconds < maxClockMilliseconds
  ) {
    return Math.floor(milliseconds / 1000);
  }

  const subject = kind === undefined ? 'inspectAppleToken' : `${kind} token`;
  throw new ClaimsError(
    'ERR_APPLE_TIME_INVALID',
    `${subject}: the now() clock returned ${clockUnitHint(milliseconds)}, but must return ` +
      'milliseconds since the epoch (rule clock-milliseconds). Pass now: () => Date.now() or leave it out.',
    { details: { kind, field: 'now', rule: 'clock-milliseconds' } },
  );
}

function clockUnitHint(value: unknown): string {
  const quoted = quote(value);
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) return quoted;
  if (value < minClockMilliseconds) return `${quoted}, which is seconds or a date before 2001`;
  return `${quoted}, which is microseconds or a date after the year 5000`;
}

function resolveSkew(profile: ProfileDefinition, skew: number | undefined): number {
  if (skew === undefined) return defaultIatSkewSeconds;
  if (Number.isInteger(skew) && skew >= 0 && skew <= maxIatSkewSeconds) return skew;
  throw new ClaimsError(
    'ERR_APPLE_SKEW_INVALID',
    `${profile.kind} token: iatSkewSeconds is ${quote(skew)}, but must be whole seconds ` +
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
    `${profile.kind} token: lifetime is ${quote(lifetime)}, but must be a positive whole ` +
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
    // A list is copied into a plain array, so that a toJSON method or an index getter on the
    // caller's array cannot make the signed claim differ from the one the rules checked.
    if (value !== undefined) fields[spec.name] = Array.isArray(value) ? Array.from(value) : value;
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
