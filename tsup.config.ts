import { defineConfig } from 'tsup';

// One bundle per public entry point. Splitting keeps shared core modules (errors, the key-scheme
// registry, the trusted-signer set) in one chunk per format, so adapters and the root share them.
export default defineConfig({
  entry: {
    index: 'src/index.ts',
    cli: 'src/cli/main.ts',
    pem: 'adapters/pem/index.ts',
    'aws-kms': 'adapters/aws-kms/index.ts',
    'gcp-kms': 'adapters/gcp-kms/index.ts',
    pkcs11: 'adapters/pkcs11/index.ts',
    'redis-store': 'src/stores/redis.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  splitting: true,
  sourcemap: false,
  clean: true,
  target: 'node20',
  platform: 'node',
  treeshake: true,
});
