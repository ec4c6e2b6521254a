// The worker slots' lifecycle: forking a slot's worker and waiting for it to listen, replacing one
// that dies (with a growing delay), draining and stopping one, and pinning it in CPU-local mode.
import cluster, { type Worker } from 'node:cluster';
import type { NativeBinding } from '../../binding';
import { type SupervisorMessage, isSupervisorMessage, supervisorMessage } from '../../cluster/primary-link';
import { SLOT_ENV, SUPERVISOR_ENV } from '../../worker/supervised-worker';
import { pinProcess } from './affinity';
import type { ProgressBoard } from './progress-board';
import type { SupervisorSettings } from '../core/settings';
import { type Slot, newSlot } from './slot';
import type { WorkerExit } from '../core/types';

export type { Slot } from './slot';

/** What the other parts of the supervisor do when a worker speaks or leaves. */
export interface WorkerSlotHooks {
  emit(event: string, payload: unknown): void;
  /** A worker asks for its slot's socket ('slot') or the TLS ticket keys ('keys-request'), or sends its accept counts ('beat', also its answer to a ping). */
  onRequest(worker: Worker, slot: Slot, message: SupervisorMessage): void;
  /** A worker listens (its slot is ready). */
  onListening(worker: Worker, slot: Slot): void;
  /** A worker is gone. */
  onExit(worker: Worker): void;
  /** Whether the slot still has a socket to wait for a replacement with (a timer closes it otherwise). */
  hasSocket(slot: Slot): boolean;
  /** Closes a slot's socket that was not refilled in time. */
  closeSocket(slot: Slot): void;
}

interface Waiter {
  listening: () => void;
  /** `destroyed`: connections the worker's drain had to cut at its timeout. */
  drained: (destroyed: number) => void;
  failed?: (error: Error) => void;
}

/** The slots and their workers. */
/** How long a worker that listened through node:cluster's primary (without the hook) has to listen on a slot. */
export const NOT_A_SLOT_MS = 2_000;

export class WorkerSlots {
  readonly slots: Slot[];
  readonly #settings: SupervisorSettings;
  readonly #hooks: WorkerSlotHooks;
  readonly #binding: NativeBinding | undefined;
  readonly #board: ProgressBoard | undefined;
  readonly #slotOf = new Map<Worker, number>();
  readonly #leaving = new Set<Worker>();
  // Workers that listened on a slot socket: only they answer a drain.
  readonly #listened = new WeakSet<Worker>();
  readonly #waiters = new Map<Worker, Waiter>();
  readonly #ports = new Set<number>();
  #closing = false;

  /** `cpus`: CPU-local mode's CPU for each slot; `board`: the workers' progress cells, if any. */
  constructor(settings: SupervisorSettings, hooks: WorkerSlotHooks, binding: NativeBinding | undefined, cpus?: number[], board?: ProgressBoard) {
    this.#settings = settings;
    this.#hooks = hooks;
    this.#binding = binding;
    this.#board = board;
    this.slots = Array.from({ length: settings.workers }, (_, index) => newSlot(index, cpus?.[index]));
  }

