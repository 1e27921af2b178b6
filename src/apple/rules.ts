/**
 * The rule engine behind every Apple token kind. A profile declares its header fields, claims,
 * identifier shapes and lifetime cap; `checkToken` runs those rules over a header and claims set.
 * Minting runs it on the token it is about to sign and `inspectAppleToken` on a decoded token,
 * so both report the same problem in the same words.
 */
import type { AppleRuleSource, AppleTokenProblem, AppleTokenProfile } from './types.js';
import { escapeControlCharacters, quote, type ShapeCheck, type ShapeIssue } from './identifiers.js';
import { maxListedNames, shortName } from './name-lists.js';

/** One header field or claim of a profile. */
export interface FieldSpec {
  name: string;
  /** The option that sets it, named in messages. */
  option?: string;
  required: boolean;
  type: 'string' | 'string-list' | 'time';
  /** A value the field must have, such as `aud`. */
  value?: string;
  shape?: ShapeCheck;
  /** Builds the value from the options and times; by default `options[option]`, or `value`. */
  build?: (options: Readonly<Record<string, unknown>>, times: MintTimes) => unknown;
}

/** The times of a token being minted, in whole seconds. */
export interface MintTimes {
  iat: number;
  exp: number | undefined;
}

/** A lifetime cap counted as `exp - iat`. */
export interface SpanCap {
  maxSeconds: number;
  inclusive: boolean;
  marginSeconds: number;
  marginSource: AppleRuleSource;
  /** Why this cap applies, appended to messages. */
  reason: string;
}

/** A header and claims set under check, with the clock it is checked against. */
export interface TokenView {
  header: Readonly<Record<string, unknown>>;
  claims: Readonly<Record<string, unknown>>;
  /** The local clock, in whole seconds. */
  nowSeconds: number;
  /** Present while minting, so that messages can name the options that caused a problem. */
  minting?: { lifetimeSeconds: number | undefined; iatSkewSeconds: number };
}

/** A problem with its error code, for minting to throw. */
export interface Finding extends AppleTokenProblem {
  code: string;
  option?: string;
}

/** A kind-specific rule that the generic field checks cannot express. */
export type KindCheck = (view: TokenView, profile: ProfileDefinition) => Finding[];

/** A profile with the rules behind its public summary. */
export interface ProfileDefinition extends AppleTokenProfile {
  header: readonly FieldSpec[];
  claims: readonly FieldSpec[];
  /** Severity of a claim outside the profile's set. */
  extraClaimSeverity: 'error' | 'warning';
  /** Picks the `exp - iat` cap from the claims, for kinds whose cap depends on them. */
  spanCap?: (claims: Readonly<Record<string, unknown>>) => SpanCap;
  checks: readonly KindCheck[];
}

// Apple documents no skew tolerance. Reports show `iat` a little ahead of Apple's clock
// rejected, so more than a minute ahead warns.
const futureIatWarningSeconds = 60;
// A time claim above this is almost certainly milliseconds (it is the year 5138 in seconds).
const millisecondsThreshold = 1e11;
const headerOnlyFields = new Set(['alg', 'kid', 'typ', 'id']);

/** Builds a finding whose message names the kind, the field, the rule and the fix. */
export function makeFinding(
  profile: ProfileDefinition,
  where: { field: string; option?: string | undefined },
  issue: ShapeIssue,
  code: string,
  appleError: string | undefined = issue.severity === 'error' ? profile.appleError : undefined,
): Finding {
  const option = where.option ? ` (option ${where.option})` : '';
  // Field names and values can come from a token under inspection, and may carry escape codes.
  const message = escapeControlCharacters(
    `${profile.kind} token: ${where.field}${option} ${issue.problem} ` +
      `(rule ${issue.rule}). ${issue.fix}.`,
  );
  const finding: Finding = {
    severity: issue.severity,
    field: where.field,
    rule: issue.rule,
    source: issue.source ?? (issue.severity === 'error' ? 'apple' : 'reports'),
    message,
    code,
  };
  if (appleError) finding.appleError = appleError;
  if (where.option) finding.option = where.option;
  return finding;
}

