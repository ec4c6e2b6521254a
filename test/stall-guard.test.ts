// StallGuard and the periodic checks' pace, with fake workers: a worker is pinged only when its slot has
// connections waiting, a silent one has its slot lent after the threshold and recalled when it answers.
import type { Worker } from 'node:cluster';
import { describe, expect, it } from 'vitest';
import { BUSY_MONITOR_MS, MONITOR_MS, QUIET_AFTER_MS, QUIET_MONITOR_MS, nextCheckDelay, silentSince } from '../lib/supervisor/liveness/checks';
import { resolveSettings } from '../lib/supervisor/core/settings';
import { ProgressBoard } from '../lib/supervisor/slots/progress-board';
import { newSlot } from '../lib/supervisor/slots/slot';
import type { SlotSockets } from '../lib/supervisor/slots/slot-sockets';
import { StallGuard } from '../lib/supervisor/liveness/stalls';
import type { WorkerSlots } from '../lib/supervisor/slots/worker-slots';
import { ProgressCell } from '../lib/worker/progress';

interface Sent {
  pid: number;
  act: string;
  slot?: number;
  handle: boolean;
}

function fakeWorker(pid: number): Worker {
  return { process: { pid, kill: () => true }, isDead: () => false, isConnected: () => true } as unknown as Worker;
}