  /** The ports the workers listen on (port 0 resolved), in the order first seen. */
  get ports(): number[] {
    return [...this.#ports];
  }

  get pids(): number[] {
    return this.slots.flatMap((slot) => (slot.worker?.process.pid ? [slot.worker.process.pid] : []));
  }

  /** Whether the supervisor asked this worker to go. */
  isLeaving(worker: Worker): boolean {
    return this.#leaving.has(worker);
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Forks a worker for the slot; `listening` resolves when it listens, rejects if it exits or times out first. */
  fork(slot: Slot): { worker: Worker; listening: Promise<void> } {
    const progress = this.#board?.assign();
    const worker = cluster.fork({
      ...this.#settings.env,
      ...progress?.env,
      [SLOT_ENV]: String(slot.index),
      [SUPERVISOR_ENV]: String(process.pid),
    });
    if (progress) this.#board?.bind(worker, progress.cell);
    this.#slotOf.set(worker, slot.index);
    // Pinned at once, so the threads Node starts while booting inherit the CPU.
    this.#pin(worker, slot);
    const listening = new Promise<void>((resolve, reject) => {
      const who = `the worker for slot ${slot.index} (pid ${worker.process.pid})`;
      // What the worker listened on through node:cluster's primary instead of a slot, if anything.
      let elsewhere: string | undefined;
      let notSlot: NodeJS.Timeout | undefined;
      const fail = (error: Error) => {
        clearTimeout(timer);
        clearTimeout(notSlot);
        worker.off('exit', exitedEarly);
        worker.off('listening', onClusterListen);
        reject(error);
        this.stop(worker).catch(() => undefined);
      };
      const timer = setTimeout(() => {
        const through = elsewhere ? `; it listened only on ${elsewhere} through node:cluster's primary (a port-0 listen, or one that did not reach the slot socket)` : '';
        fail(new Error(`reuseport: ${who} did not listen on a slot socket within ${this.#settings.readyTimeoutMs} ms${through}`));
      }, this.#settings.readyTimeoutMs);
      // node:cluster's 'listening' also follows every slot listen (the worker sends it after the slot's);
      // one that comes first is a listen the primary serves.
      const onClusterListen = (address: { address?: string | null; port?: number; addressType?: number | string }) => {
        if (address.addressType !== 4 && address.addressType !== 6) return;
        elsewhere ??= `${address.address ?? '::'}:${address.port}`;
        // Without the hook, an app's server.listen(port) never reaches a slot: say so soon.
        if (this.#settings.register || notSlot) return;
        notSlot = setTimeout(() => {
          fail(
            new Error(
              `reuseport: ${who} listened on ${elsewhere} through node:cluster's primary, not on a slot socket, and no slot listen followed ` +
                `within ${NOT_A_SLOT_MS} ms: with register: false (--no-register) its server.listen() is Node's own. Start it with the hook ` +
                '(the default), or call listenReusePort(server, port) in the app.',
            ),
          );
        }, NOT_A_SLOT_MS);
      };
      worker.on('listening', onClusterListen);
      const exitedEarly = (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        clearTimeout(notSlot);
        worker.off('listening', onClusterListen);
        reject(new Error(`reuseport: ${who} exited (${signal ?? code}) before it listened`));
      };
      worker.once('exit', exitedEarly);
      this.#waiters.set(worker, {
        listening: () => {
          clearTimeout(timer);
          clearTimeout(notSlot);
          worker.off('exit', exitedEarly);
          worker.off('listening', onClusterListen);
          resolve();
        },
        failed: fail,
        drained: () => undefined,
      });
    });
    worker.process.on('internalMessage' as 'message', (message: unknown) => this.#onMessage(worker, slot, message));
    worker.on('exit', (code: number | null, signal: string | null) => this.#onExit(worker, slot, code, signal));
    return { worker, listening };
  }

  /** Forks the slot's worker and waits until it listens. */
  async start(slot: Slot): Promise<void> {
    const { worker, listening } = this.fork(slot);
    slot.worker = worker;
    await listening;
  }

  #onMessage(worker: Worker, slot: Slot, raw: unknown): void {
    if (!isSupervisorMessage(raw)) return;
    const message = raw as SupervisorMessage;
    if (message.act === 'slot' || message.act === 'beat' || message.act === 'keys-request') {
      this.#hooks.onRequest(worker, slot, message);
    } else if (message.act === 'listening') {
      this.#listened.add(worker);
      // Again, now that every thread it starts at boot exists (one started before the first pin).
      this.#pin(worker, slot);
      if (slot.worker === worker || !slot.ready) slot.ready = true;
      slot.failures = 0;
      if (slot.closeTimer) clearTimeout(slot.closeTimer);
      slot.closeTimer = undefined;
      if (message.port > 0) this.#ports.add(message.port);
      if (slot.worker === worker) slot.everListened = true;
      this.#waiters.get(worker)?.listening();
      this.#hooks.onListening(worker, slot);
      this.#hooks.emit('listening', { slot: slot.index, pid: worker.process.pid, port: message.port });
    } else if (message.act === 'failed') {
      const { message: text, ...fields } = message.error;
      const error = Object.assign(new Error(`${text} (worker pid ${worker.process.pid}, slot ${slot.index})`), fields);
      this.#waiters.get(worker)?.failed?.(error);
    } else if (message.act === 'drained') {
      this.#waiters.get(worker)?.drained(message.destroyed);
    }
  }

  // CPU-local mode: pins every thread of the slot's worker to the slot's CPU; a failure (a cpuset
  // that no longer has the CPU, a sandbox that forbids it) is a warning, not a crash.
  #pin(worker: Worker, slot: Slot): void {
    const pid = worker.process.pid;
    if (slot.cpu === undefined || !this.#binding || !pid) return;
    try {
      pinProcess(this.#binding, pid, slot.cpu);
      slot.pinned = true;
    } catch (error) {
      slot.pinned = false;
      process.emitWarning(`reuseport: could not pin the worker of slot ${slot.index} (pid ${pid}) to CPU ${slot.cpu}: ${(error as Error).message}`, {
        code: 'REUSEPORT_PIN_FAILED',
      });
    }
  }

  #onExit(worker: Worker, slot: Slot, code: number | null, signal: string | null): void {
    const expected = this.#leaving.has(worker) || this.#closing;
    this.#leaving.delete(worker);
    this.#slotOf.delete(worker);
    this.#waiters.delete(worker);
    this.#board?.release(worker);
    this.#hooks.onExit(worker);
    const exit: WorkerExit = { slot: slot.index, pid: worker.process.pid ?? 0, code, signal, expected };
    this.#hooks.emit('exit', exit);
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    if (expected) return;
    // A crash: the slot's socket stays open in this process, so its queue waits for the replacement.
    if (!slot.ready) slot.failures += 1;
    slot.ready = false;
    this.#scheduleReplacement(slot);
  }

  #scheduleReplacement(slot: Slot): void {
    if (this.#closing || slot.restartTimer) return;
    // With sticky a slot keeps its socket while it has no worker: closing it would reorder the group.
    if (!this.#settings.sticky && this.#hooks.hasSocket(slot) && !slot.closeTimer) {
      slot.closeTimer = setTimeout(() => {
        slot.closeTimer = undefined;
        if (slot.ready) return;
        this.#hooks.closeSocket(slot);
        this.#hooks.emit('slot-closed', { slot: slot.index });
      }, this.#settings.slotTimeoutMs);
    }
    const delay = Math.min(5_000, this.#settings.restartDelayMs * 2 ** Math.max(0, slot.failures - 1));
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (this.#closing) return;
      this.start(slot).catch(() => {
        // Its exit handler schedules the next try; a hang is stopped by the ready timeout.
      });
    }, delay);
  }

  /** Drains a worker (bounded) and makes sure it exits; says what the drain cut and whether it had to be killed. */
  async stop(worker: Worker): Promise<{ cut: number; killed: boolean }> {
    if (worker.isDead()) return { cut: 0, killed: false };
    this.#leaving.add(worker);
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    const drained = new Promise<number>((resolve) => {
      const waiter = this.#waiters.get(worker);
      this.#waiters.set(worker, { ...waiter, listening: waiter?.listening ?? (() => undefined), drained: resolve });
    });
    this.send(worker, supervisorMessage({ act: 'drain', timeoutMs: this.#settings.drainTimeoutMs }));
    const bound = <T>(ms: number, value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms).unref());
    // A worker that never listened on a slot has nothing to drain and no one to answer: stopped at once.
    const cut = this.#listened.has(worker) ? await Promise.race([drained, exited.then(() => 0), bound(this.#settings.drainTimeoutMs + 2_000, -1)]) : 0;
    if (!worker.isDead()) worker.process.kill('SIGTERM');
    await Promise.race([exited, bound(5_000, undefined)]);
    const killed = !worker.isDead();
    if (killed) worker.process.kill('SIGKILL');
    await exited;
    // -1: it never said it had drained (a stalled worker): whatever it held was cut with it.
    return { cut: Math.max(0, cut), killed: killed || cut === -1 };
  }

  /** Sends over IPC; a worker that is gone cannot be told anything, and its exit is handled elsewhere. */
  send(worker: Worker, message: SupervisorMessage, handle?: unknown): void {
    if (!worker.isConnected()) return;
    const ignore = () => undefined;
    if (handle) worker.process.send(message as never, handle as never, {}, ignore);
    else worker.process.send(message as never, ignore);
  }

  /** Replaces every worker, one slot at a time: the new one listens before the old one drains. */
  async replaceAll(): Promise<void> {
    for (const slot of this.slots) {
      if (this.#closing) return;
      const old = slot.worker;
      const { worker, listening } = this.fork(slot);
      await listening;
      slot.worker = worker;
      slot.ready = true;
      if (old) await this.stop(old);
    }
  }

  /** Stops replacing, then drains and stops every worker; sums what the drains cut, and the pids that had to be killed. */
  async stopAll(): Promise<{ cut: number; killed: number[] }> {
    this.#closing = true;
    for (const slot of this.slots) {
      if (slot.restartTimer) clearTimeout(slot.restartTimer);
      if (slot.closeTimer) clearTimeout(slot.closeTimer);
      slot.restartTimer = slot.closeTimer = undefined;
    }
    const workers = [...this.#slotOf.keys()];
    const results = await Promise.all(workers.map((worker) => this.stop(worker)));
    return {
      cut: results.reduce((sum, result) => sum + result.cut, 0),
      killed: workers.flatMap((worker, i) => (results[i]?.killed && worker.process.pid ? [worker.process.pid] : [])),
    };
  }
}
