// Stall protection: a worker whose slot has connections waiting is asked whether it answers (a ping,
// answered from its event loop), and one that does not answer within the threshold (stalled, dead,
// starting, draining) has its slot's socket lent to a live worker until its own answers again; a worker
// silent for too long is replaced. Nothing is closed, so nothing queued is lost. At rest nothing is sent.
import type { Worker } from 'node:cluster';
import { supervisorMessage } from '../../cluster/ipc';
import type { EmitEvent } from '../core/events';
import type { SupervisorSettings } from '../core/settings';
import type { ProgressBoard } from '../slots/progress-board';
import type { SlotSockets } from '../slots/slot-sockets';
import type { StallEvent } from '../core/types';
import type { Slot, WorkerSlots } from '../slots/worker-slots';

/** Pings, loans and stall events for the slots of one supervisor. */
export class StallGuard {
  readonly #settings: SupervisorSettings;
  readonly #workers: WorkerSlots;
  readonly #sockets: SlotSockets | undefined;
  /** Lending runs only with slot sockets and a threshold; accept counts are added up either way. */
  readonly enabled: boolean;
  readonly #emit: EmitEvent;
  /** Workers asked whether they answer, and not answered yet: when the ping was sent (monotonic ms). */
  readonly #pingedAt = new Map<Worker, number>();
  readonly #lastAccepted = new Map<Worker, Record<string, number>>();
  /** Slot -> the worker it is lent to. */
  readonly #loans = new Map<number, Worker>();
  readonly #condemned = new WeakSet<Worker>();
  /** Slots whose loan began with a 'stall' event: only they end with a 'recover' one. */
  readonly #stalled = new Set<number>();
  /** Slot -> since when it has not been served by its own worker (monotonic ms), while lent. */
  readonly #unservedSince = new Map<number, number>();
  // The deploys under way ('a reload', 'an upgrade'): a stall then says so.
  readonly #deploys = new Set<string>();
  #stallLimit: number;
  readonly #board: ProgressBoard | undefined;

  /** `board`: the workers' progress cells, where their own slots' accepts are counted, when there are any. */
  constructor(settings: SupervisorSettings, workers: WorkerSlots, sockets: SlotSockets | undefined, emit: EmitEvent, board?: ProgressBoard) {
    this.#board = board;
    this.#settings = settings;
    this.#workers = workers;
    this.#sockets = sockets;
    this.enabled = sockets !== undefined && settings.stallThresholdMs > 0;
    this.#emit = emit;
    this.#stallLimit = settings.stallThresholdMs;
  }

  /** A reload or an upgrade begins (`reason`: 'a reload', 'an upgrade'): a stall until resume(reason) is one during it. */
  pause(reason: string): void {
    this.#deploys.add(reason);
  }

  resume(reason: string): void {
    this.#deploys.delete(reason);
  }

  /** A worker spoke (its counts, an answer to a ping, its first listen): it answers now. */
  heard(worker: Worker): void {
    this.#pingedAt.delete(worker);
  }

