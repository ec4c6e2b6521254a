// The supervisor's periodic checks: the slots' accept-queue depth (TCP_INFO, no worker work) and the
// workers' progress cells (shared memory, no syscall), which together tell stall protection which workers to ask
// whether they answer: only those with connections waiting and a cell that stood still since the last
// look. Every 20 ms while anything is under way (a ping, a loan, a lost worker), every 80 ms while
// connections arrive and every worker's cell moves, every 100 ms when all is quiet (each wake-up costs
// CPU: about 0.3 ms of the primary's under load here; see nextCheckDelay); and every foreignCheckMs
// whether another app's socket joined a port. A check does no more than those reads unless something
// is under way.
import type { Worker } from 'node:cluster';
import { processesByInode } from '../../ports/port-holders';
import type { ProgressBoard } from '../slots/progress-board';
import type { SlotSockets } from '../slots/slot-sockets';
import type { StallGuard } from './stalls';
import type { EmitEvent } from '../core/events';
import type { ForeignSocketEvent } from '../core/types';
import type { Slot } from '../slots/worker-slots';

/** How often the supervisor checks the slots while anything is under way (a ping, a loan, a lost worker), or connections wait and there are no progress cells. */
export const MONITOR_MS = 20;
/**
 * How often it checks them while connections wait and every worker's progress cell moves: a worker
 * that stops is found a check later, and its silence is counted from the check before (when
 * connections were already waiting and its cell stood still: it has accepted nothing since, while
 * connections waited), so a stall is lent out between stallThresholdMs and stallThresholdMs + 80 ms
 * after it began (with the default threshold, 80 ms, at the first check that finds it). Every 40 ms
 * until 2026-12: 80-120 ms, for twice the primary's wake-ups under load, which were most of its cost.
 */
export const BUSY_MONITOR_MS = 80;
/** How often it checks them when all has been quiet for QUIET_AFTER_MS. */
export const QUIET_MONITOR_MS = 100;
/** How long nothing must have waited, nor been under way, before the checks slow down. */
export const QUIET_AFTER_MS = 1_000;

/** What the last check saw, for the pace of the next. */
export interface CheckState {
  /** A ping unanswered, a loan, a slot that lost its worker. */
  unsettled: boolean;
  /** Connections waited in a slot's queue. */
  waiting: boolean;
  /** How long since anything waited or was under way. */
  quietForMs: number;
  /** Whether the workers have progress cells (else only pings tell who answers). */
  cells: boolean;
}

/** The delay to the next check (pure): fast while anything is under way, slower while all progress, slow after a quiet spell. */
export function nextCheckDelay({ unsettled, waiting, quietForMs, cells }: CheckState): number {
  if (unsettled) return MONITOR_MS;
  if (waiting || quietForMs < QUIET_AFTER_MS) return cells ? BUSY_MONITOR_MS : MONITOR_MS;
  return QUIET_MONITOR_MS;
}

/**
 * What a check makes of a slot whose queue has connections waiting (pure): 'accepting' when its
 * worker's progress cell moved since the last check (a worker stores its count on every accept);
 * else since when its worker is known to have accepted nothing: the last check when connections
 * already waited then and the cell stood still since, else now. `moved` is undefined for a worker
 * without a cell.
 */
export function silentSince(moved: boolean | undefined, waitedAtLastCheck: boolean, now: number, lastCheckAt: number): number | 'accepting' {
  if (moved) return 'accepting';
  return moved === false && waitedAtLastCheck ? Math.min(now, lastCheckAt) : now;
}

/** The timers of one supervisor with slot sockets; stopped by stop(). */
export class PeriodicChecks {
  readonly #slots: Slot[];
  readonly #sockets: SlotSockets;
  readonly #stalls: StallGuard;
  readonly #emit: EmitEvent;
  readonly #board: ProgressBoard | undefined;
  readonly #strangersSeen = new Set<string>();
  #monitor: NodeJS.Timeout | undefined;
  #pace = 0;
  readonly #onTimer = () => this.#tick();
  #strangerWatch: NodeJS.Timeout | undefined;
  #running = false;
  /** When something last waited or was under way (monotonic ms). */
  #busyAt = 0;
  /** When the last check ran (monotonic ms). */
  #lastCheckAt = 0;

  /** `board`: the workers' progress cells, when there are any. */
  constructor(slots: Slot[], sockets: SlotSockets, stalls: StallGuard, emit: EmitEvent, board?: ProgressBoard) {
    this.#slots = slots;
    this.#sockets = sockets;
    this.#stalls = stalls;
    this.#emit = emit;
    this.#board = board;
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

  // One timer for the checks' whole life: refreshed (no new timer) while the pace stays the same.
  #schedule(delayMs: number): void {
    if (this.#monitor && this.#pace === delayMs) {
      this.#monitor.refresh();
      return;
    }
    if (this.#monitor) clearTimeout(this.#monitor);
    this.#pace = delayMs;
    this.#monitor = setTimeout(this.#onTimer, delayMs);
    this.#monitor.unref();
  }

  #tick(): void {
    if (!this.#running) return;
    const now = performance.now();
    this.#board?.read();
    const waiting = this.#sampleQueues(now);
    // Pings unanswered, loans, lost workers: only then is there anything to lend or recall.
    const unsettled = this.#stalls.unsettled;
    if (unsettled) this.#stalls.watch();
    if (waiting || unsettled) this.#busyAt = now;
    this.#lastCheckAt = now;
    this.#schedule(nextCheckDelay({ unsettled, waiting, quietForMs: now - this.#busyAt, cells: this.#board !== undefined }));
  }

  // The kernel's accept-queue depth per slot: a worker whose slot has connections waiting is asked
  // whether it answers, unless its progress cell moved since the last check (see silentSince).
  #sampleQueues(now: number): boolean {
    let waiting = false;
    for (const slot of this.#slots) {
      const before = slot.queued;
      const queued = this.#sockets.queued(slot.index);
      slot.queued = queued;
      if (queued > slot.queuedPeak) slot.queuedPeak = queued;
      if (queued === 0) continue;
      waiting = true;
      const { worker } = slot;
      const since = silentSince(worker ? this.#board?.moved(worker) : undefined, before > 0, now, this.#lastCheckAt);
      if (since === 'accepting') this.#stalls.heard(worker as Worker);
      else this.#stalls.waiting(slot, since);
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
