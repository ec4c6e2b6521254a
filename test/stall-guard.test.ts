// StallGuard and the periodic checks' pace, with fake workers: a worker is pinged only when its slot has
// connections waiting, a silent one has its slot lent after the threshold and recalled when it answers.
import type { Worker } from 'node:cluster';
import { describe, expect, it } from 'vitest';
import { MONITOR_MS, QUIET_AFTER_MS, QUIET_MONITOR_MS, nextCheckDelay } from '../lib/supervisor/checks';
import { resolveSettings } from '../lib/supervisor/settings';
import { newSlot } from '../lib/supervisor/slot';
import type { SlotSockets } from '../lib/supervisor/slot-sockets';
import { StallGuard } from '../lib/supervisor/stalls';
import type { WorkerSlots } from '../lib/supervisor/worker-slots';

interface Sent {
  pid: number;
  act: string;
  slot?: number;
  handle: boolean;
}

function fakeWorker(pid: number): Worker {
  return { process: { pid, kill: () => true }, isDead: () => false, isConnected: () => true } as unknown as Worker;
}

function guard(stallThresholdMs = 80) {
  const settings = resolveSettings({ exec: 'worker.js', workers: 2, stallThresholdMs });
  const slots = [newSlot(0, undefined), newSlot(1, undefined)];
  const workers = [fakeWorker(100), fakeWorker(101)];
  slots.forEach((slot, i) => Object.assign(slot, { worker: workers[i], ready: true, everListened: true }));
  const sent: Sent[] = [];
  const events: { event: string; payload: unknown }[] = [];
  const workerSlots = {
    slots,
    closing: false,
    isLeaving: () => false,
    send: (worker: Worker, message: { act: string; slot?: number }, handle?: unknown) => sent.push({ pid: worker.process.pid as number, act: message.act, slot: message.slot, handle: handle !== undefined }),
  } as unknown as WorkerSlots;
  const sockets = { has: () => true, socketsOf: () => [{ port: 8000, handle: {} }] } as unknown as SlotSockets;
  const stalls = new StallGuard(settings, workerSlots, sockets, (event, payload) => events.push({ event, payload }));
  return { stalls, slots, workers, sent, events };
}

describe('StallGuard', () => {
  it('sends nothing while no connection waits', () => {
    const { stalls, sent } = guard();
    for (let i = 0; i < 5; i++) stalls.watch();
    expect(sent).toEqual([]);
    expect(stalls.unsettled).toBe(false);
  });

  it('pings a worker whose slot has connections waiting, once until it answers', () => {
    const { stalls, slots, workers, sent } = guard();
    stalls.waiting(slots[0]!);
    stalls.waiting(slots[0]!);
    expect(sent).toEqual([{ pid: 100, act: 'ping', slot: undefined, handle: false }]);
    expect(stalls.unsettled).toBe(true);
    stalls.beat(workers[0]!, { '0': 3 });
    expect(stalls.unsettled).toBe(false);
    stalls.waiting(slots[0]!);
    expect(sent.filter((m) => m.act === 'ping')).toHaveLength(2);
  });

  it('lends the slot of a worker silent past the threshold, and recalls it when the worker answers', () => {
    const { stalls, slots, workers, sent, events } = guard(80);
    // Asked 200 ms ago, never answered.
    stalls.waiting(slots[0]!, performance.now() - 200);
    stalls.watch();
    expect(sent.at(-1)).toEqual({ pid: 101, act: 'lend', slot: 0, handle: true });
    expect(stalls.lentTo(0)).toBe(workers[1]);
    expect(events.map((e) => e.event)).toEqual(['stall']);
    expect(slots[0]!.stalls).toBe(1);
    stalls.beat(workers[0]!, {});
    stalls.watch();
    expect(sent.at(-1)).toEqual({ pid: 101, act: 'recall', slot: 0, handle: false });
    expect(stalls.lentTo(0)).toBeUndefined();
    expect(events.map((e) => e.event)).toEqual(['stall', 'recover']);
  });

  it('does not lend a slot whose worker was asked only just now', () => {
    const { stalls, slots, sent } = guard(80);
    stalls.waiting(slots[0]!);
    stalls.watch();
    expect(sent.map((m) => m.act)).toEqual(['ping']);
  });

  it('adds up the accept counts each worker reports since it started', () => {
    const { stalls, slots, workers } = guard();
    stalls.beat(workers[0]!, { '0': 3 });
    stalls.beat(workers[0]!, { '0': 5, '1': 2 });
    stalls.beat(workers[1]!, { '1': 4 });
    expect(slots.map((slot) => slot.accepted)).toEqual([5, 6]);
  });

  it('with stall protection off (stallThresholdMs: 0) pings nobody', () => {
    const { stalls, slots, sent } = guard(0);
    stalls.waiting(slots[0]!);
    expect(sent).toEqual([]);
  });
});

describe('the pace of the periodic checks', () => {
  it.each([
    { busy: true, quietForMs: 0, delay: MONITOR_MS },
    { busy: true, quietForMs: 10 * QUIET_AFTER_MS, delay: MONITOR_MS },
    { busy: false, quietForMs: 0, delay: MONITOR_MS },
    { busy: false, quietForMs: QUIET_AFTER_MS - 1, delay: MONITOR_MS },
    { busy: false, quietForMs: QUIET_AFTER_MS, delay: QUIET_MONITOR_MS },
  ])('busy $busy, quiet for $quietForMs ms: next check in $delay ms', ({ busy, quietForMs, delay }) => {
    expect(nextCheckDelay(busy, quietForMs)).toBe(delay);
  });
});
