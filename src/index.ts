/**
 * kms-jwt-signer: ES256 JWTs signed by a P-256 key in a KMS, an HSM or a local file. The root
 * loads no cloud SDK, native binding or ASN.1 library; each adapter loads its own on first use.
 */
export type {
  Signer,
  SignOptions,
  GetPublicKeyOptions,
  RuntimeOptions,
  SignerEvent,
} from './signer.js';
export { sha256 } from './signer.js';
export { derToJose, joseToDer } from './der.js';
export { signJwt, isValidSignature, type JwsHeader, type JwtParts } from './jws.js';
export { base64urlEncode, base64urlDecode } from './base64url.js';
export {
  KmsJwtError,
  KeyError,
  ClaimsError,
  SignatureError,
  BackendError,
  isKmsJwtError,
  type KmsJwtErrorOptions,
} from './errors.js';
export {
  createSigner,
  parseKeyReference,
  parseReferenceAttributes,
  registerKeyScheme,
  listKeySchemes,
  type KeyReference,
  type KeyAdapter,
  type AdapterLoader,
  type AdapterOptions,
  type ImportRequest,
  type ImportResult,
  type ReferenceAttributes,
} from './key-uri.js';
export {
  computeRefreshWindow,
  type RefreshPolicy,
  type BeforeExpiryPolicy,
  type ByAgePolicy,
  type RefreshWindow,
  type TokenTimes,
} from './token-policy.js';
export {
  createTokenProvider,
  tokenCacheKey,
  type TokenProvider,
  type TokenProviderOptions,
  type TokenGetOptions,
} from './token-provider.js';
export type { MintedToken, MintFunction } from './token-record.js';
export {
  createMemoryStore,
  type TokenStore,
  type TokenLease,
  type MemoryStoreOptions,
} from './stores/store.js';
export {
  getOrMintWithFileCache,
  type FileCacheOptions,
  type FileCacheResult,
} from './stores/file-cache.js';
export { publicKeyToJwk, jwkThumbprint, type P256PublicJwk } from './jwk.js';
export * from './apple/index.js';
