/**
 * Apple ES256 developer tokens: one declarative profile per kind, typed minting functions, and
 * inspection of existing tokens against the same rules.
 */
export { createAppleToken, defaultIatSkewSeconds } from './mint.js';
export {
  createAppleClientSecret,
  createAppStoreConnectToken,
  createAppStoreServerToken,
  createApnsToken,
  createMusicKitToken,
  createWeatherKitToken,
  createMapKitToken,
  createDeviceCheckToken,
  createBusinessManagerAssertion,
} from './kinds.js';
export { appleTokenProfiles, appleTokenKinds } from './profiles.js';
export { createAppleTokenProvider, type AppleTokenProviderOptions } from './provider.js';
export {
  inspectAppleToken,
  type InspectAppleTokenOptions,
  type AppleTokenInspection,
} from './inspect.js';
export { parseDuration } from '../duration.js';
export type * from './types.js';
