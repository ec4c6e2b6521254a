// How a reload cuts the slots into waves: the canary (slot 0) alone, then as many slots at once as
// maxDraining leaves room for beside the old workers still draining, never fewer than one.
import { describe, expect, it } from 'vitest';
import { reloadWaveSize } from '../lib/supervisor/slots/reload';

describe('reloadWaveSize', () => {
  it.each([
    ['the canary: slot 0 alone, whatever the cap', { next: 0, slots: 16, maxDraining: 16, draining: 0 }, 1],
    ['the canary of a single worker', { next: 0, slots: 1, maxDraining: 1, draining: 0 }, 1],
    ['no cap (maxDraining = workers): every other slot in one wave beside the canary draining', { next: 1, slots: 16, maxDraining: 16, draining: 1 }, 15],
    ['no cap, the canary already drained', { next: 1, slots: 64, maxDraining: 64, draining: 0 }, 63],
    ['maxDraining 1: one slot at a time', { next: 5, slots: 16, maxDraining: 1, draining: 0 }, 1],
    ['maxDraining 4 with 1 draining: 3 more', { next: 1, slots: 16, maxDraining: 4, draining: 1 }, 3],
    ['maxDraining 4 with 4 draining: still one (the caller waits for a drain first)', { next: 9, slots: 16, maxDraining: 4, draining: 4 }, 1],
    ['the last slots: no more than are left', { next: 14, slots: 16, maxDraining: 8, draining: 0 }, 2],
    ['nothing left', { next: 16, slots: 16, maxDraining: 16, draining: 0 }, 0],
  ])('%s', (_name, state, size) => {
    expect(reloadWaveSize(state)).toBe(size);
  });
});
