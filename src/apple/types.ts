/**
 * Public types of the Apple token kinds: the kind names, the options of each kind (typed so that
 * a field that belongs to another kind is a compile-time error), the minted token, the profile
 * shape that the CLI reads, and the problems that checks and `inspectAppleToken` report.
 */
import type { RuntimeOptions, Signer } from '../signer.js';
import type { RefreshPolicy } from '../token-policy.js';

/** The nine kinds of Apple ES256 developer token. */
export type AppleTokenKind =
  | 'client-secret'
  | 'app-store-connect'
  | 'app-store-server'
  | 'apns'
  | 'musickit'
  | 'weatherkit'
  | 'mapkit'
  | 'devicecheck'
  | 'business-manager';

/** A lifetime in seconds, or a duration string such as `'180d'`, `'12h'` or `'3600s'`. */
export type Lifetime = number | string;

/** Options that every kind accepts. */
export interface AppleTokenCommonOptions extends RuntimeOptions {
  /** The signer holding the key that Apple issued for the service. */
  signer: Signer;
  /** The key ID that Apple shows for the key (`kid` header). */
  keyId: string;
  /**
   * Seconds to stamp `iat` in the past, so that a local clock slightly ahead of Apple's does not
   * produce a token "from the future". Whole seconds from 0 to 300; 30 by default.
   */
  iatSkewSeconds?: number;
}

/** The `lifetime` option of kinds whose tokens carry `exp`. */
export interface AppleLifetimeOption {
  /** How long the token stays valid from now; each kind has its own default and cap. */
  lifetime?: Lifetime;
}

/** Sign in with Apple and Account & Organizational Data Sharing client secret. */
export interface AppleClientSecretOptions extends AppleTokenCommonOptions, AppleLifetimeOption {
  /** The 10-character Team ID (`iss`). */
  teamId: string;
  /** The App ID or Services ID sent as `client_id` (`sub`), kept exactly as given. */
  clientId: string;
}

/** App Store Connect API token from a team key (issuer ID) or an individual key. */
export type AppStoreConnectTokenOptions = AppleTokenCommonOptions &
  AppleLifetimeOption & {
    /** `GET` requests the token is limited to, such as `'GET /v1/apps?filter[platform]=IOS'`. */
    scope?: string[];
  } & (
    | {
        /** The issuer ID (a UUID) of a team key (`iss`). */
        issuerId: string;
        subject?: never;
      }
    | {
        /** `'user'` for an individual key, which has no `iss` (`sub`). */
        subject: 'user';
        issuerId?: never;
      }
  );

/** App Store Server API token (In-App Purchase key). */
export interface AppStoreServerTokenOptions extends AppleTokenCommonOptions, AppleLifetimeOption {
  /** The issuer ID (a UUID) from App Store Connect (`iss`). */
  issuerId: string;
  /** The app's bundle ID (`bid`). */
  bundleId: string;
}

/** APNs provider token: no `exp`, so no lifetime; it is replaced by age instead. */
export interface ApnsTokenOptions extends AppleTokenCommonOptions {
  /** The 10-character Team ID (`iss`). */
  teamId: string;
}

/** Apple Music API / MusicKit developer token. */
export interface MusicKitTokenOptions extends AppleTokenCommonOptions, AppleLifetimeOption {
  /** The 10-character Team ID (`iss`). */
  teamId: string;
  /** Web origins allowed to use the token, such as `['https://music.example.com']`. */
  origin?: string[];
}

/** WeatherKit REST API token. */
export interface WeatherKitTokenOptions extends AppleTokenCommonOptions, AppleLifetimeOption {
  /** The 10-character Team ID (`iss`, and the first half of the `id` header). */
  teamId: string;
  /** The registered WeatherKit Service ID (`sub`, and the second half of the `id` header). */
  serviceId: string;
}

/** MapKit JS and Maps Server API token. */
export interface MapKitTokenOptions extends AppleTokenCommonOptions, AppleLifetimeOption {
  /** The 10-character Team ID (`iss`). */
  teamId: string;
  /** The domain allowed to use the token in a browser, such as `'*.example.com'`. */
  origin?: string;
  /** Space-separated Maps frameworks; `'server_api'` for the Maps Server API. */
  scope?: string;
}

/** DeviceCheck and App Attest receipt-refresh token: no `exp`, replaced by age. */
export interface DeviceCheckTokenOptions extends AppleTokenCommonOptions {
  /** The 10-character Team ID (`iss`). */
  teamId: string;
}

/** Apple School Manager and Apple Business Manager OAuth client assertion. */
export interface BusinessManagerTokenOptions extends AppleTokenCommonOptions, AppleLifetimeOption {
  /** `BUSINESSAPI.<uuid>` or `SCHOOLAPI.<uuid>` (`sub` and `iss`). */
  clientId: string;
  /** A unique token ID (`jti`); a random UUID by default. */
  jti?: string;
}

