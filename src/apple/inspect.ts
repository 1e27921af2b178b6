/**
 * Inspection of an Apple token someone already has: decodes the header and claims, works out
 * the kind from them (or takes it), and checks them with the same profile rules that minting
 * enforces. Each problem names the Apple error it would cause. Messages never contain token
 * text; claim values such as `iss` may appear, since they are identifiers, not secrets.
 */
import { base64urlDecode } from '../base64url.js';
import { ClaimsError } from '../errors.js';
import { escapeControlCharacters, quote } from './identifiers.js';
import { repeatedMemberNames } from './json-names.js';
import { readClockSeconds } from './mint.js';
import { profileDefinitions } from './profiles.js';
import { listNames, maxListedNames, shortName } from './name-lists.js';
import {
  checkToken,
  findingsPerName,
  makeFinding,
  type Finding,
  type ProfileDefinition,
} from './rules.js';
import type { AppleTokenKind, AppleTokenProblem } from './types.js';

/** Options of {@link inspectAppleToken}. */
export interface InspectAppleTokenOptions {
  /** Check against this kind instead of working it out from the claims. */
  kind?: AppleTokenKind;
  /** Clock in milliseconds since the epoch. Defaults to `Date.now`. */
  now?: () => number;
}

/** The decoded parts of a token and the problems found in them. */
export interface AppleTokenInspection {
  /** The kind checked against, or undefined when the claims match no kind. */
  kind: AppleTokenKind | undefined;
  /**
   * The reason the kind is a guess, present when claims that several kinds share decided it
   * (APNs and DeviceCheck, or MusicKit and MapKit without `origin`). Pass `kind` to be sure.
   */
  kindGuess?: string;
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  /** Bytes in the decoded signature: 64 for a JOSE ES256 signature, 70 to 72 for DER. */
  signatureLength: number;
  problems: AppleTokenProblem[];
}

const joseSignatureLength = 64;

/**
 * Decodes an Apple token and lists every rule it breaks, errors first. An empty `problems`
 * list means the token passes every check that can be made without Apple's servers; the
 * signature itself is not verified (use `kms-jwt verify` or jose with the public key for that).
 *
 * @example
 * const { kind, problems } = inspectAppleToken(token);
 * for (const problem of problems) console.error(`${problem.severity}: ${problem.message}`);
 */
export function inspectAppleToken(
  token: string,
  options: InspectAppleTokenOptions = {},
): AppleTokenInspection {
  if (typeof token !== 'string') throw new TypeError('inspectAppleToken expects a string token.');
  const parts = token.trim().split('.');
  if (parts.length !== 3) {
    const count =
      parts.length === 1 ? '1 dot-separated part' : `${parts.length} dot-separated parts`;
    throw malformed(`has ${count}, but a compact JWS has 3`);
  }

  const decodedHeader = decodeJson(parts[0]!, 'header');
  const decodedClaims = decodeJson(parts[1]!, 'claims');
  const header = decodedHeader.value;
  const claims = decodedClaims.value;
  const signature = base64urlDecode(parts[2]!);
  const signatureLength = signature?.length ?? -1;
  const nowSeconds = readClockSeconds(options.now);

  const detected = options.kind === undefined ? detectKind(header, claims) : { kind: options.kind };
  const profile = detected.kind === undefined ? undefined : profileOf(detected.kind);
  const findings = profile
    ? [
        ...checkToken(profile, { header, claims, nowSeconds }),
        ...checkSignature(profile, signatureLength),
        ...repeatedNames(profile, 'header', decodedHeader.repeated),
        ...repeatedNames(profile, 'claims', decodedClaims.repeated),
      ]
    : [unknownKind(header, claims)];
  const inspection: AppleTokenInspection = {
    kind: detected.kind,
    header,
    claims,
    signatureLength,
    problems: sortProblems(findings),
  };
  if (detected.guess !== undefined) inspection.kindGuess = detected.guess;
  return inspection;
}

function malformed(problem: string): ClaimsError {
  return new ClaimsError(
    'ERR_APPLE_TOKEN_MALFORMED',
    `The token ${problem}. Pass the whole token, header.claims.signature, as Apple receives it.`,
    { details: { rule: 'compact-jws' } },
  );
}