  /**
   * The slot has connections waiting: its worker is asked to answer, unless it was already asked. A
   * live worker answers within a turn of its event loop; a stalled one stays silent. `silentSince`:
   * since when it is known to have done nothing (now, unless its progress cell says earlier).
   */
  waiting(slot: Slot, silentSince = performance.now()): void {
    const { worker } = slot;
    if (!this.enabled || !worker || !slot.ready || this.#pingedAt.has(worker) || worker.isDead() || !worker.isConnected()) return;
    this.#pingedAt.set(worker, silentSince);
    this.#workers.send(worker, supervisorMessage({ act: 'ping' }));
  }

  /** Whether anything is under way: a ping not answered, a loan, or a slot that lost its worker. */
  get unsettled(): boolean {
    if (this.#pingedAt.size > 0 || this.#loans.size > 0) return true;
    for (const slot of this.#workers.slots) if (slot.everListened && !slot.ready) return true;
    return false;
  }

  // How long the worker has not answered a ping (0: it was not asked, or it answered).
  #silence(worker: Worker, now: number): number {
    const pinged = this.#pingedAt.get(worker);
    return pinged === undefined ? 0 : now - pinged;
  }

  /**
   * A worker's accept counts (per slot it served, since it started): it answers, and they are added
   * up. A worker with a progress cell counts its own slot's accepts there (see tally), and its beats
   * carry only the slots lent to it.
   */
  beat(worker: Worker, accepted: Record<string, number>): void {
    this.heard(worker);
    for (const [index, total] of Object.entries(accepted)) this.#add(worker, index, total);
  }

  /** Adds what the workers' progress cells counted of their own slots since the last tally (before stats are read). */
  tally(): void {
    if (!this.#board) return;
    for (const slot of this.#workers.slots) if (slot.worker) this.#tallyCell(slot.worker, slot.index);
  }

  #tallyCell(worker: Worker, slot: number): void {
    const total = this.#board?.accepted(worker);
    if (total !== undefined) this.#add(worker, String(slot), total);
  }

  // Counts only grow: a smaller one (a worker that says less than before) adds nothing, and the
  // larger is kept, so a counter never goes down.
  #add(worker: Worker, index: string, total: number): void {
    const last = this.#lastAccepted.get(worker) ?? {};
    const target = this.#workers.slots[Number(index)];
    const added = total - (last[index] ?? 0);
    if (target && added > 0) target.accepted += added;
    last[index] = Math.max(total, last[index] ?? 0);
    this.#lastAccepted.set(worker, last);
  }

  /** A worker is gone (it served `slot`): its last count is added, what it borrowed goes back, and its slot (and those) are lent at once. */
  forget(worker: Worker, slot: number): void {
    this.#tallyCell(worker, slot);
    this.#pingedAt.delete(worker);
    this.#lastAccepted.delete(worker);
    for (const [index, borrower] of this.#loans) if (borrower === worker) this.#loans.delete(index);
    if (this.enabled) setImmediate(() => this.watch());
  }

  /** The worker serving `slot` for another right now, if any. */
  lentTo(slot: number): Worker | undefined {
    return this.#loans.get(slot);
  }

  // Whether a worker answers: alive, connected, not leaving, and not silent on a ping for too long.
  #answers(worker: Worker | undefined, now: number): worker is Worker {
    if (!worker || worker.isDead() || !worker.isConnected() || this.#workers.isLeaving(worker)) return false;
    return this.#silence(worker, now) < this.#stallLimit;
  }

  // How long a silence counts as a stall right now: the threshold, or 4 times the typical silence
  // of the workers when they are all slow (a saturated machine delays every answer alike, and
  // moving load off a busy worker onto equally busy ones would only make it swing).
  #updateStallLimit(now: number): void {
    const silences = this.#workers.slots
      .flatMap((slot) => (slot.ready && slot.worker && !slot.worker.isDead() ? [this.#silence(slot.worker, now)] : []))
      .sort((a, b) => a - b);
    const typical = silences[Math.floor((silences.length - 1) / 2)] ?? 0;
    this.#stallLimit = Math.max(this.#settings.stallThresholdMs, 4 * typical);
  }

  /** Lends every slot whose own worker cannot accept to a live worker; recalls loans whose slot's worker is back. */
  watch(): void {
    if (!this.enabled || !this.#sockets || this.#workers.closing) return;
    const sockets = this.#sockets;
    const now = performance.now();
    this.#updateStallLimit(now);
    for (const slot of this.#workers.slots) {
      if (!slot.everListened || !sockets.has(slot.index)) continue;
      const borrower = this.#loans.get(slot.index);
      if (slot.ready && this.#answers(slot.worker, now)) {
        if (borrower) this.#recall(slot, borrower, now);
        continue;
      }
      this.#replaceIfHopeless(slot, now);
      if (borrower && this.#answers(borrower, now)) continue;
      if (borrower) this.#recall(slot, borrower, now);
      const next = this.#pickBorrower(slot, now);
      if (next) this.#lend(slot, next, now);
    }
  }

  // A worker stalled for longer than stallReplaceMs is not coming back soon enough: replace it.
  #replaceIfHopeless(slot: Slot, now: number): void {
    const { worker } = slot;
    const limit = this.#settings.stallReplaceMs;
    if (!limit || !worker || !slot.ready || worker.isDead() || this.#workers.isLeaving(worker) || this.#condemned.has(worker)) return;
    const silentFor = this.#silence(worker, now);
    if (silentFor < limit) return;
    this.#emit('stall-replace', { slot: slot.index, pid: worker.process.pid, stalledMs: Math.round(silentFor) } satisfies StallEvent);
    this.#condemned.add(worker);
    worker.process.kill('SIGKILL');
  }

  // The live worker that serves the most of the slot's ports (a worker is lent only sockets of ports it
  // listens on), of those the one with the fewest loans; none where no live worker serves any of them.
  #pickBorrower(slot: Slot, now: number): Slot | undefined {
    let best: Slot | undefined;
    let most = 0;
    let fewest = Number.POSITIVE_INFINITY;
    for (const other of this.#workers.slots) {
      if (other === slot || !other.ready || !this.#answers(other.worker, now)) continue;
      const serves = this.#sockets?.lendable(slot.index, other.index).length ?? 0;
      const loans = [...this.#loans.values()].filter((w) => w === other.worker).length;
      if (serves > most || (serves === most && serves > 0 && loans < fewest)) {
        most = serves;
        fewest = loans;
        best = other;
      }
    }
    return best;
  }

  #lend(slot: Slot, to: Slot, now: number): void {
    const borrower = to.worker;
    if (!borrower) return;
    for (const socket of this.#sockets?.lendable(slot.index, to.index) ?? []) {
      this.#workers.send(borrower, supervisorMessage({ act: 'lend', slot: slot.index, port: socket.port }), socket.handle);
    }
    this.#loans.set(slot.index, borrower);
    if (!this.#unservedSince.has(slot.index)) {
      this.#unservedSince.set(slot.index, now);
      // A slot whose worker was listening and stopped answering is a stall; dead or starting is not.
      if (slot.ready && slot.worker && !slot.worker.isDead() && !this.#workers.isLeaving(slot.worker)) {
        slot.stalls += 1;
        this.#stalled.add(slot.index);
        const during = [...this.#deploys][0];
        this.#emit('stall', {
          slot: slot.index,
          pid: slot.worker.process.pid,
          lentTo: borrower.process.pid,
          ...(during ? { during } : {}),
        } satisfies StallEvent);
      }
    }
  }

  #recall(slot: Slot, borrower: Worker, now: number): void {
    this.#workers.send(borrower, supervisorMessage({ act: 'recall', slot: slot.index }));
    this.#loans.delete(slot.index);
    const since = this.#unservedSince.get(slot.index);
    if (since !== undefined && slot.ready && this.#answers(slot.worker, now)) {
      const stalledMs = Math.round(now - since);
      this.#unservedSince.delete(slot.index);
      // A slot lent while its worker was dead or starting is served again by a new worker: that
      // is told by 'exit' and 'listening', not as the end of a stall that never was.
      if (this.#stalled.delete(slot.index)) this.#emit('recover', { slot: slot.index, pid: slot.worker.process.pid, stalledMs } satisfies StallEvent);
    }
  }
}
