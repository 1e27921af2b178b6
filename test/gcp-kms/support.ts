/**
 * Shared set-up for the Cloud KMS tests: a started emulator, and real KeyManagementServiceClients
 * that reach it over a plaintext loopback socket. Google settings inherited from the shell are
 * cleared first and metadata-server detection is switched off, so that no test can find real
 * credentials or probe a metadata server.
 */
import { KeyManagementServiceClient } from '@google-cloud/kms';
import { grpc } from 'google-gax';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { importSPKI, jwtVerify } from 'jose';
import jsonwebtoken from 'jsonwebtoken';
import { GcpKmsEmulator } from '../emulators/gcp-kms/index.js';

/** A key ring that every test may use; the emulator accepts any name. */
export const keyRing = 'projects/kms-jwt-test/locations/global/keyRings/apple';

/** Removes Google settings inherited from the developer's shell and blocks metadata probes. */
export function isolateGoogleEnvironment(): void {
  for (const name of Object.keys(process.env)) {
    if (name.startsWith('GOOGLE_') || name.startsWith('GCLOUD_') || name.startsWith('GCE_')) {
      delete process.env[name];
    }
  }
  process.env.METADATA_SERVER_DETECTION = 'none';
  process.env.GOOGLE_APPLICATION_CREDENTIALS = '/nonexistent/google-credentials.json';
}

/** Starts an emulator on 127.0.0.1 with one key ring. */
export async function startEmulator(): Promise<GcpKmsEmulator> {
  isolateGoogleEnvironment();
  const emulator = await new GcpKmsEmulator().start();
  emulator.addKeyRing(keyRing);
  return emulator;
}

/**
 * A real KeyManagementServiceClient pointed at `emulator`, built the way the documentation tells
 * callers to build one for an emulator: insecure channel credentials from google-gax's grpc-js,
 * and an explicit universe domain so that no credential lookup runs.
 */
export function emulatorClient(emulator: GcpKmsEmulator): KeyManagementServiceClient {
  return new KeyManagementServiceClient({
    apiEndpoint: emulator.host,
    port: emulator.port,
    sslCreds: grpc.credentials.createInsecure(),
    universeDomain: 'googleapis.com',
  });
}

/** A frozen Apple client-secret header and claims. */
export function clientSecretParts(jti = 'fixed') {
  return {
    header: { alg: 'ES256' as const, kid: 'KEYBBBB222' },
    payload: {
      iss: 'TEAMAAAA11',
      iat: 1_767_225_570,
      exp: 1_767_312_000,
      aud: 'https://appleid.apple.com',
      sub: 'com.example.web',
      jti,
    },
  };
}

/** 2026-01-01T00:00:00Z, inside the validity of {@link clientSecretParts}. */
export const frozenNow = new Date(1_767_225_600_000);

/** Returns the SPKI PEM of a private or public key. */
export function spkiPem(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return publicKey.export({ type: 'spki', format: 'pem' }).toString();
}

/**
 * Verifies `token` with jose and with jsonwebtoken, and returns both claim sets. Either library
 * throws when the signature, the algorithm or the times are wrong.
 */
export async function verifyToken(token: string, key: KeyObject) {
  const pem = spkiPem(key);
  const { payload } = await jwtVerify(token, await importSPKI(pem, 'ES256'), {
    algorithms: ['ES256'],
    currentDate: frozenNow,
  });
  const decoded = jsonwebtoken.verify(token, pem, {
    algorithms: ['ES256'],
    clockTimestamp: frozenNow.getTime() / 1000,
  });
  return { payload, decoded };
}

/** A coded error as a test reads it: `code` and `details`, never the class. */
export interface CodedError extends Error {
  code?: string;
  details?: Record<string, unknown>;
}

/** Returns what `promise` rejects with, and fails the test when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<CodedError> {
  try {
    await promise;
  } catch (error) {
    return error as CodedError;
  }
  throw new Error('expected a rejection');
}
