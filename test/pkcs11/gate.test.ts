// The SoftHSM2 gate: without SoftHSM2 the PKCS#11 tests are skipped with a printed reason, but
// under CI=true they fail. The decision is checked directly, and end to end by running a fixture
// through its own Vitest process with the module path pointed at a file that does not exist.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { decideSoftHsmGate, findMissingPart, softHsmModulePath } from './softhsm.js';

const missingModule = '/nonexistent/libsofthsm2.so';

/** Runs the gate fixture in a Vitest process of its own and returns its exit code and output. */
function runFixture(modulePath: string, ci: string | undefined) {
  const env: NodeJS.ProcessEnv = { ...process.env, SOFTHSM2_MODULE: modulePath, NO_COLOR: '1' };
  delete env.FORCE_COLOR;
  if (ci === undefined) delete env.CI;
  else env.CI = ci;
  const result = spawnSync(
    process.execPath,
    ['node_modules/vitest/vitest.mjs', 'run', '--config', 'test/pkcs11/gate/vitest.config.ts'],
    { env, encoding: 'utf8' },
  );
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('SoftHSM2 gate', () => {
  it('runs when nothing is missing', () => {
    expect(decideSoftHsmGate(undefined, { CI: 'true' })).toEqual({ action: 'run' });
    expect(decideSoftHsmGate(undefined, {})).toEqual({ action: 'run' });
  });

  it('skips with a reason outside CI', () => {
    for (const env of [{}, { CI: 'false' }, { CI: '1' }]) {
      expect(decideSoftHsmGate('softhsm2-util is not on PATH', env)).toEqual({
        action: 'skip',
        reason:
          'SoftHSM2 is not available: softhsm2-util is not on PATH. ' +
          'Install it with apt-get install softhsm2.',
      });
    }
  });

  it('fails under CI=true', () => {
    const gate = decideSoftHsmGate('pkcs11js is not installed', { CI: 'true' });
    expect(gate.action).toBe('fail');
    expect(gate.reason).toContain('pkcs11js is not installed');
  });

  it('names a missing module file', () => {
    expect(findMissingPart(missingModule)).toBe(`the module ${missingModule} is missing`);
  });

  it('fixture fails under CI=true without SoftHSM2', () => {
    const run = runFixture(missingModule, 'true');
    expect(run.code).toBe(1);
    expect(run.output).toContain('SoftHSM2 is installed (required when CI=true)');
    expect(run.output).toContain(`the module ${missingModule} is missing`);
  });

  it('fixture is skipped with a printed reason outside CI', () => {
    const run = runFixture(missingModule, undefined);
    expect(run.code).toBe(0);
    expect(run.output).toContain(
      `Skipping "gate fixture": SoftHSM2 is not available: the module ${missingModule} is missing.`,
    );
    expect(run.output).toMatch(/Tests\s+1 skipped/);
  });

  it.skipIf(findMissingPart() !== undefined)('fixture runs when SoftHSM2 is there', () => {
    // The fixture's test throws when it runs, so a failing run shows that the block ran.
    const run = runFixture(softHsmModulePath, undefined);
    expect(run.code).toBe(1);
    expect(run.output).toContain('This block must not run without SoftHSM2.');
  });
});