/** Runs every rule of `profile` over `view` and returns what it finds, errors first. */
export function checkToken(profile: ProfileDefinition, view: TokenView): Finding[] {
  // Minting runs this on every token, so the findings go into one array without copies.
  const findings = checkAlgorithm(profile, view);
  for (const spec of profile.header)
    findings.push(...checkField(profile, spec, 'header', view.header));
  findings.push(...checkExtraHeader(profile, view));
  for (const spec of profile.claims)
    findings.push(...checkField(profile, spec, 'claims', view.claims));
  findings.push(...checkExtraClaims(profile, view), ...checkTimes(profile, view));
  findings.push(...checkKeyIdNotIssuer(profile, view));
  for (const check of profile.checks) findings.push(...check(view, profile));
  if (findings.length === 0) return findings;

  return [
    ...findings.filter((finding) => finding.severity === 'error'),
    ...findings.filter((finding) => finding.severity === 'warning'),
  ];
}

/**
 * Warns when `kid` equals `iss`. Apple issues key IDs separately from Team IDs and issuer IDs, so
 * the same value in both most likely means one was copied into the other. The CLI's file-name
 * check cannot see this for a KMS or HSM key, where no `AuthKey_<KEYID>.p8` name gives the key ID.
 */
function checkKeyIdNotIssuer(profile: ProfileDefinition, view: TokenView): Finding[] {
  const kid = view.header.kid;
  if (typeof kid !== 'string' || kid === '' || kid !== view.claims.iss) return [];

  const option = profile.header.find((spec) => spec.name === 'kid')?.option;
  const issue: ShapeIssue = {
    severity: 'warning',
    rule: 'kid-equals-iss',
    source: 'derived',
    problem:
      `is ${quote(kid)}, the same value as claims.iss, but Apple issues the key ID separately ` +
      'from the Team ID and the issuer ID',
    fix:
      'Pass the key ID of the signing key, as shown in Certificates, Identifiers & Profiles → ' +
      'Keys',
  };
  return [makeFinding(profile, { field: 'header.kid', option }, issue, 'ERR_APPLE_FIELD_INVALID')];
}

function checkAlgorithm(profile: ProfileDefinition, view: TokenView): Finding[] {
  if (view.header.alg === 'ES256') return [];
  const issue: ShapeIssue = {
    severity: 'error',
    rule: 'alg-es256',
    problem: `must be "ES256", but is ${quote(view.header.alg)}`,
    fix: 'Sign with ES256 (ECDSA P-256 and SHA-256), as every Apple developer token requires',
  };
  return [makeFinding(profile, { field: 'header.alg' }, issue, 'ERR_APPLE_FIELD_INVALID')];
}

function checkField(
  profile: ProfileDefinition,
  spec: FieldSpec,
  part: 'header' | 'claims',
  fields: Readonly<Record<string, unknown>>,
): Finding[] {
  const where = { field: `${part}.${spec.name}`, option: spec.option };
  const value = fields[spec.name];
  if (value === undefined) return spec.required ? [missing(profile, where, spec)] : [];
  if (spec.type === 'time') return [];

  const issue = fieldIssue(spec, value);
  if (!issue) return [];
  return [makeFinding(profile, where, issue, 'ERR_APPLE_FIELD_INVALID')];
}

function missing(
  profile: ProfileDefinition,
  where: { field: string; option?: string | undefined },
  spec: FieldSpec,
): Finding {
  const fix = spec.option ? `Pass the ${spec.option} option` : `Add ${spec.name}`;
  const issue: ShapeIssue = {
    severity: 'error',
    rule: 'field-required',
    problem: `is missing, but Apple requires it in every ${profile.kind} token`,
    fix,
  };
  return makeFinding(profile, where, issue, 'ERR_APPLE_FIELD_MISSING');
}

function fieldIssue(spec: FieldSpec, value: unknown): ShapeIssue | undefined {
  if (spec.value !== undefined && value !== spec.value) {
    return {
      severity: 'error',
      rule: 'field-value',
      problem: `must be ${quote(spec.value)}, but is ${quote(value)}`,
      fix: `Set ${spec.name} to ${quote(spec.value)}`,
    };
  }
  if (spec.type === 'string-list') return listIssue(spec, value);
  if (typeof value !== 'string') {
    return {
      severity: 'error',
      rule: 'field-type',
      problem: `must be a string, but is ${quote(value)}`,
      fix: `Pass ${spec.name} as a string`,
    };
  }
  return spec.shape?.(value);
}