/** The options of each kind, for `createAppleToken(kind, options)`. */
export interface AppleTokenOptionsByKind {
  'client-secret': AppleClientSecretOptions;
  'app-store-connect': AppStoreConnectTokenOptions;
  'app-store-server': AppStoreServerTokenOptions;
  apns: ApnsTokenOptions;
  musickit: MusicKitTokenOptions;
  weatherkit: WeatherKitTokenOptions;
  mapkit: MapKitTokenOptions;
  devicecheck: DeviceCheckTokenOptions;
  'business-manager': BusinessManagerTokenOptions;
}

/** The kinds whose tokens carry no `exp`: a refresh policy by age applies to them instead. */
type AppleTokenKindWithoutExp = 'apns' | 'devicecheck';

/** A minted Apple token with its decoded parts. */
export interface AppleToken<K extends AppleTokenKind = AppleTokenKind> {
  kind: K;
  /** The compact JWS. Treat it as a credential. */
  token: string;
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  issuedAt: Date;
  /** The time of `exp`, or undefined for the kinds without `exp` (APNs, DeviceCheck). */
  expiresAt: K extends AppleTokenKindWithoutExp ? undefined : Date;
}

/** One option of a kind, described for the CLI's `mint KIND` flags and per-kind help. */
export interface AppleTokenField {
  /** The camelCase option name, such as `teamId`. */
  option: string;
  /** The command-line flag, such as `--team-id`. */
  flag: string;
  description: string;
  required: boolean;
  type: 'string' | 'string-list' | 'duration';
}

/**
 * The origin of a rule. `apple` marks a rule Apple documents, which is enforced. `reports` marks
 * one known from developers' failure reports, `unconfirmed` one that no source confirms, and
 * `derived` one that this package adds to stay inside a documented rule. Those three only warn,
 * except `derived` checks of the token's own shape, such as an unknown kind.
 */
export type AppleRuleSource = 'apple' | 'reports' | 'unconfirmed' | 'derived';

/** A rule broken by a token or by the options that would build it. */
export interface AppleTokenProblem {
  /** `'error'` for a rule Apple documents; `'warning'` for one known from reports only. */
  severity: 'error' | 'warning';
  /**
   * The field at fault, such as `claims.iss`, `header.kid`, `lifetime` or `signature`. A name
   * from the token is cut to 64 characters. A problem that counts the names beyond the first 20
   * has the part alone as its field: `header` or `claims`.
   */
  field: string;
  /** A stable rule name, such as `team-or-key-id-shape` or `lifetime-max`. */
  rule: string;
  /** The rule's origin. */
  source: AppleRuleSource;
  /** A sentence naming the kind, the field, the rule and the fix. Never contains token text. */
  message: string;
  /** What Apple answers when the rule is broken, such as `HTTP 400 invalid_client`. */
  appleError?: string;
}

/** How a kind's lifetime is capped. */
export interface AppleLifetimeRule {
  /**
   * What Apple counts the cap from: `'iat'` when it checks `exp - iat`, `'apple-now'` when it
   * checks `exp` against its own clock, which may run behind ours.
   */
  countsFrom: 'iat' | 'apple-now';
  /** The cap Apple documents, in seconds, or undefined when none is documented. */
  maxSeconds: number | undefined;
  /** Whether the cap itself is allowed (`exp - iat < cap` when false). */
  maxInclusive: boolean;
  /** Seconds below the cap where a lifetime warns, because such tokens can fail. */
  marginSeconds: number;
  /** The margin's origin: `reports` of tokens near the cap failing, or `derived`. */
  marginSource: AppleRuleSource;
  /**
   * `error` refuses a lifetime inside the margin instead of warning. Used where Apple counts the
   * cap from its own clock, so that a clock difference cannot push a six-month token over it.
   */
  marginSeverity?: 'error' | 'warning';
  /** The lifetime used when the caller gives none. */
  defaultSeconds: number;
}

/** The declarative rules of one token kind. */
export interface AppleTokenProfile {
  kind: AppleTokenKind;
  /** One line naming the service and the token. */
  summary: string;
  /** Apple pages that state the rules. */
  sources: readonly string[];
  /** What Apple typically answers for a bad token of this kind. */
  appleError: string;
  /** Header fields in emitted order, with `alg` first. */
  headerFields: readonly string[];
  /** Claims in emitted order: required ones, then optional ones. */
  claimFields: readonly string[];
  requiredClaims: readonly string[];
  /** Lifetime cap, or undefined for kinds without `exp`. */
  lifetime: AppleLifetimeRule | undefined;
  /** The maximum age of `iat` for kinds without `exp` (APNs, DeviceCheck), in seconds. */
  maxIatAgeSeconds: number | undefined;
  refreshPolicy: RefreshPolicy;
  fields: readonly AppleTokenField[];
}
