// The supervisor's periodic checks: every 20 ms that each slot is served (stall protection), every
// 100 ms the slots' accept-queue depth, and every foreignCheckMs whether another app's socket joined a port.
import { processesByInode } from '../ports/port-holders';
import type { SlotSockets } from './slot-sockets';
import type { StallGuard } from './stalls';
import type { ForeignSocketEvent } from './types';
import type { Slot } from './worker-slots';

/** How often the supervisor checks that every slot is served. */
const MONITOR_MS = 20;
/** Accept queues are sampled every this many checks (100 ms). */
const QUEUE_SAMPLE_TICKS = 5;

/** The timers of one supervisor with slot sockets; stopped by stop(). */
export class PeriodicChecks {
  readonly #slots: Slot[];
  readonly #sockets: SlotSockets;
  readonly #stalls: StallGuard;
  readonly #emit: (event: string, payload: unknown) => void;
  readonly #strangersSeen = new Set<string>();
  #monitor: NodeJS.Timeout | undefined;
  #strangerWatch: NodeJS.Timeout | undefined;
  #ticks = 0;

  constructor(slots: Slot[], sockets: SlotSockets, stalls: StallGuard, emit: (event: string, payload: unknown) => void) {
    this.#slots = slots;
    this.#sockets = sockets;
    this.#stalls = stalls;
    this.#emit = emit;
  }

  /** Starts the timers (unref'd: they never keep the process alive). */
  start(foreignCheckMs: number): void {
    if (this.#stalls.enabled) {
      this.#monitor = setInterval(() => this.#tick(), MONITOR_MS);
      this.#monitor.unref();
    }
    this.#strangerWatch = setInterval(() => this.#lookForStrangers(), foreignCheckMs);
    this.#strangerWatch.unref();
  }

  stop(): void {
    if (this.#monitor) clearInterval(this.#monitor);
    if (this.#strangerWatch) clearInterval(this.#strangerWatch);
    this.#monitor = this.#strangerWatch = undefined;
  }

  #tick(): void {
    this.#ticks += 1;
    if (this.#ticks % QUEUE_SAMPLE_TICKS === 0) this.#sampleQueues();
    this.#stalls.watch();
  }

  // The kernel's accept-queue depth per slot: a slot that is not being served shows it first.
  #sampleQueues(): void {
    const depth = this.#sockets.queued();
    for (const slot of this.#slots) {
      slot.queued = depth.get(slot.index) ?? 0;
      slot.queuedPeak = Math.max(slot.queuedPeak, slot.queued);
    }
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