function listIssue(spec: FieldSpec, value: unknown): ShapeIssue | undefined {
  if (!Array.isArray(value) || value.length === 0 || value.some((v) => typeof v !== 'string')) {
    return {
      severity: 'error',
      rule: 'field-type',
      problem: `must be a non-empty array of strings, but is ${quote(value)}`,
      fix: `Pass ${spec.name} as an array of strings, or leave it out`,
    };
  }
  for (const entry of value as string[]) {
    const issue = spec.shape?.(entry);
    if (issue) return issue;
  }
  return undefined;
}

/**
 * Builds one finding for each of the first 20 names, and one that counts the rest, so that a
 * token with thousands of unexpected names still gets a short report.
 *
 * @example
 * findingsPerName(extras, (name) => extraFinding(name), (count) => moreFinding(count));
 */
export function findingsPerName(
  names: readonly string[],
  perName: (name: string) => Finding,
  rest: (count: number) => Finding,
): Finding[] {
  const findings = names.slice(0, maxListedNames).map(perName);
  if (names.length > maxListedNames) findings.push(rest(names.length - maxListedNames));
  return findings;
}

function checkExtraHeader(profile: ProfileDefinition, view: TokenView): Finding[] {
  const others = Object.keys(view.header).filter((name) => !profile.headerFields.includes(name));
  // typ goes first, so that its own rule and Apple error stay listed when the rest are counted.
  const extras = others.includes('typ')
    ? ['typ', ...others.filter((name) => name !== 'typ')]
    : others;
  const documented = profile.headerFields.join(', ');
  const code = 'ERR_APPLE_FIELD_UNEXPECTED';
  const perName = (name: string) => {
    const issue: ShapeIssue = {
      severity: 'warning',
      rule: name === 'typ' ? 'typ-undocumented' : 'header-field-extra',
      problem: `is not in Apple's documented ${profile.kind} header (${documented})`,
      fix: `Emit only ${documented}`,
    };
    // An undocumented typ header has been blamed for the kind's error, though never confirmed.
    const answer = name === 'typ' ? profile.appleError : undefined;
    return makeFinding(profile, { field: `header.${shortName(name)}` }, issue, code, answer);
  };
  const rest = (count: number) => {
    const issue: ShapeIssue = {
      severity: 'warning',
      rule: 'header-field-extra',
      problem: `has the ${maxListedNames} fields above and ${count} more that are not in Apple's documented ${profile.kind} header (${documented})`,
      fix: `Emit only ${documented}`,
    };
    return makeFinding(profile, { field: 'header' }, issue, code);
  };
  return findingsPerName(extras, perName, rest);
}

function checkExtraClaims(profile: ProfileDefinition, view: TokenView): Finding[] {
  const extras = Object.keys(view.claims).filter((name) => !profile.claimFields.includes(name));
  const expected = profile.claimFields.join(', ');
  const code = 'ERR_APPLE_FIELD_UNEXPECTED';
  const perName = (name: string) => {
    const headerOnly = headerOnlyFields.has(name) ? ', and is a header field' : '';
    const issue: ShapeIssue = {
      severity: profile.extraClaimSeverity,
      rule: 'claim-extra',
      problem: `is not one of the ${profile.kind} claims${headerOnly}; the claims are ${expected}`,
      fix: `Remove ${shortName(name)} from the claims`,
    };
    return makeFinding(profile, { field: `claims.${shortName(name)}` }, issue, code);
  };
  const rest = (count: number) => {
    const issue: ShapeIssue = {
      severity: profile.extraClaimSeverity,
      rule: 'claim-extra',
      problem: `has the ${maxListedNames} claims above and ${count} more that are not ${profile.kind} claims; the claims are ${expected}`,
      fix: 'Remove them from the claims',
    };
    return makeFinding(profile, { field: 'claims' }, issue, code);
  };
  return findingsPerName(extras, perName, rest);
}

