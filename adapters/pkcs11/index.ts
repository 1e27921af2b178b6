// TODO: placeholder until the pkcs11 adapter lands; it only keeps the key-scheme map resolvable.
import { BackendError } from '../../src/errors.js';
import type { KeyAdapter } from '../../src/key-uri.js';

export const adapter: KeyAdapter = {
  name: 'pkcs11',
  async createSigner() {
    throw new BackendError('ERR_BACKEND_NOT_BUILT', 'The pkcs11 adapter is not built yet.');
  },
};
