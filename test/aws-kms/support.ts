/**
 * Shared set-up for the AWS KMS tests: a started emulator, and real KMSClients that reach it over
 * a socket with static fake credentials. The AWS environment of the machine running the tests is
 * cleared first, so that no test can pick up real credentials, a profile or a real endpoint.
 */
import { randomBytes } from 'node:crypto';
import { KMSClient } from '@aws-sdk/client-kms';
import { AwsKmsEmulator } from '../emulators/aws-kms/index.js';

/** Fake credentials; tests assert that neither value shows up in errors or events. */
export const fakeCredentials = {
  accessKeyId: 'AKIAEMULATOR7EXAMPLE',
  secretAccessKey: 'emulatorSecret/K7MDENG/bPxRfiCYEXAMPLEKEY',
};

/** Fake temporary credentials with a session token, made fresh for each test run. */
export function fakeSessionCredentials() {
  return {
    accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`,
    secretAccessKey: randomBytes(30).toString('base64'),
    sessionToken: `IQoJ${randomBytes(48).toString('base64')}`,
  };
}

/**
 * Builds the message AWS sends with InvalidSignatureException when a SigV4 signature does not
 * match. It quotes the canonical request AWS expected, including the `x-amz-security-token`
 * header, and the string to sign.
 */
export function signatureMismatchMessage(credentials: { sessionToken: string }): string {
  return [
    'The request signature we calculated does not match the signature you provided. Check your ' +
      'AWS Secret Access Key and signing method. Consult the service documentation for details.',
    '',
    'The Canonical String for this request should have been',
    "'POST",
    '/',
    '',
    'content-type:application/x-amz-json-1.1',
    'host:127.0.0.1',
    'x-amz-date:20260101T000000Z',
    `x-amz-security-token:${credentials.sessionToken}`,
    'x-amz-target:TrentService.GetPublicKey',
    '',
    'content-type;host;x-amz-date;x-amz-security-token;x-amz-target',
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'",
    '',
    'The String-to-Sign should have been',
    "'AWS4-HMAC-SHA256",
    '20260101T000000Z',
    '20260101/us-east-1/kms/aws4_request',
    "8fa220f683adb6517b2df8f5558075060e023aabc1bb0308963977e75f161dda'",
  ].join('\n');
}

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
