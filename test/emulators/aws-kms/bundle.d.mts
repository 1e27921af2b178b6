/** Writes the emulator bundle to a temporary folder and returns its path. */
export function bundleAwsKmsEmulator(): Promise<string>;
/** Bundles the emulator and imports it. */
export function importAwsKmsEmulator(): Promise<typeof import('./index.js')>;
