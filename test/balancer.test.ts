// The supervisor's balancer with a board and workers of its own making: which messages it sends, and
// when it sends none (paused for a reload or an upgrade, a stall under way, a slot without its worker).
import type { Worker } from 'node:cluster';
import { describe, expect, it } from 'vitest';
import type { PrimaryMessage } from '../lib/cluster/ipc';
import { Balancer, SWAP_MS } from '../lib/supervisor/slots/balancer';
import type { CellLoad, ProgressBoard } from '../lib/supervisor/slots/progress-board';
import { type Slot, newSlot } from '../lib/supervisor/slots/slot';

function setup(opens: number[], steering = false) {
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
  const steered: Record<string, number>[] = [];
  const clock = { now: 1000 };
  const steer = (to: number[], weights: ReadonlyMap<number, number>) => {
    expect(to).toEqual(slots.map((slot) => slot.index));
    steered.push(Object.fromEntries(weights));
  };
  const balancer = new Balancer({
    ...(steering ? { steer, now: () => clock.now } : {}),
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
  return { balancer, slots, sent, set, settle: (why: string | undefined) => (unsettled = why), steered, clock };
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

  it('counts the accepts between two looks: a worker whose connections turn over by themselves is not armed, and disarmed once they do', () => {
    const { balancer, sent, set } = setup([3, 1]);
    set(0, { accepted: 10 });
    set(1, { accepted: 10 });
    // The first look knows no accepts before it: a pool of 3 and 1 connections, armed.
    balancer.tick();
    expect(sent).toEqual([{ worker: 0, limit: 2 }]);
    // 3 more connections accepted while 3 are open: they turn over; disarmed.
    set(0, { accepted: 13 });
    balancer.tick();
    expect(sent).toEqual([
      { worker: 0, limit: 2 },
      { worker: 0, limit: null },
    ]);
    // None accepted since: the same 3 connections stay; armed again.
    balancer.tick();
    expect(sent.at(-1)).toEqual({ worker: 0, limit: 2 });
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

describe('Balancer: steering by load', () => {
  it('weighs the slots from the loads, and replaces the program only when the weights change', () => {
    const { balancer, set, steered } = setup([3, 1], true);
    balancer.tick();
    expect(steered).toEqual([{ 0: 24, 1: 40 }]);
    expect(balancer.slotStats(1)).toEqual({ connections: 1, shed: 0, weight: 40 });
    expect(balancer.report().weights).toEqual({ 0: 24, 1: 40 });
    balancer.tick();
    balancer.tick();
    expect(steered).toHaveLength(1);
    set(0, { open: 2 });
    set(1, { open: 2 });
    // Changed, but the last swap is not SWAP_MS old: a change waits, and the balancer keeps looking.
    expect(balancer.tick()).toBe(true);
    expect(steered).toHaveLength(1);
  });

  it('replaces it at most once every SWAP_MS', () => {
    const { balancer, set, steered, clock } = setup([3, 1], true);
    balancer.tick();
    set(0, { open: 2 });
    set(1, { open: 2 });
    clock.now += SWAP_MS - 1;
    balancer.tick();
    expect(steered).toHaveLength(1);
    clock.now += 1;
    balancer.tick();
    expect(steered).toEqual([
      { 0: 24, 1: 40 },
      { 0: 32, 1: 32 },
    ]);
  });

  it("looks less often while every slot's connections turn over by themselves, and at once again when a pool appears", () => {
    const { balancer, set } = setup([16, 16]);
    set(0, { accepted: 0, busy: 0.9 });
    set(1, { accepted: 0, busy: 0.9 });
    // Busy loops: the next look comes after LOAD_MS (tick() says the balance is active).
    expect(balancer.tick()).toBe(true);
    set(0, { open: 20, accepted: 500 });
    set(1, { open: 12, accepted: 500 });
    expect(balancer.tick()).toBe(false);
    // Nothing accepted since the last look: the connections stay (a pool).
    expect(balancer.tick()).toBe(true);
  });

  it('short connections turning over on every slot: their open counts move nothing, however far apart', () => {
    const { balancer, set, steered, clock } = setup([16, 16], true);
    set(0, { accepted: 0 });
    set(1, { accepted: 0 });
    balancer.tick();
    expect(steered).toEqual([{ 0: 32, 1: 32 }]);
    // 500 accepted on each since the last look, 24 and 8 open at the moment of the look.
    set(0, { open: 24, accepted: 500 });
    set(1, { open: 8, accepted: 500 });
    clock.now += 10 * SWAP_MS;
    balancer.tick();
    expect(steered).toHaveLength(1);
    // The same counts with none accepted since (pooled connections): steered.
    clock.now += 10 * SWAP_MS;
    balancer.tick();
    expect(steered.at(-1)).toEqual({ 0: 24, 1: 40 });
  });

  it('a small move of the loads rebuilds nothing (hysteresis)', () => {
    const { balancer, set, steered, clock } = setup([10, 10], true);
    balancer.tick();
    expect(steered).toEqual([{ 0: 32, 1: 32 }]);
    set(0, { open: 11 });
    set(1, { open: 9 });
    clock.now += 10 * SWAP_MS;
    balancer.tick();
    expect(steered).toHaveLength(1);
  });

  it.each([
    ['a reload', (b: Balancer) => b.pause('a reload'), (b: Balancer) => b.resume('a reload')],
    ['an upgrade', (b: Balancer) => b.pause('an upgrade'), (b: Balancer) => b.resume('an upgrade')],
  ])('during %s the program in force stays (no swap), and is weighed again after', (_, pause, resume) => {
    const { balancer, set, steered, clock } = setup([3, 1], true);
    balancer.tick();
    pause(balancer);
    set(0, { open: 2 });
    set(1, { open: 2 });
    clock.now += 10 * SWAP_MS;
    balancer.tick();
    expect(steered).toHaveLength(1);
    resume(balancer);
    balancer.tick();
    expect(steered.at(-1)).toEqual({ 0: 32, 1: 32 });
  });

  it('a slot without its worker (a kill -9) changes nothing: no swap until every slot serves again', () => {
    const { balancer, set, steered, slots, clock } = setup([3, 1], true);
    balancer.tick();
    const worker = slots[0]?.worker;
    (slots[0] as Slot).worker = undefined;
    set(1, { open: 0 });
    clock.now += 10 * SWAP_MS;
    balancer.tick();
    expect(steered).toEqual([{ 0: 24, 1: 40 }]);
    (slots[0] as Slot).worker = worker;
    set(0, { open: 2 });
    set(1, { open: 2 });
    balancer.tick();
    expect(steered.at(-1)).toEqual({ 0: 32, 1: 32 });
  });

  it('without a steer hook (no slot sockets to steer) it weighs nothing', () => {
    const { balancer } = setup([3, 1]);
    balancer.tick();
    expect(balancer.report().weights).toBeUndefined();
    expect(balancer.slotStats(0)).toEqual({ connections: 3, shed: 0 });
  });
});
