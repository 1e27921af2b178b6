/**
 * Shared set-up for the AWS KMS tests: a started emulator, and real KMSClients that reach it over
 * a socket with static fake credentials. The AWS environment of the machine running the tests is
 * cleared first, so that no test can pick up real credentials, a profile or a real endpoint.
 */
import { KMSClient } from '@aws-sdk/client-kms';
import { AwsKmsEmulator } from '../emulators/aws-kms/index.js';

/** Fake credentials; tests assert that neither value shows up in errors or events. */
export const fakeCredentials = {
  accessKeyId: 'AKIAEMULATOR7EXAMPLE',
  secretAccessKey: 'emulatorSecret/K7MDENG/bPxRfiCYEXAMPLEKEY',
};

/** Removes AWS settings inherited from the developer's shell and blocks metadata lookups. */
export function isolateAwsEnvironment(): void {
  for (const name of Object.keys(process.env)) {
    if (name.startsWith('AWS_')) delete process.env[name];
  }
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  process.env.AWS_CONFIG_FILE = '/nonexistent/aws-config';
  process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/aws-credentials';
}

/** Starts an emulator on 127.0.0.1. */
export async function startEmulator(): Promise<AwsKmsEmulator> {
  isolateAwsEnvironment();
  const emulator = new AwsKmsEmulator();
  await emulator.start();
  return emulator;
}

/** A real KMSClient pointed at `emulator`. Retry settings are left to the caller. */
export function emulatorClient(
  emulator: AwsKmsEmulator,
  extra: Record<string, unknown> = {},
): KMSClient {
  return new KMSClient({
    endpoint: emulator.endpoint,
    region: emulator.region,
    credentials: fakeCredentials,
    ...extra,
  });
}

/** The adapter options that make it build its own client against `emulator`. */
export function emulatorOptions(emulator: AwsKmsEmulator) {
  return {
    endpoint: emulator.endpoint,
    region: emulator.region,
    credentials: fakeCredentials,
    retryBaseDelayMs: 1,
  };
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
