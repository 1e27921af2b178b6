/**
 * The shared adapter conformance suite against the AWS KMS adapter, once for a key addressed by
 * ARN through a client the adapter builds, and once for an alias through a caller's KMSClient.
 */
import { createPublicKey } from 'node:crypto';
import { createAwsKmsSigner } from '../../adapters/aws-kms/index.js';
import { describeSignerConformance } from '../conformance/suite.js';
import { emulatorClient, emulatorOptions, startEmulator } from './support.js';

describeSignerConformance('aws-kms by key ARN', async () => {
  const kms = await startEmulator();
  const key = kms.createKey();
  const signer = await createAwsKmsSigner(`awskms:${key.arn}`, emulatorOptions(kms));
  return {
    signer,
    expectedPublicKey: createPublicKey(key.privateKey!),
    async close() {
      await signer.close();
      await kms.stop();
    },
  };
});

describeSignerConformance("aws-kms by alias with the caller's client", async () => {
  const kms = await startEmulator();
  const key = kms.createKey({ alias: 'alias/conformance' });
  const client = emulatorClient(kms);
  const signer = await createAwsKmsSigner('awskms:alias/conformance', { client });
  return {
    signer,
    expectedPublicKey: createPublicKey(key.privateKey!),
    async close() {
      await signer.close();
      client.destroy();
      await kms.stop();
    },
  };
});