function checkTimes(profile: ProfileDefinition, view: TokenView): Finding[] {
  const timeFindings = (['iat', 'exp'] as const).flatMap((name) =>
    checkTimeValue(profile, view, name),
  );
  if (timeFindings.some((finding) => finding.severity === 'error')) return timeFindings;

  const iat = view.claims.iat;
  const exp = view.claims.exp;
  if (typeof iat !== 'number') return timeFindings;
  const findings = [...timeFindings, ...checkIatAge(profile, view, iat)];
  if (typeof exp !== 'number') return findings;

  const expiry = profile.lifetime ? checkExpiry(profile, view, iat, exp) : [];
  // A cap that Apple documents explains a huge lifetime better, so the range only counts
  // for a token that no cap rejects.
  if (exp > millisecondsThreshold && !expiry.some((finding) => finding.severity === 'error')) {
    expiry.push(expOutOfRange(profile, view, iat, exp));
  }
  return [...findings, ...expiry];
}

function checkTimeValue(
  profile: ProfileDefinition,
  view: TokenView,
  name: 'iat' | 'exp',
): Finding[] {
  const value = view.claims[name];
  if (value === undefined) return [];
  const where = { field: `claims.${name}` };
  const issue = timeValueIssue(name, value, name === 'iat' || expReadsAsMilliseconds(view, value));
  if (!issue) return [];
  return [makeFinding(profile, where, issue, 'ERR_APPLE_TIME_INVALID')];
}

/**
 * Returns whether an `exp` past the year 5138 is more likely milliseconds than a huge lifetime.
 * Minting computes `exp` in seconds, so there it never is. Under inspection, milliseconds make
 * sense only when `exp / 1000` comes after an `iat` in seconds, or when no such `iat` exists.
 */
function expReadsAsMilliseconds(view: TokenView, exp: unknown): boolean {
  if (view.minting) return false;
  const iat = view.claims.iat;
  if (typeof iat !== 'number' || typeof exp !== 'number' || iat > millisecondsThreshold) {
    return true;
  }
  return exp / 1000 > iat;
}

function timeValueIssue(
  name: string,
  value: unknown,
  mayBeMilliseconds: boolean,
): ShapeIssue | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return {
      severity: 'error',
      rule: 'time-integer-seconds',
      problem: `must be a NumericDate in integer seconds, but is ${quote(value)}`,
      fix: `Write ${name} as a JSON number of seconds since the epoch, not a string`,
    };
  }
  if (value > millisecondsThreshold && mayBeMilliseconds) {
    return {
      severity: 'error',
      rule: 'time-integer-seconds',
      problem: `is ${value}, which is milliseconds, but must be seconds since the epoch`,
      fix: `Divide ${name} by 1000 and round down`,
    };
  }
  if (!Number.isInteger(value)) {
    return {
      severity: 'warning',
      rule: 'time-integer-seconds',
      problem: `is ${value}, a fraction; RFC 7519 allows it, but Apple's services are reported to expect integer seconds`,
      fix: `Round ${name} down to whole seconds`,
    };
  }
  return undefined;
}

/**
 * Reports an `exp` past 1e11 s since the epoch (the year 5138) that comes from a huge lifetime in
 * seconds. Time claims that large are read as milliseconds everywhere else in these checks, so
 * no token may carry one, even for kinds whose lifetime Apple does not cap.
 */
function expOutOfRange(
  profile: ProfileDefinition,
  view: TokenView,
  iat: number,
  exp: number,
): Finding {
  const lifetime = view.minting?.lifetimeSeconds;
  const span = lifetime ?? exp - iat;
  const cause = lifetime === undefined ? `exp - iat = ${span} s` : `a lifetime of ${lifetime} s`;
  const issue: ShapeIssue = {
    severity: 'error',
    rule: 'exp-range',
    source: 'derived',
    problem:
      `is ${exp}, because ${cause} (about ${Math.round(span / yearSeconds)} years) puts it ` +
      `after the year 5138 (${millisecondsThreshold} s since the epoch), the latest time a ` +
      'token may carry, since larger time claims are taken for milliseconds',
    fix: rangeFix(profile, view),
  };
  const where = { field: 'claims.exp', option: view.minting ? 'lifetime' : undefined };
  // Apple's response to such an exp is not known, so the finding names none ('' means none).
  return makeFinding(profile, where, issue, 'ERR_APPLE_LIFETIME_TOO_LONG', '');
}

