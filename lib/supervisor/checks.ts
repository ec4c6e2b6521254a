// The supervisor's periodic checks: the slots' accept-queue depth (TCP_INFO, no worker work), which
// also tells stall protection which workers to ask whether they answer, and that each slot is served;
// every 20 ms while anything is waiting or under way, every 100 ms when all is quiet (each wake-up of an
// idle process costs CPU); and every foreignCheckMs whether another app's socket joined a port.
import { processesByInode } from '../ports/port-holders';
import type { SlotSockets } from './slot-sockets';
import type { StallGuard } from './stalls';
import type { ForeignSocketEvent } from './types';
import type { Slot } from './worker-slots';

/** How often the supervisor checks the slots while connections wait or a stall is under way. */
export const MONITOR_MS = 20;
/** How often it checks them when all has been quiet for QUIET_AFTER_MS. */
export const QUIET_MONITOR_MS = 100;
/** How long nothing must have waited, nor been under way, before the checks slow down. */
export const QUIET_AFTER_MS = 1_000;

/** The delay to the next check (pure): fast while anything waits or is under way, slow after a quiet spell. */
export function nextCheckDelay(busy: boolean, quietForMs: number): number {
  return busy || quietForMs < QUIET_AFTER_MS ? MONITOR_MS : QUIET_MONITOR_MS;
}

/** The timers of one supervisor with slot sockets; stopped by stop(). */
export class PeriodicChecks {
  readonly #slots: Slot[];
  readonly #sockets: SlotSockets;
  readonly #stalls: StallGuard;
  readonly #emit: (event: string, payload: unknown) => void;
  readonly #strangersSeen = new Set<string>();
  #monitor: NodeJS.Timeout | undefined;
  #strangerWatch: NodeJS.Timeout | undefined;
  #running = false;
  /** When something last waited or was under way (monotonic ms). */
  #busyAt = 0;

  constructor(slots: Slot[], sockets: SlotSockets, stalls: StallGuard, emit: (event: string, payload: unknown) => void) {
    this.#slots = slots;
    this.#sockets = sockets;
    this.#stalls = stalls;
    this.#emit = emit;
  }

  /** Starts the timers (unref'd: they never keep the process alive). */
  start(foreignCheckMs: number): void {
    if (this.#stalls.enabled) {
      this.#running = true;
      this.#busyAt = performance.now();
      this.#schedule(MONITOR_MS);
    }
    this.#strangerWatch = setInterval(() => this.#lookForStrangers(), foreignCheckMs);
    this.#strangerWatch.unref();
  }

  stop(): void {
    this.#running = false;
    if (this.#monitor) clearTimeout(this.#monitor);
    if (this.#strangerWatch) clearInterval(this.#strangerWatch);
    this.#monitor = this.#strangerWatch = undefined;
  }

  #schedule(delayMs: number): void {
    this.#monitor = setTimeout(() => this.#tick(), delayMs);
    this.#monitor.unref();
  }

  #tick(): void {
    if (!this.#running) return;
    const now = performance.now();
    const waiting = this.#sampleQueues(now);
    this.#stalls.watch();
    if (waiting || this.#stalls.unsettled) this.#busyAt = now;
    this.#schedule(nextCheckDelay(waiting || this.#stalls.unsettled, now - this.#busyAt));
  }

  // The kernel's accept-queue depth per slot: a worker whose slot has connections waiting is asked
  // whether it answers. Says whether any slot had connections waiting.
  #sampleQueues(now: number): boolean {
    const depth = this.#sockets.queued();
    let waiting = false;
    for (const slot of this.#slots) {
      slot.queued = depth.get(slot.index) ?? 0;
      slot.queuedPeak = Math.max(slot.queuedPeak, slot.queued);
      if (slot.queued > 0) {
        waiting = true;
        this.#stalls.waiting(slot, now);
      }
    }
    return waiting;
  }

  // A socket of another process that joined one of our ports (it set SO_REUSEPORT itself): said once.
  #lookForStrangers(): void {
    if (!this.#strangerWatch) return;
    const strangers = this.#sockets.strangers().filter((socket) => !this.#strangersSeen.has(socket.inode));
    if (strangers.length === 0) return;
    const owners = processesByInode(new Set(strangers.map((socket) => socket.inode)));
    for (const socket of strangers) {
      this.#strangersSeen.add(socket.inode);
      const steered = this.#sockets.steering().some((state) => state.port === socket.port && state.enabled);
      this.#emit('foreign', { ...socket, processes: owners.get(socket.inode) ?? [], steeredAway: steered } satisfies ForeignSocketEvent);
    }
  }
}
