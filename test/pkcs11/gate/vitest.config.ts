// Vitest settings for the gate fixture alone, without the build step of the main test run.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/pkcs11/gate/*.fixture.ts'],
    pool: 'forks',
  },
});
