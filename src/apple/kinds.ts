/**
 * One typed function per Apple token kind. Each takes only the options of its kind, so that a
 * field of another kind, or a lifetime for a token without `exp`, is a compile-time error.
 */
import { createAppleToken } from './mint.js';
import type {
  AppleClientSecretOptions,
  AppleToken,
  ApnsTokenOptions,
  AppStoreConnectTokenOptions,
  AppStoreServerTokenOptions,
  BusinessManagerTokenOptions,
  DeviceCheckTokenOptions,
  MapKitTokenOptions,
  MusicKitTokenOptions,
  WeatherKitTokenOptions,
} from './types.js';

/**
 * Mints a Sign in with Apple client secret: header `{alg, kid}`, claims
 * `{iss, iat, exp, aud, sub}`, 180 days by default.
 *
 * @example
 * const { token, expiresAt } = await createAppleClientSecret({
 *   signer,
 *   teamId: 'DEF123GHIJ',
 *   clientId: 'com.example.web',
 *   keyId: 'ABC123DEFG',
 * });
 */
export function createAppleClientSecret(
  options: AppleClientSecretOptions,
): Promise<AppleToken<'client-secret'>> {
  return createAppleToken('client-secret', options);
}

/**
 * Mints an App Store Connect API token: 15 minutes by default, at most 20 unless scoped to GETs
 * on Apple's long-lived resources.
 *
 * @example
 * const { token } = await createAppStoreConnectToken({
 *   signer,
 *   issuerId: '57246542-96fe-1a63-e053-0824d011072a',
 *   keyId: '2X9R4HXF34',
 * });
 */
export function createAppStoreConnectToken(
  options: AppStoreConnectTokenOptions,
): Promise<AppleToken<'app-store-connect'>> {
  return createAppleToken('app-store-connect', options);
}

/**
 * Mints an App Store Server API token with the app's bundle ID in `bid`: 20 minutes by default,
 * at most 60.
 *
 * @example
 * const { token } = await createAppStoreServerToken({
 *   signer,
 *   issuerId: '57246542-96fe-1a63-e053-0824d011072a',
 *   bundleId: 'com.example.app',
 *   keyId: '2X9R4HXF34',
 * });
 */
export function createAppStoreServerToken(
  options: AppStoreServerTokenOptions,
): Promise<AppleToken<'app-store-server'>> {
  return createAppleToken('app-store-server', options);
}

/**
 * Mints an APNs provider token (`iss` and `iat` only). Reuse it for 20 to 60 minutes.
 *
 * @example
 * const { token } = await createApnsToken({ signer, teamId: 'DEF123GHIJ', keyId: 'ABC123DEFG' });
 */
export function createApnsToken(options: ApnsTokenOptions): Promise<AppleToken<'apns'>> {
  return createAppleToken('apns', options);
}

/**
 * Mints an Apple Music API / MusicKit developer token: 180 days by default.
 *
 * @example
 * const { token } = await createMusicKitToken({
 *   signer,
 *   teamId: 'DEF123GHIJ',
 *   keyId: 'ABC123DEFG',
 * });
 */
export function createMusicKitToken(
  options: MusicKitTokenOptions,
): Promise<AppleToken<'musickit'>> {
  return createAppleToken('musickit', options);
}

/**
 * Mints a WeatherKit REST API token with the `id` header `TEAM.SERVICE`: one hour by default.
 *
 * @example
 * const { token } = await createWeatherKitToken({
 *   signer,
 *   teamId: 'DEF123GHIJ',
 *   serviceId: 'com.example.weather',
 *   keyId: 'ABC123DEFG',
 * });
 */
export function createWeatherKitToken(
  options: WeatherKitTokenOptions,
): Promise<AppleToken<'weatherkit'>> {
  return createAppleToken('weatherkit', options);
}

/**
 * Mints a MapKit JS or Maps Server API token: one hour by default.
 *
 * @example
 * const { token } = await createMapKitToken({
 *   signer,
 *   teamId: 'DEF123GHIJ',
 *   keyId: 'ABC123DEFG',
 *   scope: 'server_api',
 * });
 */
export function createMapKitToken(options: MapKitTokenOptions): Promise<AppleToken<'mapkit'>> {
  return createAppleToken('mapkit', options);
}

/**
 * Mints a DeviceCheck / App Attest token, built like the APNs provider token.
 *
 * @example
 * const { token } = await createDeviceCheckToken({
 *   signer,
 *   teamId: 'DEF123GHIJ',
 *   keyId: 'ABC123DEFG',
 * });
 */
export function createDeviceCheckToken(
  options: DeviceCheckTokenOptions,
): Promise<AppleToken<'devicecheck'>> {
  return createAppleToken('devicecheck', options);
}

/**
 * Mints an Apple School Manager / Apple Business Manager client assertion: one hour by
 * default, under 180 days, with a random `jti`.
 *
 * @example
 * const { token } = await createBusinessManagerAssertion({
 *   signer,
 *   clientId: 'BUSINESSAPI.0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f',
 *   keyId: 'd136aa66-0c3b-4bd4-9892-c20e8db024ab',
 * });
 */
export function createBusinessManagerAssertion(
  options: BusinessManagerTokenOptions,
): Promise<AppleToken<'business-manager'>> {
  return createAppleToken('business-manager', options);
}
