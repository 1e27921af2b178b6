/**
 * Type-level tests of the per-kind options: a field of another kind, a lifetime on a token
 * without `exp`, or a wrong value type must not compile. `npm run typecheck` checks every
 * `@ts-expect-error` line below; an option that wrongly compiles makes that line an error. The
 * calls sit in functions that never run, so the runtime tests only check the signatures.
 */
import { describe, expectTypeOf, it } from 'vitest';
import {
  createAppleClientSecret,
  createAppleToken,
  createAppleTokenProvider,
  createApnsToken,
  createAppStoreConnectToken,
  createAppStoreServerToken,
  createBusinessManagerAssertion,
  createDeviceCheckToken,
  createMapKitToken,
  createMusicKitToken,
  createWeatherKitToken,
  type AppleToken,
  type AppleTokenKind,
  type AppleTokenOptionsByKind,
  type ApnsTokenOptions,
  type AppStoreConnectTokenOptions,
} from '../../src/apple/index.js';
import type { Signer } from '../../src/signer.js';
import type { TokenProvider } from '../../src/token-provider.js';

declare const signer: Signer;
const teamId = 'DEF123GHIJ';
const keyId = 'ABC123DEFG';
const issuerId = '57246542-96fe-1a63-e053-0824d011072a';

/** Calls that must compile. Never run. */
export function wellTyped(): void {
  void createAppleClientSecret({ signer, teamId, keyId, clientId: 'com.example.web' });
  void createAppStoreConnectToken({ signer, keyId, issuerId, scope: ['GET /v1/apps'] });
  void createAppStoreConnectToken({ signer, keyId, subject: 'user', lifetime: '10m' });
  void createAppStoreServerToken({ signer, keyId, issuerId, bundleId: 'com.example.app' });
  void createApnsToken({ signer, keyId, teamId, iatSkewSeconds: 0 });
  void createMusicKitToken({ signer, keyId, teamId, origin: ['https://music.example.com'] });
  void createWeatherKitToken({ signer, keyId, teamId, serviceId: 'com.example.weather' });
  void createMapKitToken({ signer, keyId, teamId, origin: '*.example.com', scope: 'server_api' });
  void createDeviceCheckToken({ signer, keyId, teamId });
  void createBusinessManagerAssertion({ signer, keyId, clientId: 'SCHOOLAPI.x', jti: 'id' });
  void createAppleToken('apns', { signer, keyId, teamId });
  void createAppleTokenProvider('apns', { signer, keyId, teamId }, { marginSeconds: 120 });
}

/** Calls that must not compile. Never run. */
export function illTyped(): void {
  // @ts-expect-error APNs tokens carry no exp, so they take no lifetime.
  void createApnsToken({ signer, keyId, teamId, lifetime: '1h' });
  // @ts-expect-error DeviceCheck tokens carry no exp either.
  void createDeviceCheckToken({ signer, keyId, teamId, lifetime: 3600 });
  // @ts-expect-error An issuer ID belongs to App Store Connect, not to DeviceCheck.
  void createDeviceCheckToken({ signer, keyId, issuerId });
  // @ts-expect-error The client secret needs its clientId.
  void createAppleClientSecret({ signer, keyId, teamId });
  // @ts-expect-error A team key and an individual key cannot be combined.
  void createAppStoreConnectToken({ signer, keyId, issuerId, subject: 'user' });
  // @ts-expect-error An individual key's subject is the literal "user".
  void createAppStoreConnectToken({ signer, keyId, subject: 'admin' });
  // @ts-expect-error App Store Connect needs an issuer ID or a subject.
  void createAppStoreConnectToken({ signer, keyId });
  // @ts-expect-error The App Store Server API needs the bundle ID.
  void createAppStoreServerToken({ signer, keyId, issuerId });
  // @ts-expect-error MusicKit's origin is a list.
  void createMusicKitToken({ signer, keyId, teamId, origin: 'https://music.example.com' });
  // @ts-expect-error MapKit's origin is one domain.
  void createMapKitToken({ signer, keyId, teamId, origin: ['*.example.com'] });
  // @ts-expect-error WeatherKit takes a serviceId, not a clientId.
  void createWeatherKitToken({ signer, keyId, teamId, serviceId: 'a.b', clientId: 'a.b' });
  // @ts-expect-error The Business Manager assertion has no Team ID.
  void createBusinessManagerAssertion({ signer, keyId, clientId: 'BUSINESSAPI.x', teamId });
  // @ts-expect-error The generic function checks the options against the kind.
  void createAppleToken('apns', { signer, keyId, teamId, bundleId: 'com.example.app' });
  // @ts-expect-error The kind must be one of the nine.
  void createAppleToken('fax', { signer, keyId, teamId });
  // @ts-expect-error The provider checks the options against the kind too.
  void createAppleTokenProvider('weatherkit', { signer, keyId, teamId });
  // @ts-expect-error The lifetime is seconds or a duration string.
  void createAppleClientSecret({ signer, keyId, teamId, clientId: 'x', lifetime: new Date() });
}

describe('Apple token option types', () => {
  it('types each kind function by its own kind', () => {
    expectTypeOf(createApnsToken).returns.resolves.toEqualTypeOf<AppleToken<'apns'>>();
    expectTypeOf(createAppleClientSecret).returns.resolves.toEqualTypeOf<
      AppleToken<'client-secret'>
    >();
    expectTypeOf(createBusinessManagerAssertion).returns.resolves.toEqualTypeOf<
      AppleToken<'business-manager'>
    >();
    expectTypeOf(createApnsToken).parameter(0).toEqualTypeOf<ApnsTokenOptions>();
    expectTypeOf(createAppStoreConnectToken)
      .parameter(0)
      .toEqualTypeOf<AppStoreConnectTokenOptions>();
  });

  it('keeps lifetime off the kinds without exp', () => {
    expectTypeOf<ApnsTokenOptions>().not.toHaveProperty('lifetime');
    expectTypeOf<AppleTokenOptionsByKind['devicecheck']>().not.toHaveProperty('lifetime');
    expectTypeOf<AppleTokenOptionsByKind['musickit']>().toHaveProperty('lifetime');
  });

  it('types expiresAt by whether the kind has exp', () => {
    expectTypeOf<AppleToken<'client-secret'>['expiresAt']>().toEqualTypeOf<Date>();
    expectTypeOf<AppleToken<'business-manager'>['expiresAt']>().toEqualTypeOf<Date>();
    expectTypeOf<AppleToken<'apns'>['expiresAt']>().toEqualTypeOf<undefined>();
    expectTypeOf<AppleToken<'devicecheck'>['expiresAt']>().toEqualTypeOf<undefined>();
    expectTypeOf<AppleToken['expiresAt']>().toEqualTypeOf<Date | undefined>();
  });

  it('maps every kind to its options', () => {
    expectTypeOf<keyof AppleTokenOptionsByKind>().toEqualTypeOf<AppleTokenKind>();
    expectTypeOf(createAppleTokenProvider).returns.toEqualTypeOf<TokenProvider>();
  });
});
