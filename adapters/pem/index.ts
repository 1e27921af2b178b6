// TODO: placeholder until the pem adapter lands; it only keeps the key-scheme map resolvable.
import { BackendError } from '../../src/errors.js';
import type { KeyAdapter } from '../../src/key-uri.js';

export const adapter: KeyAdapter = {
  name: 'pem',
  async createSigner() {
    throw new BackendError('ERR_BACKEND_NOT_BUILT', 'The pem adapter is not built yet.');
  },
};
