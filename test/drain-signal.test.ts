// drainSignal(): one process-wide signal, aborted once by the package's drains (startDraining), and
// never by anything else. The drains that abort it run in real processes in test/dropin.test.ts (a
// supervisor's reload) and test/cluster-link.test.ts (PM2's stop signal).
import { describe, expect, it } from 'vitest';
import { drainSignal, startDraining } from '../lib/worker/drain-signal';

describe('drainSignal', () => {
  it('is one signal per process, shared through a global symbol by every copy of the package, aborted once with the first reason', () => {
    const signal = drainSignal();
    expect(drainSignal()).toBe(signal);
    expect(signal.aborted).toBe(false);
    // Another copy of the package finds the same controller.
    const shared = (globalThis as Record<symbol, AbortController | undefined>)[Symbol.for('reuseport.drain')];
    expect(shared?.signal).toBe(signal);
    const seen: unknown[] = [];
    signal.addEventListener('abort', () => seen.push(signal.reason));
    startDraining('a test');
    startDraining('a second time');
    expect(signal.aborted).toBe(true);
    expect(seen).toHaveLength(1);
    expect(signal.reason).toMatchObject({ code: 'REUSEPORT_DRAINING', message: "reuseport: draining this process's servers: a test" });
  });
});
