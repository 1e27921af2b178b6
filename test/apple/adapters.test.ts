/**
 * Every Apple token kind minted through every adapter: the local PEM signer, AWS KMS and Cloud
 * KMS through their real SDK clients against the emulators on 127.0.0.1, and PKCS#11 against
 * SoftHSM2. Each token must verify with jose and jsonwebtoken against the key the backend
 * holds, and carry the same header and claims whichever backend signed it.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAppleToken } from '../../src/apple/index.js';
import type { AppleTokenKind } from '../../src/apple/types.js';
import { createSigner } from '../../src/key-uri.js';
import type { Signer } from '../../src/signer.js';
import { emulatorOptions, startEmulator } from '../aws-kms/support.js';
import type { AwsKmsEmulator } from '../emulators/aws-kms/index.js';
import { GcpKmsEmulator } from '../emulators/gcp-kms/index.js';
import {
  createSoftHsm,
  createTestKey as createHsmKey,
  describeWithSoftHsm,
  softHsmModulePath,
  userPin,
  type SoftHsm,
} from '../pkcs11/softhsm.js';
import {
  businessClientId,
  businessKeyId,
  createTestKey,
  expectFollowsProfile,
  issuerId,
  keyId,
  now,
  teamId,
  verifyIndependently,
} from './support.js';

const optionsByKind: Record<AppleTokenKind, Record<string, unknown>> = {
  'client-secret': { teamId, clientId: 'com.example.web', keyId },
  'app-store-connect': { issuerId, keyId: '2X9R4HXF34', scope: ['GET /v1/apps'] },
  'app-store-server': { issuerId, bundleId: 'com.example.app', keyId: '2X9R4HXF34' },
  apns: { teamId, keyId },
  musickit: { teamId, keyId },
  weatherkit: { teamId, serviceId: 'com.example.weather', keyId },
  mapkit: { teamId, keyId, scope: 'server_api' },
  devicecheck: { teamId, keyId },
  'business-manager': { clientId: businessClientId, keyId: businessKeyId, jti: 'jti-0001' },
};
const kinds = Object.keys(optionsByKind) as AppleTokenKind[];

/** A signer from one backend and the public key that backend really holds. */
interface Backend {
  signer: Signer;
  publicPem: string;
  close(): Promise<void>;
}

function pemOf(publicKey: KeyObject): string {
  return publicKey.export({ type: 'spki', format: 'pem' }).toString();
}

/** The header and claims every backend must produce, minted with the local signer. */
const expected = new Map<AppleTokenKind, { header: unknown; claims: unknown }>();

beforeAll(async () => {
  const { signer } = await createTestKey();
  for (const kind of kinds) {
    const minted = await createAppleToken(kind, { ...optionsByKind[kind], signer, now } as never);
    expected.set(kind, { header: minted.header, claims: minted.claims });
  }
});

/** Registers one test per kind for the backend that `setup` opens. */
function describeBackend(name: string, setup: () => Promise<Backend>): void {
  describe(`Apple tokens through ${name}`, () => {
    let backend: Backend;

    beforeAll(async () => {
      backend = await setup();
    });

    afterAll(async () => {
      await backend?.close();
    });

    it.each(kinds)('mints a verifiable %s token', async (kind) => {
      const options = { ...optionsByKind[kind], signer: backend.signer, now };
      const minted = await createAppleToken(kind, options as never);

      const verified = await verifyIndependently(minted.token, backend.publicPem);
      expect(verified.header).toStrictEqual(expected.get(kind)!.header);
      expect(verified.claims).toStrictEqual(expected.get(kind)!.claims);
      expectFollowsProfile(kind, verified.header, verified.claims);
    });
  });
}

describeBackend('the local PEM signer', async () => {
  const key = await createTestKey();
  return { signer: key.signer, publicPem: key.publicPem, close: async () => undefined };
});

describeBackend('AWS KMS', async () => {
  const kms: AwsKmsEmulator = await startEmulator();
  const key = kms.createKey();
  const signer = await createSigner(`awskms:${key.arn}`, emulatorOptions(kms));
  return {
    signer,
    publicPem: pemOf(createPublicKey(key.privateKey!)),
    close: async () => {
      await signer.close?.();
      await kms.stop();
    },
  };
});

describeBackend('Cloud KMS', async () => {
  const emulator = await new GcpKmsEmulator().start();
  const key = emulator.createKey({ keyRing: 'projects/p/locations/global/keyRings/apple' });
  const signer = await createSigner(emulator.reference(key.versionName));
  return {
    signer,
    publicPem: pemOf(key.publicKey),
    close: async () => {
      await signer.close?.();
      await emulator.stop();
    },
  };
});

describeWithSoftHsm('Apple tokens through SoftHSM2', () => {
  let hsm: SoftHsm;
  const hsmKey = createHsmKey();

  beforeAll(() => {
    hsm = createSoftHsm();
    hsm.createToken('apple-kinds');
    hsm.importPem('apple-kinds', hsmKey.pem, { label: 'apple', id: '0a' });
  });

  afterAll(() => hsm?.remove());

  describeBackend('PKCS#11', async () => {
    const reference = `pkcs11:token=apple-kinds;object=apple;id=%0a?module-path=${softHsmModulePath}`;
    const signer = await createSigner(reference, { pin: userPin });
    return { signer, publicPem: pemOf(hsmKey.publicKey), close: () => signer.close!() };
  });
});