function rangeFix(profile: ProfileDefinition, view: TokenView): string {
  if (!view.minting) {
    return `Mint the token with a lifetime that keeps exp at or before ${millisecondsThreshold}`;
  }
  const longest = `Use a lifetime of at most ${millisecondsThreshold - view.nowSeconds} s`;
  const lifetime = profile.lifetime;
  if (lifetime === undefined || lifetime.maxSeconds !== undefined) return longest;
  return (
    `${longest}. Apple documents no cap for ${profile.kind} tokens, and the default is ` +
    `${lifetime.defaultSeconds} s`
  );
}

// A Julian year, for the rough "about N years" in messages.
const yearSeconds = 31_557_600;

function checkIatAge(profile: ProfileDefinition, view: TokenView, iat: number): Finding[] {
  const where = { field: 'claims.iat', option: 'iatSkewSeconds' };
  const ahead = iat - view.nowSeconds;
  const maxAge = profile.maxIatAgeSeconds;
  if (maxAge !== undefined && ahead > maxAge) {
    const issue: ShapeIssue = {
      severity: 'error',
      rule: 'iat-within-hour',
      problem: `is ${ahead} s ahead of the clock, but Apple accepts an iat at most ${maxAge} s from its current time`,
      fix: 'Stamp iat from a clock synchronised with NTP',
    };
    return [makeFinding(profile, where, issue, 'ERR_APPLE_TIME_INVALID')];
  }
  if (maxAge !== undefined && -ahead > maxAge) {
    const issue: ShapeIssue = {
      severity: 'error',
      rule: 'iat-within-hour',
      problem: `is ${-ahead} s old, but Apple rejects a token whose iat is more than ${maxAge} s old`,
      fix: 'Mint a new token; refresh it every 20 to 60 minutes',
    };
    const answer = profile.kind === 'apns' ? 'HTTP 403 ExpiredProviderToken' : profile.appleError;
    return [makeFinding(profile, where, issue, 'ERR_APPLE_TIME_INVALID', answer)];
  }
  if (ahead > futureIatWarningSeconds) {
    const issue: ShapeIssue = {
      severity: 'warning',
      rule: 'iat-future',
      problem: `is ${ahead} s ahead of the clock; Apple is reported to reject tokens issued in its future`,
      fix: 'Stamp iat from a clock synchronised with NTP, backdated by 30 s',
    };
    return [makeFinding(profile, where, issue, 'ERR_APPLE_TIME_INVALID', profile.appleError)];
  }
  return [];
}

function checkExpiry(
  profile: ProfileDefinition,
  view: TokenView,
  iat: number,
  exp: number,
): Finding[] {
  const where = { field: 'claims.exp', option: 'lifetime' };
  if (exp <= iat) {
    const issue: ShapeIssue = {
      severity: 'error',
      rule: 'exp-after-iat',
      problem: `is ${exp}, not after iat ${iat}`,
      fix: 'Use a positive lifetime',
    };
    return [makeFinding(profile, where, issue, 'ERR_APPLE_LIFETIME_INVALID')];
  }
  if (exp <= view.nowSeconds) {
    const issue: ShapeIssue = {
      severity: 'error',
      rule: 'not-expired',
      problem: `is ${exp}, ${view.nowSeconds - exp} s in the past, so the token has expired`,
      fix: 'Mint a new token',
    };
    return [makeFinding(profile, where, issue, 'ERR_APPLE_LIFETIME_INVALID')];
  }
  return profile.lifetime?.countsFrom === 'iat'
    ? checkSpan(profile, view, iat, exp)
    : checkRemaining(profile, view, exp);
}