/** Decodes one JSON part, with the member names it repeats. */
function decodeJson(
  part: string,
  name: string,
): { value: Record<string, unknown>; repeated: string[] } {
  const bytes = base64urlDecode(part);
  if (!bytes) throw malformed(`${name} part is not base64url without padding`);
  const text = bytes.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw malformed(`${name} part is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw malformed(`${name} part is not a JSON object`);
  }
  return { value: value as Record<string, unknown>, repeated: repeatedMemberNames(text) };
}

function repeatedNames(
  profile: ProfileDefinition,
  part: 'header' | 'claims',
  names: string[],
): Finding[] {
  const consequence =
    'this report shows the last value, but other JSON parsers take the first or reject the ' +
    'token (RFC 7519 §4 requires unique names)';
  const finding = (field: string, problem: string) => {
    const issue = {
      severity: 'error' as const,
      rule: 'json-duplicate-name',
      source: 'derived' as const,
      problem,
      fix: 'Build the token with each header field and claim once',
    };
    return makeFinding(profile, { field }, issue, 'ERR_APPLE_FIELD_INVALID');
  };
  return findingsPerName(
    names,
    (name) => finding(`${part}.${shortName(name)}`, `occurs more than once; ${consequence}`),
    (count) =>
      finding(part, `repeats the ${maxListedNames} names above and ${count} more; ${consequence}`),
  );
}

function profileOf(kind: AppleTokenKind): ProfileDefinition {
  if (Object.hasOwn(profileDefinitions, kind)) return profileDefinitions[kind];
  throw new ClaimsError(
    'ERR_APPLE_KIND_UNKNOWN',
    `Unknown Apple token kind ${JSON.stringify(kind)}. Use one of: ${Object.keys(profileDefinitions).join(', ')}.`,
    { details: { kind: String(kind) } },
  );
}

/** Works out the kind from the audience, then from the fields only one kind has. */
function detectKind(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
): { kind: AppleTokenKind | undefined; guess?: string } {
  const aud = claims.aud;
  if (aud === 'https://appleid.apple.com') return { kind: 'client-secret' };
  if (aud === 'https://account.apple.com/auth/oauth2/v2/token') return { kind: 'business-manager' };
  if (aud === 'appstoreconnect-v1') {
    return { kind: claims.bid === undefined ? 'app-store-connect' : 'app-store-server' };
  }
  if (aud !== undefined) return closestKind(header, claims);
  if (header.id !== undefined || claims.sub !== undefined) return { kind: 'weatherkit' };
  if (claims.exp === undefined) {
    return { kind: 'apns', guess: 'APNs and DeviceCheck tokens have the same shape' };
  }
  if (Array.isArray(claims.origin)) return { kind: 'musickit' };
  if (typeof claims.origin === 'string' || claims.scope !== undefined) return { kind: 'mapkit' };
  if (header.typ === 'JWT') {
    // Many JWT libraries add typ by default, so a MusicKit token often carries it too.
    return {
      kind: 'mapkit',
      guess: 'a MusicKit token with a typ header looks like a MapKit token',
    };
  }
  return { kind: 'musickit', guess: 'MusicKit and MapKit tokens without origin look alike' };
}

/**
 * Picks the kind whose header and claim names differ least from the token's, for a token whose
 * `aud` names no Apple service. A kind with a fixed `aud` counts one more difference, because the
 * token's `aud` cannot be that value. A tie or a distance of more than two matches no kind.
 */
function closestKind(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
): { kind: AppleTokenKind | undefined; guess?: string } {
  const names = new Set([
    ...Object.keys(header).map((name) => `header.${name}`),
    ...Object.keys(claims),
  ]);
  const ranked = Object.values(profileDefinitions)
    .map((profile) => {
      const expected = new Set([
        ...profile.headerFields.map((name) => `header.${name}`),
        ...profile.claimFields,
      ]);
      const missing = [...expected].filter((name) => !names.has(name)).length;
      const extra = [...names].filter((name) => !expected.has(name)).length;
      // The token's aud names no Apple service, so a kind with a fixed aud differs in its value.
      const audValue = profile.claims.some((spec) => spec.name === 'aud' && spec.value) ? 1 : 0;
      return { kind: profile.kind, distance: missing + extra + audValue };
    })
    .sort((a, b) => a.distance - b.distance);
  const [best, second] = ranked;
  if (!best || best.distance > 2 || best.distance === second?.distance) return { kind: undefined };
  return {
    kind: best.kind,
    guess: escapeControlCharacters(
      `its aud ${quote(claims.aud)} names no Apple service, so it was checked as the kind whose fields it matches most closely`,
    ),
  };
}

function unknownKind(header: Record<string, unknown>, claims: Record<string, unknown>): Finding {
  const aud = claims.aud === undefined ? 'no aud' : `aud ${quote(claims.aud)}`;
  const fields = `header ${listNames(Object.keys(header))}; claims ${listNames(Object.keys(claims))}`;
  return {
    severity: 'error',
    field: 'kind',
    rule: 'kind-known',
    source: 'derived',
    message: escapeControlCharacters(
      `The token matches no Apple token kind (${aud}; ${fields}). Pass the kind it is meant ` +
        "to be, or fix aud to the service's audience.",
    ),
    code: 'ERR_APPLE_KIND_UNKNOWN',
  };
}

function checkSignature(profile: ProfileDefinition, length: number): Finding[] {
  if (length === joseSignatureLength) return [];
  const where = { field: 'signature' };
  const problem =
    length < 0
      ? 'is not base64url without padding'
      : length === 0
        ? 'is empty, so the token is unsigned'
        : length >= 70 && length <= 72
          ? `is ${length} bytes, the size of a DER-encoded ECDSA signature, but ES256 needs the 64-byte r || s of RFC 7518 §3.4`
          : `is ${length} bytes, but ES256 needs exactly 64 bytes (r || s, RFC 7518 §3.4)`;
  const issue = {
    severity: 'error' as const,
    rule: 'signature-jose-64',
    problem,
    fix: 'Sign with a JOSE library or convert DER with derToJose before building the token',
  };
  return [makeFinding(profile, where, issue, 'ERR_SIGNATURE_LENGTH')];
}

function sortProblems(findings: Finding[]): AppleTokenProblem[] {
  const ordered = [
    ...findings.filter((finding) => finding.severity === 'error'),
    ...findings.filter((finding) => finding.severity === 'warning'),
  ];
  return ordered.map(({ severity, field, rule, source, message, appleError }) =>
    appleError === undefined
      ? { severity, field, rule, source, message }
      : { severity, field, rule, source, message, appleError },
  );
}
