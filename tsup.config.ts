import { defineConfig, type Options } from 'tsup';

// The library: one bundle per public entry point, as ESM and CJS with declarations. Splitting
// keeps shared core modules (errors, the key-scheme registry, the trusted-signer set) in one
// chunk per format, so adapters and the root share them.
const library: Options = {
  entry: {
    index: 'src/index.ts',
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
  // Everything but the CLI bundle below, which a parallel build writes into the same folder.
  clean: ['**/*', '!cli.cjs'],
  target: 'node20',
  platform: 'node',
  treeshake: true,
};

// The CLI loads the remote adapters from the library's own CommonJS builds next to it, so that
// their code is compiled only when a key reference uses them. They share the scheme registry
// with the CLI through globalThis, and signJwt verifies every signature they return.
const remoteAdapters: NonNullable<Options['esbuildPlugins']>[number] = {
  name: 'kms-jwt-remote-adapters',
  setup(build) {
    build.onResolve({ filter: /adapters\/(aws-kms|gcp-kms|pkcs11)\/index\.js$/ }, (args) => {
      const name = /adapters\/([\w-]+)\/index\.js$/.exec(args.path)?.[1];
      return { path: `./${name}.cjs`, external: true };
    });
  },
};

// The `kms-jwt` CLI: one CommonJS file. Node loads one CJS file faster than a graph of ES module
// chunks (no URL resolution, module jobs or linking per chunk); in test/bench/cli.bench.mjs that
// was about a quarter of the time above a bare `node -e 0`. Commands and adapters stay lazy:
// esbuild wraps each dynamically imported module in an initialiser that runs on first use, and
// every package in node_modules is still loaded with require() only when a command needs it.
const cli: Options = {
  entry: { cli: 'src/cli/main.ts' },
  format: ['cjs'],
  dts: false,
  splitting: false,
  sourcemap: false,
  clean: false,
  target: 'node20',
  platform: 'node',
  // Rollup's tree shaking would hoist every require() to the top of the file, so esbuild alone
  // bundles this entry and keeps each require() inside the initialiser of the module using it.
  treeshake: false,
  esbuildPlugins: [remoteAdapters],
  esbuildOptions(options) {
    options.packages = 'external';
  },
};

export default defineConfig([library, cli]);
