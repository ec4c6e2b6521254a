// One worker slot's record: its current worker, its state, and the figures kept for it; shared by the supervisor's parts.
import type { Worker } from 'node:cluster';

/** One worker slot: its current worker and the figures kept for it. */
export interface Slot {
  index: number;
  worker: Worker | undefined;
  ready: boolean;
  /** Deaths in a row within minUptimeMs of their start (or before listening); past maxRestarts the slot stops. */
  failures: number;
  /** A crash loop stopped restarting this slot (its socket stays open, lent to live workers). */
  stopped: boolean;
  restartTimer: NodeJS.Timeout | undefined;
  closeTimer: NodeJS.Timeout | undefined;
  accepted: number;
  stalls: number;
  /** When the slot stopped being served by its own worker (monotonic ms), while lent. */
  unservedSince: number | undefined;
  /** Whether a worker ever listened on the slot's socket (before that it has no queue to serve). */
  everListened: boolean;
  queued: number;
  queuedPeak: number;
  /** CPU-local mode: the slot's CPU, and whether its current worker is pinned to it. */
  cpu: number | undefined;
  pinned: boolean;
}

/** A fresh slot (`cpu`: its CPU in CPU-local mode). */
export function newSlot(index: number, cpu: number | undefined): Slot {
  return {
    index,
    worker: undefined,
    ready: false,
    failures: 0,
    stopped: false,
    restartTimer: undefined,
    closeTimer: undefined,
    accepted: 0,
    stalls: 0,
    unservedSince: undefined,
    everListened: false,
    queued: 0,
    queuedPeak: 0,
    cpu,
    pinned: false,
  };
}
