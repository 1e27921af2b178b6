/**
 * Refresh policies: when a cached token is due for a new one. Each Apple token profile names
 * one, and the token provider and the CLI's file cache both apply it.
 */

/** Refresh a token by the time left before `exp`, for long-lived tokens such as a client secret. */
export interface BeforeExpiryPolicy {
  type: 'before-expiry';
  /** Refresh once this fraction of the lifetime (`exp - iat`) has passed, for example 0.5. */
  refreshAtFraction: number;
  /** Never serve a token with fewer seconds than this left before `exp`. */
  minRemainingSeconds: number;
}

/**
 * Refresh a token by its own age since `iat`, for APNs-style tokens that Apple wants replaced
 * between 20 and 60 minutes and never more often than every 20 minutes.
 */
export interface ByAgePolicy {
  type: 'by-age';
  /** The youngest age at which a refresh may happen, in seconds (1200 for APNs). */
  minAgeSeconds: number;
  /** The age at which the token must be replaced, in seconds (3600 for APNs). */
  maxAgeSeconds: number;
  /** Refresh at this age when nothing forces it earlier, in seconds. */
  targetAgeSeconds: number;
}

/** When a token kind wants its tokens refreshed. */
export type RefreshPolicy = BeforeExpiryPolicy | ByAgePolicy;