function checkSpan(
  profile: ProfileDefinition,
  view: TokenView,
  iat: number,
  exp: number,
): Finding[] {
  const cap = spanCapOf(profile, view);
  if (!cap) return [];
  const span = exp - iat;
  const over = cap.inclusive ? span > cap.maxSeconds : span >= cap.maxSeconds;
  const where = { field: 'claims.exp', option: 'lifetime' };
  if (over) {
    const issue: ShapeIssue = {
      severity: 'error',
      rule: 'lifetime-max',
      problem: `gives exp - iat = ${span} s${spanCause(view)}, but Apple ${cap.inclusive ? 'accepts at most' : 'needs less than'} ${cap.maxSeconds} s${cap.reason}`,
      fix: spanFix(view, cap),
    };
    return [makeFinding(profile, where, issue, 'ERR_APPLE_LIFETIME_TOO_LONG')];
  }
  if (span > cap.maxSeconds - cap.marginSeconds) {
    const issue: ShapeIssue = {
      severity: 'warning',
      rule: 'lifetime-margin',
      source: cap.marginSource,
      problem: `gives exp - iat = ${span} s, within ${cap.marginSeconds} s of Apple's ${cap.maxSeconds} s cap, where a difference between clocks or rounding can push it over`,
      fix: `Keep exp - iat at most ${cap.maxSeconds - cap.marginSeconds} s`,
    };
    return [makeFinding(profile, where, issue, 'ERR_APPLE_LIFETIME_TOO_LONG', profile.appleError)];
  }
  return [];
}

function spanCapOf(profile: ProfileDefinition, view: TokenView): SpanCap | undefined {
  if (profile.spanCap) return profile.spanCap(view.claims);
  const lifetime = profile.lifetime;
  if (lifetime?.maxSeconds === undefined) return undefined;
  return {
    maxSeconds: lifetime.maxSeconds,
    inclusive: lifetime.maxInclusive,
    marginSeconds: lifetime.marginSeconds,
    marginSource: lifetime.marginSource,
    reason: '',
  };
}

function spanCause(view: TokenView): string {
  const minting = view.minting;
  if (!minting || minting.iatSkewSeconds === 0 || minting.lifetimeSeconds === undefined) return '';
  return ` (a lifetime of ${minting.lifetimeSeconds} s plus ${minting.iatSkewSeconds} s of iat backdating)`;
}

function spanFix(view: TokenView, cap: SpanCap): string {
  const limit = cap.inclusive ? cap.maxSeconds : cap.maxSeconds - 1;
  const skew = view.minting?.iatSkewSeconds ?? 0;
  if (!view.minting) return `Mint the token with exp - iat of at most ${limit} s`;
  const lower = skew > 0 ? `, or lower iatSkewSeconds` : '';
  return `Use a lifetime of at most ${limit - skew} s${lower}`;
}

function checkRemaining(profile: ProfileDefinition, view: TokenView, exp: number): Finding[] {
  const lifetime = profile.lifetime;
  if (lifetime?.maxSeconds === undefined) return [];
  const remaining = exp - view.nowSeconds;
  const where = { field: 'claims.exp', option: 'lifetime' };
  if (remaining > lifetime.maxSeconds) {
    const issue: ShapeIssue = {
      severity: 'error',
      rule: 'lifetime-max',
      problem: `is ${remaining} s from now, but Apple accepts at most ${lifetime.maxSeconds} s, counted from its own clock`,
      fix: `Use a lifetime of at most ${lifetime.maxSeconds - lifetime.marginSeconds} s (such as "180d")`,
    };
    return [makeFinding(profile, where, issue, 'ERR_APPLE_LIFETIME_TOO_LONG')];
  }
  if (remaining <= lifetime.maxSeconds - lifetime.marginSeconds) return [];
  // Reports show tokens at the cap rejected when Apple's clock runs ahead of ours. Apple documents
  // only the cap itself, so the band below it warns unless the profile refuses it.
  const issue: ShapeIssue = {
    severity: lifetime.marginSeverity ?? 'warning',
    rule: 'lifetime-margin',
    source: lifetime.marginSource,
    problem: `is ${remaining} s from now, within ${lifetime.marginSeconds} s of Apple's cap of ${lifetime.maxSeconds} s, which Apple counts from its own clock; tokens this close to the cap are reported to fail`,
    fix: `Use a lifetime of at most ${lifetime.maxSeconds - lifetime.marginSeconds} s (such as "180d")`,
  };
  return [makeFinding(profile, where, issue, 'ERR_APPLE_LIFETIME_TOO_LONG', profile.appleError)];
}
