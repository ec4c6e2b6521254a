// The supervisor's balancer with a board and workers of its own making: which messages it sends, and
// when it sends none (paused for a reload or an upgrade, a stall under way, a slot without its worker).
import type { Worker } from 'node:cluster';
import { describe, expect, it } from 'vitest';
import type { PrimaryMessage } from '../lib/cluster/ipc';
import { Balancer } from '../lib/supervisor/slots/balancer';
import type { CellLoad, ProgressBoard } from '../lib/supervisor/slots/progress-board';
import { type Slot, newSlot } from '../lib/supervisor/slots/slot';

function setup(opens: number[]) {
  const workers = opens.map((_, id) => ({ id, isDead: () => false }) as unknown as Worker);
  const slots: Slot[] = opens.map((_, index) => {
    const slot = newSlot(index, undefined);
    slot.worker = workers[index];
    slot.life.fire('fork');
    slot.life.fire('listen');
    return slot;
  });
  const loads = new Map<Worker, CellLoad>(workers.map((worker, i) => [worker, { open: opens[i] ?? 0, shed: 0, busy: 0.1 }]));
  const board = { loads: () => loads } as unknown as ProgressBoard;
  const sent: { worker: number; limit: number | null }[] = [];
  let unsettled: string | undefined;
  const balancer = new Balancer({
    slots,
    board,
    send: (worker, message: PrimaryMessage) => {
      if (message.act === 'balance') sent.push({ worker: worker.id, limit: message.limit });
    },
    isLeaving: () => false,
    unsettled: () => unsettled,
  });
  const set = (worker: number, load: Partial<CellLoad>) =>
    loads.set(workers[worker] as Worker, { ...(loads.get(workers[worker] as Worker) as CellLoad), ...load });
  return { balancer, slots, sent, set, settle: (why: string | undefined) => (unsettled = why) };
}

describe('Balancer', () => {
  it('tells a worker over its share its limit once, and that it may stop once it is at its share', () => {
    const { balancer, sent, set } = setup([3, 1]);
    balancer.tick();
    balancer.tick();
    expect(sent).toEqual([{ worker: 0, limit: 2 }]);
    set(0, { open: 2, shed: 1 });
    set(1, { open: 2 });
    balancer.tick();
    expect(sent).toEqual([
      { worker: 0, limit: 2 },
      { worker: 0, limit: null },
    ]);
    expect(balancer.slotStats(0)).toEqual({ connections: 2, shed: 1 });
    expect(balancer.report()).toEqual({ enabled: true, spread: 0, shed: 1 });
  });

  it.each([
    ['a reload', (b: Balancer) => b.pause('a reload'), (b: Balancer) => b.resume('a reload')],
    ['an upgrade', (b: Balancer) => b.pause('an upgrade'), (b: Balancer) => b.resume('an upgrade')],
  ])('during %s: the armed worker is told to stop, and none is armed until it ends', (_, pause, resume) => {
    const { balancer, sent } = setup([4, 0]);
    balancer.tick();
    expect(sent).toEqual([{ worker: 0, limit: 2 }]);
    pause(balancer);
    expect(sent.at(-1)).toEqual({ worker: 0, limit: null });
    balancer.tick();
    expect(sent).toHaveLength(2);
    expect(balancer.report().paused).toBeDefined();
    resume(balancer);
    balancer.tick();
    expect(sent.at(-1)).toEqual({ worker: 0, limit: 2 });
  });

  it('while a stall is handled (a borrower carries two slots), nothing is armed', () => {
    const { balancer, sent, settle } = setup([4, 0]);
    settle('a stall is being handled');
    balancer.tick();
    expect(sent).toEqual([]);
    settle(undefined);
    balancer.tick();
    expect(sent).toEqual([{ worker: 0, limit: 2 }]);
  });

  it('while a slot has no worker (dead, being replaced), nothing is armed', () => {
    const { balancer, sent, slots } = setup([4, 0]);
    const worker = slots[1]?.worker;
    (slots[1] as Slot).worker = undefined;
    balancer.tick();
    expect(sent).toEqual([]);
    (slots[1] as Slot).worker = worker;
    balancer.tick();
    expect(sent).toEqual([{ worker: 0, limit: 2 }]);
    balancer.stop();
    expect(sent.at(-1)).toEqual({ worker: 0, limit: null });
  });
});
