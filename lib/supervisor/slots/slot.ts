// One worker slot's record: its current worker, its lifecycle, and the figures kept for it; shared by the supervisor's parts.
import type { Worker } from 'node:cluster';
import { SlotLifecycle } from './lifecycle';

/** One worker slot: its current worker, its lifecycle (written by WorkerSlots alone) and the figures kept for it. */
export class Slot {
  readonly index: number;
  /** Its state machine: every change of state goes through `life.fire()`. */
  readonly life: SlotLifecycle;
  worker: Worker | undefined = undefined;
  accepted = 0;
  stalls = 0;
  queued = 0;
  queuedPeak = 0;
  /** CPU-local mode: the slot's CPU, and whether its current worker is pinned to it. */
  readonly cpu: number | undefined;
  pinned = false;

  constructor(index: number, cpu: number | undefined) {
    this.index = index;
    this.cpu = cpu;
    this.life = new SlotLifecycle(index);
  }

  /** Its own worker listens on the slot's socket. */
  get ready(): boolean {
    return this.life.state === 'serving';
  }

  /** A crash loop stopped restarting this slot (its socket stays open, lent to live workers). */
  get stopped(): boolean {
    return this.life.state === 'stopped';
  }

  /** Whether a worker ever listened on the slot's socket (before that it has no queue to serve). */
  get everListened(): boolean {
    return this.life.everServed;
  }

  /** Deaths in a row within minUptimeMs of their start (or before listening); past maxRestarts the slot stops. */
  get failures(): number {
    return this.life.failures;
  }
}

/** A fresh slot (`cpu`: its CPU in CPU-local mode). */
export function newSlot(index: number, cpu: number | undefined): Slot {
  return new Slot(index, cpu);
}
