// A fixture for the gate test, run by its own Vitest process: the one test inside fails if it
// runs, so a run that exits 0 proves that the block was skipped.
import { it } from 'vitest';
import { describeWithSoftHsm } from '../softhsm.js';

describeWithSoftHsm('gate fixture', () => {
  it('runs only with SoftHSM2', () => {
    throw new Error('This block must not run without SoftHSM2.');
  });
});
