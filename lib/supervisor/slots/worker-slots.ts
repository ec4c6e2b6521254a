// The worker slots' lifecycle: forking a slot's worker (its start watched in start-watch.ts), replacing one
// that dies (with a growing delay; a slot whose workers keep dying young stops: a crash loop),
// replacing every one in a reload (reload.ts: a canary, then waves), draining and stopping one, and
// pinning it in CPU-local mode.
import cluster, { type Worker } from 'node:cluster';
import type { NativeBinding } from '../../binding';
import {
  type BeatMessage,
  type Handlers,
  type KeysRequest,
  type PrimaryMessage,
  type ReleaseMessage,
  type SlotRequest,
  type WorkerMessage,
  dispatch,
  isSupervisorMessage,
  onInternalMessage,
  reviveError,
  supervisorMessage,
} from '../../cluster/ipc';
import { checkWorkerMessage, refusal, warnBadMessage } from '../../cluster/ipc-validate';
import { SLOT_ENV, SUPERVISOR_ENV } from '../../worker/supervised-worker';
import { pinProcess } from './affinity';
import type { ProgressBoard } from './progress-board';
import type { EmitEvent } from '../core/events';
import type { SupervisorSettings } from '../core/settings';
import { PendingListens } from '../core/settle';
import { type Slot, newSlot } from './slot';
import { type StartWatch, watchStart } from './start-watch';
import type { CrashLoopEvent, ForkEvent, ForkFailedEvent, WorkerExit } from '../core/types';

export type { Slot } from './slot';

/** What a worker asks of the supervisor's other parts (checked: see ipc-validate.ts). */
export type SupervisorRequest = SlotRequest | KeysRequest | ReleaseMessage | BeatMessage;

/** What the other parts of the supervisor do when a worker speaks or leaves. */
export interface WorkerSlotHooks {
  emit: EmitEvent;
  /** A worker asks for its slot's socket ('slot') or the TLS ticket keys ('keys-request'), gives a socket back ('release'), or sends its accept counts ('beat', also its answer to a ping). */
  onRequest(worker: Worker, slot: Slot, message: SupervisorRequest): void;
  /** A worker listens (its slot is ready). */
  onListening(worker: Worker, slot: Slot): void;
  /** A worker is gone (`slot`: the one it served; its progress cell is still there to read). */
  onExit(worker: Worker, slot: Slot): void;
  /** Whether the slot still has a socket to wait for a replacement with (a timer closes it otherwise). */
  hasSocket(slot: Slot): boolean;
  /** Closes a slot's socket that was not refilled in time. */
  closeSocket(slot: Slot): void;
}

interface Waiter {
  /** Its start, until it listened, exited or failed. */
  start?: StartWatch;
  /** `destroyed`: connections the worker's drain had to cut at its timeout. */
  drained: (destroyed: number) => void;
}

export { NOT_A_SLOT_MS } from './start-watch';
/**
 * The longest wait before restarting a slot whose workers keep dying: the delay doubles from
 * restartDelayMs up to this. With the default maxRestarts (16), an app that boots and dies at once
 * is stopped within about 20 s.
 */
