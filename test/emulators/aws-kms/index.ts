/** The local AWS KMS emulator. emulator.ts describes its protocol and its fault switches. */
export {
  AwsKmsEmulator,
  KmsServiceError,
  type AwsKmsEmulatorOptions,
  type EmulatorFaults,
  type EmulatorKey,
  type EmulatorKeySpec,
  type EmulatorKeyState,
  type RecordedRequest,
  type SignatureFault,
} from './emulator.js';
