/**
 * A token provider for one Apple token kind: `createAppleToken` wrapped in the cached,
 * single-flight provider, refreshed by the kind's own policy. APNs and DeviceCheck tokens are
 * replaced by age (no sooner than 20 minutes, before 60), and kinds with `exp` before expiry.
 */
import {
  createTokenProvider,
  tokenCacheKey,
  type TokenProvider,
  type TokenProviderOptions,
} from '../token-provider.js';
import { isDeepStrictEqual } from 'node:util';
import { emitEvent, type SignerEvent } from '../signer.js';
import type { TokenStore } from '../stores/store.js';
import type { MintedToken } from '../token-record.js';
import { buildTokenFields, createAppleToken } from './mint.js';
import { profileDefinitions } from './profiles.js';
import type { AppleToken, AppleTokenKind, AppleTokenOptionsByKind } from './types.js';

/**
 * Provider settings for {@link createAppleTokenProvider}. `policy` defaults to the kind's
 * refresh policy, `cacheKey` to the kind and its identifiers, and `now` and `onEvent` to the
 * token options' own.
 */
export type AppleTokenProviderOptions = Partial<Omit<TokenProviderOptions, 'mint'>>;

// Options that change the token but not whom it is for, so they stay out of the cache key.
const optionsOutsideCacheKey = new Set(['lifetime', 'iatSkewSeconds', 'jti']);

/**
 * Creates a token provider that mints tokens of `kind` with `options` and serves each one until
 * the kind's refresh policy replaces it. The options are checked by a first mint only, so call
 * `get()` once at start-up to surface a wrong identifier early.
 *
 * @example
 * const apns = createAppleTokenProvider('apns', {
 *   signer,
 *   teamId: 'DEF123GHIJ',
 *   keyId: 'ABC123DEFG',
 * });
 * const authorization = `bearer ${await apns.get()}`;
 */
export function createAppleTokenProvider<K extends AppleTokenKind>(
  kind: K,
  options: AppleTokenOptionsByKind[K],
  providerOptions: AppleTokenProviderOptions = {},
): TokenProvider {
  if (!Object.hasOwn(profileDefinitions, kind)) {
    throw new TypeError(
      `createAppleTokenProvider expects a kind of ${Object.keys(profileDefinitions).join(', ')}, ` +
        `but got ${JSON.stringify(kind)}.`,
    );
  }
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`createAppleTokenProvider('${kind}') expects an options object.`);
  }

  const now = providerOptions.now ?? options.now;
  const onEvent = providerOptions.onEvent ?? options.onEvent;
  const mintOptions = { ...options, now, onEvent } as AppleTokenOptionsByKind[K];
  const store = providerOptions.store;
  return createTokenProvider({
    ...providerOptions,
    now,
    onEvent,
    policy: providerOptions.policy ?? profileDefinitions[kind].refreshPolicy,
    cacheKey: providerOptions.cacheKey ?? appleCacheKey(kind, options),
    store: store === undefined ? undefined : guardStore(store, kind, options, onEvent),
    mint: async () => toMintedToken(await createAppleToken(kind, mintOptions)),
  });
}

// Fields that differ between two tokens for the same team, key and client.
const perTokenFields = new Set(['iat', 'exp', 'jti']);

/**
 * Wraps a shared store so that a stored token for another team, key or client reads as no token,
 * reported as `store-invalid`. The provider then mints and replaces it. The header and claims are
 * compared, times and `jti` aside. The signature is not verified.
 */
function guardStore(
  store: TokenStore,
  kind: AppleTokenKind,
  options: object,
  onEvent: ((event: SignerEvent) => void) | undefined,
): TokenStore {
  const expected = buildTokenFields(kind, options, { iat: 0, exp: undefined });
  const read = async (cacheKey: string): Promise<MintedToken | undefined> => {
    const record = await store.read(cacheKey);
    if (record === undefined || isForIdentity(record, expected)) return record;
    emitEvent({ onEvent }, { type: 'store-invalid', store: store.name, cacheKey, kind });
    return undefined;
  };

  const guarded: TokenStore = {
    name: store.name,
    read,
    acquire: (cacheKey, ttlMs) => store.acquire(cacheKey, ttlMs),
  };
  if (store.close !== undefined) guarded.close = () => store.close!();
  return guarded;
}

/** Returns true when the token's header and claims, per-token fields aside, equal `expected`. */
function isForIdentity(
  record: MintedToken,
  expected: ReturnType<typeof buildTokenFields>,
): boolean {
  const [headerPart, claimsPart] = String(record.token).split('.');
  const header = decodeJsonPart(headerPart);
  const claims = decodeJsonPart(claimsPart);
  if (header === undefined || claims === undefined) return false;
  return sameIdentity(header, expected.header) && sameIdentity(claims, expected.claims);
}

function sameIdentity(actual: Record<string, unknown>, expected: Record<string, unknown>): boolean {
  const names = new Set([...Object.keys(actual), ...Object.keys(expected)]);
  for (const name of perTokenFields) names.delete(name);
  return [...names].every((name) => isDeepStrictEqual(actual[name], expected[name]));
}

function decodeJsonPart(part: string | undefined): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(part ?? '', 'base64url').toString('utf8'));
    if (typeof value !== 'object' || value === null) return undefined;
    return value as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/**
 * Names a token by its kind, `kid` and the identifiers of its claims, in the kind's field order,
 * so that providers sharing a store share a token only when it is for the same team, key and
 * client.
 */
function appleCacheKey(kind: AppleTokenKind, options: object): string {
  const values = options as Record<string, unknown>;
  const parts = profileDefinitions[kind].fields
    .filter((field) => !optionsOutsideCacheKey.has(field.option))
    .map((field) => cacheKeyPart(values[field.option]));
  return tokenCacheKey(kind, ...parts);
}

function cacheKeyPart(value: unknown): string | undefined {
  if (value === undefined || typeof value === 'string') return value;
  return JSON.stringify(value);
}

function toMintedToken(token: AppleToken): MintedToken {
  return {
    token: token.token,
    iat: token.claims.iat as number,
    exp: token.claims.exp as number | undefined,
  };
}
