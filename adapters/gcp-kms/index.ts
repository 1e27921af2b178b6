// TODO: placeholder until the gcp-kms adapter lands; it only keeps the key-scheme map resolvable.
import { BackendError } from '../../src/errors.js';
import type { KeyAdapter } from '../../src/key-uri.js';

export const adapter: KeyAdapter = {
  name: 'gcp-kms',
  async createSigner() {
    throw new BackendError('ERR_BACKEND_NOT_BUILT', 'The gcp-kms adapter is not built yet.');
  },
};
