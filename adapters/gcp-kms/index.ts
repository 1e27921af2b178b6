/**
 * Google Cloud KMS adapter: ES256 signing with a CryptoKeyVersion of algorithm
 * EC_SIGN_P256_SHA256, with Google's full CRC32C integrity round trip, and the import of an
 * existing `.p8` key through an ImportJob. It loads @google-cloud/kms (an optional peer
 * dependency) on first use.
 */
import type { AdapterOptions, KeyAdapter } from '../../src/key-uri.js';
import { emitEvent } from '../../src/signer.js';
import { importP8ToGcpKms, type GcpKmsImportOptions } from './import.js';
import { createGcpKmsSigner, type GcpKmsSignerOptions } from './signer.js';

export { createGcpKmsSigner, es256Algorithm, type GcpKmsSignerOptions } from './signer.js';
export { importP8ToGcpKms, type GcpKmsImportOptions, type ImportStep } from './import.js';
export {
  parseGcpKmsReference,
  formatGcpKmsReference,
  type GcpKmsReference,
  type GcpKmsEndpoint,
  type GcpKmsImportSettings,
} from './reference.js';
export { crc32c } from './integrity.js';
export { supportedImportMethods, defaultImportMethod } from './wrap.js';
export type {
  GcpKmsClient,
  GcpKmsImportClient,
  GcpKmsCallOptions,
  GcpKmsReply,
  ImportMethodName,
  ImportProtectionLevel,
} from './client.js';

/**
 * The adapter behind the `gcpkms:` and `cloudkms:` schemes. Options read: `client`,
 * `maxAttempts`, the runtime options, and for `importKey` also `protectionLevel`,
 * `importMethod`, `importJobId`, `pollIntervalMs` and `pollTimeoutMs`. An `alias` option, which
 * other backends use to name an imported key, only raises a warning event here.
 *
 * @example
 * const reference = parseKeyReference('gcpkms:projects/.../cryptoKeyVersions/1');
 * const signer = await adapter.createSigner(reference);
 */
export const adapter: KeyAdapter = {
  name: 'gcp-kms',
  createSigner(reference, options?: AdapterOptions) {
    return createGcpKmsSigner(reference, (options ?? {}) as GcpKmsSignerOptions);
  },
  importKey(request) {
    const options = (request.options ?? {}) as GcpKmsImportOptions;
    if (request.options?.alias !== undefined) {
      emitEvent(options, {
        type: 'warning',
        backend: 'gcp-kms',
        message:
          'Cloud KMS has no key aliases, so the alias is ignored; the CryptoKey ID in the ' +
          'reference names the key.',
      });
    }
    return importP8ToGcpKms(request.privateKey, request.target, options);
  },
};