export const RESTART_DELAY_CAP_MS = 1_000;

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
  // When each worker was forked (monotonic ms): a death within minUptimeMs of it is a crash.
  readonly #forkedAt = new WeakMap<Worker, number>();
  readonly pendingListens = new PendingListens(); // slot sockets asked for, not yet listened on: a start waits for them
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
      [this.#settings.instanceVar]: String(slot.index),
      [SLOT_ENV]: String(slot.index),
      [SUPERVISOR_ENV]: String(process.pid),
    });
    this.#forkedAt.set(worker, performance.now());
    if (progress) this.#board?.bind(worker, progress.cell);
    this.#hooks.emit('fork', {
      slot: slot.index,
      pid: worker.process.pid ?? 0,
      stdout: worker.process.stdout,
      stderr: worker.process.stderr,
    } satisfies ForkEvent);
    this.#slotOf.set(worker, slot.index);
    // Pinned at once, so the threads Node starts while booting inherit the CPU.
    this.#pin(worker, slot);
    const start = watchStart(worker, {
      who: `the worker for slot ${slot.index} (pid ${worker.process.pid})`,
      readyTimeoutMs: this.#settings.readyTimeoutMs,
      register: this.#settings.register,
      stop: () => {
        this.stop(worker).catch(() => undefined);
      },
    });
    this.#waiters.set(worker, { start, drained: () => undefined });
    worker.on('error', (error: NodeJS.ErrnoException) => this.#onWorkerError(worker, slot, error));
    onInternalMessage(worker.process, (message) => this.#onMessage(worker, slot, message));
    worker.on('exit', (code: number | null, signal: string | null) => this.#onExit(worker, slot, code, signal));
    return { worker, listening: start.listening };
  }

  /** Forks the slot's worker and waits until it listens. */
  async start(slot: Slot): Promise<void> {
    slot.life.fire('fork');
    const { worker, listening } = this.fork(slot);
    slot.worker = worker;
    await listening;
  }

  // A worker's message, checked before anything acts on it (its app may send anything): a malformed
  // request gets a coded error reply, anything else malformed a warning (rate-limited), never a throw.
  #onMessage(worker: Worker, slot: Slot, raw: unknown): void {
    // Reservations are setupPrimary's (cluster/setup-primary.ts), which checks them itself.
    if (!isSupervisorMessage(raw) || raw.act === 'reserve') return;
    const checked = checkWorkerMessage(raw, { slots: this.slots.length });
    if (checked.ok) {
      this.pendingListens.heard(worker, checked.message.act);
      dispatch(this.#fromWorker, checked.message, worker, slot);
      return;
    }
    const reply = refusal(checked);
    if (reply) this.send(worker, reply);
    else warnBadMessage(worker, checked, `, slot ${slot.index}`);
  }

  readonly #fromWorker: Handlers<WorkerMessage, [Worker, Slot]> = {
    slot: (message, worker, slot) => this.#hooks.onRequest(worker, slot, message),
    beat: (message, worker, slot) => this.#hooks.onRequest(worker, slot, message),
    'keys-request': (message, worker, slot) => this.#hooks.onRequest(worker, slot, message),
    release: (message, worker, slot) => this.#hooks.onRequest(worker, slot, message),
    listening: (message, worker, slot) => {
      this.#listened.add(worker);
      // Again, now that every thread it starts at boot exists (one started before the first pin).
      this.#pin(worker, slot);
      // The slot's own worker serves; a reload's new worker listens beside it until it is adopted.
      if (slot.worker === worker && slot.life.state === 'starting') slot.life.fire('listen');
      if (message.port > 0) this.#ports.add(message.port);
      this.#waiters.get(worker)?.start?.listened();
      this.#hooks.onListening(worker, slot);
      this.#hooks.emit('listening', { slot: slot.index, pid: worker.process.pid, port: message.port });
    },
    failed: (message, worker, slot) => {
      this.#waiters.get(worker)?.start?.failed(reviveError(message.error, 'listen failed', ` (worker pid ${worker.process.pid}, slot ${slot.index})`));
    },
    drained: (message, worker) => this.#waiters.get(worker)?.drained(message.destroyed),
  };

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

  // A Worker's 'error'. A fork that failed (spawn EMFILE or EAGAIN: the worker has no pid, and no
  // 'exit' follows) is a failed start of its slot, restarted with the back-off; any other (a signal
  // or a send that failed) a warning. Without a listener, either was an exception in the primary.
  #onWorkerError(worker: Worker, slot: Slot, error: NodeJS.ErrnoException): void {
    if (worker.process.pid !== undefined) {
      process.emitWarning(`reuseport: the worker of slot ${slot.index} (pid ${worker.process.pid}): ${error.message}`, { code: 'REUSEPORT_WORKER_ERROR' });
      return;
    }
    // node:cluster drops a worker at its 'exit', which never comes for one that was not spawned.
    if (cluster.workers?.[worker.id] === worker) delete cluster.workers[worker.id];
    this.#hooks.emit('fork-failed', { slot: slot.index, code: error.code, message: error.message } satisfies ForkFailedEvent);
    this.#waiters
      .get(worker)
      ?.start?.forkFailed(
        Object.assign(new Error(`reuseport: the worker for slot ${slot.index} could not be forked: ${error.message}`, { cause: error }), { code: error.code }),
      );
    this.#onExit(worker, slot, null, null, false);
  }

  #onExit(worker: Worker, slot: Slot, code: number | null, signal: string | null, forked = true): void {
    const expected = this.#leaving.has(worker) || this.#closing;
    this.#leaving.delete(worker);
    this.#slotOf.delete(worker);
    this.#waiters.delete(worker);
    this.pendingListens.forget(worker);
    this.#hooks.onExit(worker, slot);
    this.#board?.release(worker);
    const exit: WorkerExit = { slot: slot.index, pid: worker.process.pid ?? 0, code, signal, expected };
    if (forked) this.#hooks.emit('exit', exit);
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    if (expected) return;
    // A crash: the slot's socket stays open in this process, so its queue waits for the replacement.
    // One that comes within minUptimeMs of the start (listened or not), or before the worker
    // listened, is one more in a row; a worker that lived longer starts the count again.
    const lived = performance.now() - (this.#forkedAt.get(worker) ?? 0);
    slot.life.failures = lived < this.#settings.minUptimeMs || !slot.ready || !forked ? slot.life.failures + 1 : 0;
    if (slot.life.failures > this.#settings.maxRestarts) {
      slot.life.fire('give-up');
      this.#announceCrashLoop(slot, exit);
      return;
    }
    slot.life.fire('exit');
    this.#scheduleReplacement(slot);
  }

  // A crash loop: maxRestarts restarts in a row each died within minUptimeMs. The slot is no longer
  // restarted; its socket stays open (stall protection lends it to a live worker, so its share of
  // connections is served and steering stays as it was).
  #announceCrashLoop(slot: Slot, exit: WorkerExit): void {
    const event: CrashLoopEvent = {
      slot: slot.index,
      pid: exit.pid,
      code: exit.code,
      signal: exit.signal,
      restarts: this.#settings.maxRestarts,
      minUptimeMs: this.#settings.minUptimeMs,
      stopped: this.slots.filter((each) => each.stopped).map((each) => each.index),
      serving: this.slots.filter((each) => !each.stopped).length,
    };
    this.#hooks.emit('crash-loop', event);
  }

  // Entering 'restarting': the restart is due after the back-off (a timer of that state), and the
  // slot's socket is closed if no worker of it listens within slotTimeoutMs (a timer that lives
  // through the restarts and ends once the slot serves, stops or closes).
  #scheduleReplacement(slot: Slot): void {
    if (this.#closing) return;
    // With sticky a slot keeps its socket while it has no worker: closing it would reorder the group.
    if (!this.#settings.sticky && this.#hooks.hasSocket(slot) && !slot.life.hasTimer('close-socket')) {
      slot.life.startTimer(
        'close-socket',
        this.#settings.slotTimeoutMs,
        () => {
          this.#hooks.closeSocket(slot);
          this.#hooks.emit('slot-closed', { slot: slot.index });
        },
        ['restarting', 'starting'],
      );
    }
    const delay = Math.min(Math.max(RESTART_DELAY_CAP_MS, this.#settings.restartDelayMs), this.#settings.restartDelayMs * 2 ** Math.max(0, slot.failures - 1));
    slot.life.startTimer('restart', delay, () => {
      if (this.#closing) return;
      this.start(slot).catch(() => {
        // Its exit handler schedules the next try; a hang is stopped by the ready timeout.
      });
    });
  }

  /** Drains a worker (bounded) and makes sure it exits; says what the drain cut and whether it had to be killed. */
  async stop(worker: Worker): Promise<{ cut: number; killed: boolean }> {
    if (worker.isDead()) return { cut: 0, killed: false };
    this.#leaving.add(worker);
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    const drained = new Promise<number>((resolve) => {
      const waiter = this.#waiters.get(worker);
      this.#waiters.set(worker, { ...waiter, drained: resolve });
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
  send(worker: Worker, message: PrimaryMessage, handle?: unknown): void {
    if (!worker.isConnected()) return;
    const ignore = () => undefined;
    if (handle) worker.process.send(message as never, handle as never, {}, ignore);
    else worker.process.send(message as never, ignore);
  }

  /** When a worker was forked (monotonic ms): a death within minUptimeMs of it is a crash. */
  forkedAt(worker: Worker): number | undefined {
    return this.#forkedAt.get(worker);
  }

  /** Stops replacing, then drains and stops every worker; sums what the drains cut, and the pids that had to be killed. */
  /** Whether every slot not stopped by a crash loop (those are lent: degraded, not unready) has its own live worker listening, and one does. */
  get serving(): boolean {
    const running = this.slots.filter((slot) => !slot.stopped);
    return running.length > 0 && running.every((slot) => slot.ready && slot.worker !== undefined && !slot.worker.isDead());
  }

  async stopAll(): Promise<{ cut: number; killed: number[] }> {
    this.#closing = true;
    for (const slot of this.slots) if (slot.life.can('close')) slot.life.fire('close');
    const workers = [...this.#slotOf.keys()];
    const results = await Promise.all(workers.map((worker) => this.stop(worker)));
    return {
      cut: results.reduce((sum, result) => sum + result.cut, 0),
      killed: workers.flatMap((worker, i) => (results[i]?.killed && worker.process.pid ? [worker.process.pid] : [])),
    };
  }
}
