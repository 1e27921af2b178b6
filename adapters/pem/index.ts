/**
 * The local key adapter, subpath `kms-jwt-signer/pem`: ES256 signing with an Apple `.p8`
 * (PKCS#8) or SEC1 P-256 key from a file, an environment variable or inline text, and public
 * key loading for verification. It serves the `file:` scheme (and bare paths) and `env:`.
 */
import type { AdapterOptions, KeyAdapter, KeyReference } from '../../src/key-uri.js';
import type { Signer } from '../../src/signer.js';
import { pemSourceFromReference } from './reference.js';
import { createPemSigner } from './signer.js';
import type { PemSignerOptions } from './source.js';

export { createPemSigner } from './signer.js';
export { loadPrivateKey, loadPublicKey } from './load.js';
export { describeKeyFilePermissions, keyIdFromFileName } from './file-checks.js';
export { pemSourceFromReference, resolveKeyPath } from './reference.js';
export type { PemSource, PemSignerOptions } from './source.js';
export type { Repair } from './repairs.js';

const runtimeOptionNames = ['signal', 'timeoutMs', 'now', 'onEvent'] as const;

/**
 * The adapter behind `file:PATH`, bare paths and `env:NAME` references. It reads the options
 * `passphrase` and `passphraseEnv`, plus the runtime options.
 *
 * @example
 * const signer = await createSigner('env:APPLE_PRIVATE_KEY', { passphraseEnv: 'APPLE_KEY_PASS' });
 */
export const adapter: KeyAdapter = {
  name: 'pem',
  async createSigner(reference: KeyReference, options: AdapterOptions = {}): Promise<Signer> {
    return createPemSigner(pemSourceFromReference(reference), pickPemOptions(options));
  },
};

function pickPemOptions(options: AdapterOptions): PemSignerOptions {
  const picked: PemSignerOptions = {};
  for (const name of runtimeOptionNames) {
    if (options[name] !== undefined) Object.assign(picked, { [name]: options[name] });
  }
  if (options.passphrase !== undefined) picked.passphrase = options.passphrase as string;
  if (options.passphraseEnv !== undefined) picked.passphraseEnv = options.passphraseEnv as string;
  return picked;
}
