/**
 * kms-jwt-signer/pkcs11: ES256 signing and `.p8` import through any PKCS#11 module, addressed by
 * RFC 7512 `pkcs11:` URIs. The native binding pkcs11js is an optional peer dependency, loaded on
 * the first signer or import.
 */
import { KmsJwtError } from '../../src/errors.js';
import type {
  AdapterOptions,
  ImportRequest,
  ImportResult,
  KeyAdapter,
  KeyReference,
} from '../../src/key-uri.js';
import type { Signer } from '../../src/signer.js';
import { importP8ToPkcs11, type Pkcs11ImportOptions } from './import.js';
import { createPkcs11Signer, type Pkcs11SignerOptions } from './signer.js';

export { createPkcs11Signer, type Pkcs11Signer, type Pkcs11SignerOptions } from './signer.js';
export { importP8ToPkcs11, type Pkcs11ImportOptions } from './import.js';
export {
  parsePkcs11Uri,
  type Pkcs11Uri,
  type Pkcs11TokenFilter,
  type Pkcs11ObjectType,
} from './uri.js';
export type { Pkcs11AccessOptions } from './config.js';

/**
 * The `pkcs11:` adapter for `createSigner` and the CLI. It reads the options `modulePath`, `pin`,
 * `pinEnv`, `publicKey`, `maxSessions`, `allowFinalPinTry`, `timeoutMs` and `onEvent`.
 *
 * @example
 * const signer = await createSigner('pkcs11:token=apple;object=siwa', {
 *   modulePath: '/usr/lib/softhsm/libsofthsm2.so',
 *   pin: process.env.HSM_PIN,
 * });
 */
export const adapter: KeyAdapter = {
  name: 'pkcs11',

  createSigner(reference: KeyReference, options?: AdapterOptions): Promise<Signer> {
    assertScheme(reference);
    return createPkcs11Signer(reference.raw, (options ?? {}) as Pkcs11SignerOptions);
  },

  importKey(request: ImportRequest): Promise<ImportResult> {
    assertScheme(request.target);
    const options = { ...(request.options ?? {}), overwrite: request.overwrite === true };
    return importP8ToPkcs11(request.privateKey, request.target.raw, options as Pkcs11ImportOptions);
  },
};

function assertScheme(reference: KeyReference): void {
  if (reference.scheme === 'pkcs11') return;
  throw new KmsJwtError(
    'ERR_KEY_REFERENCE_SCHEME',
    `The pkcs11 adapter takes pkcs11: references, not "${reference.scheme}:".`,
    { details: { scheme: reference.scheme } },
  );
}
