/**
 * Package-internal state that is not exported from the root. It marks signers whose signatures
 * come from `node:crypto` with a key this package loaded itself, which `signJwt` trusts without
 * verifying. No option or public export reaches this set.
 */
import type { Signer } from './signer.js';

const trustedLocalSigners = new WeakSet<Signer>();

/** Marks a signer built by this package's own `node:crypto` signer. */
export function markTrustedLocalSigner(signer: Signer): void {
  trustedLocalSigners.add(signer);
}

/** Returns true for a signer marked by {@link markTrustedLocalSigner}. */
export function isTrustedLocalSigner(signer: Signer): boolean {
  return trustedLocalSigners.has(signer);
}
