/**
 * Vitest global setup: rebuilds dist/ when any source is newer, once per run, so that the tests
 * that spawn the built package or CLI never exercise stale code.
 */
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  execFileSync(process.execPath, ['scripts/build-if-stale.mjs'], { stdio: 'inherit' });
}