// `lendable(slot, to)`: how many of slot's sockets the worker of slot `to` listens on (one each by default).
function guard(stallThresholdMs = 80, count = 2, lendable = (_slot: number, _to: number) => 1, board?: ProgressBoard) {
  const settings = resolveSettings({ exec: 'worker.js', workers: count, stallThresholdMs });
  const slots = Array.from({ length: count }, (_, index) => newSlot(index, undefined));
  const workers = slots.map((_, index) => fakeWorker(100 + index));
  slots.forEach((slot, i) => {
    slot.worker = workers[i];
    slot.life.fire('fork');
    slot.life.fire('listen');
  });
  const sent: Sent[] = [];
  const events: { event: string; payload: unknown }[] = [];
  const workerSlots = {
    slots,
    closing: false,
    isLeaving: () => false,
    send: (worker: Worker, message: { act: string; slot?: number }, handle?: unknown) =>
      sent.push({ pid: worker.process.pid as number, act: message.act, slot: message.slot, handle: handle !== undefined }),
  } as unknown as WorkerSlots;
  const sockets = {
    has: () => true,
    lendable: (slot: number, to: number) => Array.from({ length: lendable(slot, to) }, (_, i) => ({ port: 8000 + i, handle: {} })),
  } as unknown as SlotSockets;
  const stalls = new StallGuard(settings, workerSlots, sockets, (event, payload) => events.push({ event, payload }), board);
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

  it.each<[string, string[], string | undefined]>([
    ['none under way: no word of one', [], undefined],
    ['during a reload: says so', ['a reload'], 'a reload'],
    ['during an upgrade: says so', ['an upgrade'], 'an upgrade'],
  ])("a stall's event with %s", (_name, deploys, during) => {
    const { stalls, slots, events } = guard(80);
    for (const reason of deploys) stalls.pause(reason);
    stalls.waiting(slots[0]!, performance.now() - 200);
    stalls.watch();
    expect(events).toEqual([{ event: 'stall', payload: { slot: 0, pid: 100, lentTo: 101, ...(during ? { during } : {}) } }]);
  });

  it('a stall after the reload ended says nothing of it', () => {
    const { stalls, slots, workers, events } = guard(80);
    stalls.pause('a reload');
    stalls.resume('a reload');
    stalls.waiting(slots[0]!, performance.now() - 200);
    stalls.watch();
    expect(events.at(-1)?.payload).not.toHaveProperty('during');
    expect(stalls.lentTo(0)).toBe(workers[1]);
  });

  it.each([
    ['the worker that serves the most of its ports', (_slot: number, to: number) => [0, 1, 2][to] ?? 0, 102, 2],
    ['of those serving as many, the first', () => 1, 101, 1],
    ['only the worker that serves one of its ports', (_slot: number, to: number) => (to === 2 ? 1 : 0), 102, 1],
  ])('lends a stalled slot to %s, only the sockets of ports it listens on', (_name, lendable, borrower, lent) => {
    const { stalls, slots, sent } = guard(80, 3, lendable);
    stalls.waiting(slots[0]!, performance.now() - 200);
    stalls.watch();
    const lends = sent.filter((m) => m.act === 'lend');
    expect(lends).toEqual(Array.from({ length: lent }, () => ({ pid: borrower, act: 'lend', slot: 0, handle: true })));
  });

  it('lends a stalled slot to no worker when no other worker listens on any of its ports: no loan, no stall', () => {
    const { stalls, slots, sent, events } = guard(80, 3, () => 0);
    stalls.waiting(slots[0]!, performance.now() - 200);
    stalls.watch();
    expect(sent.map((m) => m.act)).toEqual(['ping']);
    expect(stalls.lentTo(0)).toBeUndefined();
    expect(events).toEqual([]);
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

  it("counts each worker's own slot from its progress cell (no message), lent slots from its beats, and a gone worker's last count", () => {
    const board = ProgressBoard.open();
    if (!(board instanceof ProgressBoard)) throw board;
    try {
      const one = () => 1;
      const { stalls, slots, workers } = guard(80, 2, one, board);
      const cells = workers.map((worker) => {
        const assigned = board.assign();
        if (!assigned) throw new Error('no cell');
        board.bind(worker, assigned.cell);
        return ProgressCell.open(assigned.env, process.pid) as ProgressCell;
      });
      for (let i = 0; i < 3; i++) cells[0]!.accepted();
      cells[1]!.accepted();
      stalls.tally();
      expect(slots.map((slot) => slot.accepted)).toEqual([3, 1]);
      // A beat of worker 1 with slot 0 lent to it, and its own count as the cell has it: counted once.
      stalls.beat(workers[1]!, { '0': 2, '1': 1 });
      stalls.tally();
      expect(slots.map((slot) => slot.accepted)).toEqual([5, 1]);
      // Worker 0 accepts twice more and exits before the next tally: its last count is added.
      cells[0]!.accepted();
      cells[0]!.accepted();
      stalls.forget(workers[0]!, 0);
      board.release(workers[0]!);
      stalls.tally();
      expect(slots.map((slot) => slot.accepted)).toEqual([7, 1]);
    } finally {
      board.close();
    }
  });

  it("a slot whose worker died is lent with no 'stall', and its replacement ends the loan with no 'recover'", () => {
    const { stalls, slots, workers, events } = guard(80);
    // Worker 100 dies: its slot has no worker until the replacement listens.
    slots[0]!.worker = undefined;
    slots[0]!.life.fire('exit');
    stalls.forget(workers[0]!, 0);
    stalls.watch();
    expect(stalls.lentTo(0)).toBe(workers[1]);
    const replacement = fakeWorker(102);
    slots[0]!.worker = replacement;
    slots[0]!.life.fire('fork');
    slots[0]!.life.fire('listen');
    stalls.heard(replacement);
    stalls.watch();
    expect(stalls.lentTo(0)).toBeUndefined();
    expect(events).toEqual([]);
    expect(slots[0]!.stalls).toBe(0);
  });

  it('with stall protection off (stallThresholdMs: 0) pings nobody', () => {
    const { stalls, slots, sent } = guard(0);
    stalls.waiting(slots[0]!);
    expect(sent).toEqual([]);
  });
});

describe('the pace of the periodic checks', () => {
  const calm = { unsettled: false, waiting: false, quietForMs: 10 * QUIET_AFTER_MS, cells: true };
  it.each([
    { ...calm, unsettled: true, delay: MONITOR_MS },
    { ...calm, unsettled: true, cells: false, delay: MONITOR_MS },
    { ...calm, waiting: true, delay: BUSY_MONITOR_MS },
    { ...calm, waiting: true, cells: false, delay: MONITOR_MS },
    { ...calm, quietForMs: 0, delay: BUSY_MONITOR_MS },
    { ...calm, quietForMs: QUIET_AFTER_MS - 1, cells: false, delay: MONITOR_MS },
    { ...calm, quietForMs: QUIET_AFTER_MS, delay: QUIET_MONITOR_MS },
    { ...calm, quietForMs: QUIET_AFTER_MS, cells: false, delay: QUIET_MONITOR_MS },
  ])('unsettled $unsettled, waiting $waiting, quiet for $quietForMs ms, cells $cells: next check in $delay ms', ({ delay, ...state }) => {
    expect(nextCheckDelay(state)).toBe(delay);
  });
});

describe('what a check makes of a slot with connections waiting', () => {
  const now = 1_000;
  const last = now - BUSY_MONITOR_MS;
  it.each([
    { moved: true, waitedBefore: true, expected: 'accepting' },
    { moved: true, waitedBefore: false, expected: 'accepting' },
    // The cell stood still since the last check, which already saw connections waiting: silent since then.
    { moved: false, waitedBefore: true, expected: last },
    // Nothing waited at the last check: the worker may have been idle, so it is silent from now only.
    { moved: false, waitedBefore: false, expected: now },
    // No cell (not Linux, or the worker could not open it): only a ping can tell.
    { moved: undefined, waitedBefore: true, expected: now },
    { moved: undefined, waitedBefore: false, expected: now },
  ])('cell moved $moved, waited at the last check $waitedBefore: $expected', ({ moved, waitedBefore, expected }) => {
    expect(silentSince(moved, waitedBefore, now, last)).toBe(expected);
  });

  it('never counts from later than now (a last check stamped after it)', () => {
    expect(silentSince(false, true, now, now + 5)).toBe(now);
  });
});
