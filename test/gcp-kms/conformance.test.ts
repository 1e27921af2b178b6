import { createGcpKmsSigner } from '../../adapters/gcp-kms/index.js';
import { describeSignerConformance } from '../conformance/suite.js';
import { keyRing, startEmulator } from './support.js';

describeSignerConformance('gcp-kms', async () => {
  const kms = await startEmulator();
  const key = kms.createKey({ keyRing, cryptoKeyId: 'conformance' });
  const signer = await createGcpKmsSigner(kms.reference(key.versionName));
  return {
    signer,
    expectedPublicKey: key.publicKey,
    async close() {
      await signer.close?.();
      await kms.stop();
    },
  };
});
