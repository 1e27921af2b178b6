/**
 * Real redis-server for the store tests. Without redis-server the tests are skipped with a
 * printed reason, except under CI=true, where a missing redis-server is a failure.
 */
import { describe, it } from 'vitest';
import { findRedisServerProblem } from './redis-server.mjs';

const problem = findRedisServerProblem();

/**
 * `describe` when redis-server can run. Otherwise the block is skipped with a printed reason,
 * or, under CI=true, replaced by one failing test.
 */
export function describeWithRedis(name: string, body: () => void): void {
  if (problem === undefined) {
    describe(name, body);
    return;
  }
  const reason = `${problem}. Install it with apt-get install redis-server.`;
  if (process.env.CI === 'true') {
    describe(name, () => {
      it('redis-server is installed (required when CI=true)', () => {
        throw new Error(reason);
      });
    });
    return;
  }
  console.log(`Skipping "${name}": ${reason}`);
  describe.skip(name, body);
}
