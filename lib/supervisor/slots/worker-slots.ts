// The worker slots' lifecycle: forking a slot's worker and waiting for it to listen, replacing one
// that dies (with a growing delay; a slot whose workers keep dying young stops: a crash loop),
// replacing every one in a reload (old ones draining side by side), draining and stopping one, and
// pinning it in CPU-local mode.
import cluster, { type Worker } from 'node:cluster';
import type { NativeBinding } from '../../binding';
import { type BeatMessage, type Handlers, type KeysRequest, type PrimaryMessage, type ReleaseMessage, type SlotRequest, type WorkerMessage, dispatch, isSupervisorMessage, onInternalMessage, reviveError, supervisorMessage } from '../../cluster/ipc';
import { checkWorkerMessage, refusal, warnBadMessage } from '../../cluster/ipc-validate';
import { SLOT_ENV, SUPERVISOR_ENV } from '../../worker/supervised-worker';
import { pinProcess } from './affinity';
import type { ProgressBoard } from './progress-board';
import type { EmitEvent } from '../core/events';
import type { SupervisorSettings } from '../core/settings';
import { type Slot, newSlot } from './slot';
import type { CrashLoopEvent, ForkEvent, ForkFailedEvent, ReloadFailure, ReloadResult, WorkerExit } from '../core/types';

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
  /** The fork itself failed: no process, and no 'exit' to come. */
  forkFailed?: (error: Error) => void;
}

/** The slots and their workers. */
/** How long a worker that listened through node:cluster's primary (without the hook) has to listen on a slot. */
export const NOT_A_SLOT_MS = 2_000;
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
    this.#forkedAt.set(worker, performance.now());
    if (progress) this.#board?.bind(worker, progress.cell);
    this.#hooks.emit('fork', { slot: slot.index, pid: worker.process.pid ?? 0, stdout: worker.process.stdout, stderr: worker.process.stderr } satisfies ForkEvent);
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
        clearTimeout(failedGrace);
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
      // A listen that failed: the app may handle it and listen again (get-port probes address after
      // address and takes EINVAL and EADDRNOTAVAIL in its stride), so the start fails with it only if
      // no slot listen follows soon, or the worker exits first.
      let failure: Error | undefined;
      let failedGrace: NodeJS.Timeout | undefined;
      const failed = (error: Error) => {
        failure = error;
        clearTimeout(failedGrace);
        failedGrace = setTimeout(() => fail(error), NOT_A_SLOT_MS);
      };
      const exitedEarly = (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        clearTimeout(notSlot);
        clearTimeout(failedGrace);
        worker.off('listening', onClusterListen);
        reject(failure ?? new Error(`reuseport: ${who} exited (${signal ?? code}) before it listened`));
      };
      worker.once('exit', exitedEarly);
      this.#waiters.set(worker, {
        listening: () => {
          clearTimeout(timer);
          clearTimeout(notSlot);
          clearTimeout(failedGrace);
          worker.off('exit', exitedEarly);
          worker.off('listening', onClusterListen);
          // A listen that fails later (another server of the app) is the app's to handle, not a failed start.
          const waiter = this.#waiters.get(worker);
          if (waiter) waiter.failed = undefined;
          resolve();
        },
        failed,
        forkFailed: (error) => {
          clearTimeout(timer);
          clearTimeout(notSlot);
          clearTimeout(failedGrace);
          worker.off('exit', exitedEarly);
          worker.off('listening', onClusterListen);
          reject(error);
        },
        drained: () => undefined,
      });
    });
    worker.on('error', (error: NodeJS.ErrnoException) => this.#onWorkerError(worker, slot, error));
    onInternalMessage(worker.process, (message) => this.#onMessage(worker, slot, message));
    worker.on('exit', (code: number | null, signal: string | null) => this.#onExit(worker, slot, code, signal));
    return { worker, listening };
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
      this.#waiters.get(worker)?.listening();
      this.#hooks.onListening(worker, slot);
      this.#hooks.emit('listening', { slot: slot.index, pid: worker.process.pid, port: message.port });
    },
    failed: (message, worker, slot) => {
      this.#waiters.get(worker)?.failed?.(reviveError(message.error, 'listen failed', ` (worker pid ${worker.process.pid}, slot ${slot.index})`));
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
    this.#waiters.get(worker)?.forkFailed?.(Object.assign(new Error(`reuseport: the worker for slot ${slot.index} could not be forked: ${error.message}`, { cause: error }), { code: error.code }));
    this.#onExit(worker, slot, null, null, false);
  }

  #onExit(worker: Worker, slot: Slot, code: number | null, signal: string | null, forked = true): void {
    const expected = this.#leaving.has(worker) || this.#closing;
    this.#leaving.delete(worker);
    this.#slotOf.delete(worker);
    this.#waiters.delete(worker);
    this.#board?.release(worker);
    this.#hooks.onExit(worker);
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
  send(worker: Worker, message: PrimaryMessage, handle?: unknown): void {
    if (!worker.isConnected()) return;
    const ignore = () => undefined;
    if (handle) worker.process.send(message as never, handle as never, {}, ignore);
    else worker.process.send(message as never, ignore);
  }

  /**
   * Replaces every worker: a canary first (slot 0's new worker listens and lives minUptimeMs from its
   * start before its old one drains), then the other slots in waves, every new worker of a wave
   * started at once and each living minUptimeMs before its own old worker drains; so a reload takes
   * about two minUptimeMs plus start-up, whatever the count. maxDraining caps the extra processes
   * alive at once (new workers waiting plus old ones draining), so it caps a wave: 1 is one slot at
   * a time. A new worker that does not start or dies within minUptimeMs leaves its slot's old worker
   * serving and stops the reload after its wave (ERR_REUSEPORT_RELOAD_FAILED, naming the slots); the
   * wave's other slots keep their new workers. Resolves once every old worker is gone, with what
   * their drains cut.
   */
  async replaceAll(): Promise<ReloadResult> {
    const drains: Promise<{ pid: number; cut: number; killed: boolean }>[] = [];
    const draining = new Set<Promise<unknown>>();
    const finish = async (): Promise<ReloadResult> => {
      const results = await Promise.all(drains);
      return {
        pids: this.pids,
        cut: results.reduce((sum, result) => sum + result.cut, 0),
        killed: results.flatMap((result) => (result.killed ? [result.pid] : [])),
      };
    };
    const drainOld = (old: Worker) => {
      const pid = old.process.pid ?? 0;
      const drain = this.stop(old).then((result) => ({ pid, ...result }));
      const tracked = drain.finally(() => draining.delete(tracked));
      draining.add(tracked);
      drains.push(drain);
    };
    let next = 0;
    while (next < this.slots.length && !this.#closing) {
      while (draining.size >= this.#settings.maxDraining) await Promise.race(draining);
      const size = reloadWaveSize({ next, slots: this.slots.length, maxDraining: this.#settings.maxDraining, draining: draining.size });
      const wave = this.slots.slice(next, next + size);
      next += size;
      const outcomes = await Promise.all(wave.map((slot) => this.#startReplacement(slot)));
      const failures: Error[] = [];
      outcomes.forEach((outcome, i) => {
        const slot = wave[i] as Slot;
        if (outcome instanceof Error) {
          failures.push(asReloadFailure(outcome, slot));
          return;
        }
        // The supervisor began to close meanwhile: the new worker goes with the others.
        if (!slot.life.can('adopt')) {
          this.stop(outcome).catch(() => undefined);
          return;
        }
        // Adopted: the slot serves with it, a stopped one restarts again (its crash count from zero).
        const old = slot.worker;
        slot.worker = outcome;
        slot.life.fire('adopt');
        if (old) drainOld(old);
      });
      if (failures.length > 0) {
        // The drains under way still end (they are not awaited by a failed reload).
        void finish();
        throw waveFailure(failures, wave, next < this.slots.length);
      }
    }
    return finish();
  }

  // One slot's new worker in a reload: forked, listening, and alive minUptimeMs from its start; or the error why not.
  async #startReplacement(slot: Slot): Promise<Worker | Error> {
    try {
      const forked = this.fork(slot);
      await forked.listening;
      await this.#livesMinUptime(forked.worker, slot);
      return forked.worker;
    } catch (error) {
      return error as Error;
    }
  }

  // A reload's new worker must live minUptimeMs from its start before the old one drains (it throws a ReloadFailure).
  async #livesMinUptime(worker: Worker, slot: Slot): Promise<void> {
    const left = this.#settings.minUptimeMs - (performance.now() - (this.#forkedAt.get(worker) ?? 0));
    if (left > 0 && !worker.isDead()) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done() {
          clearTimeout(timer);
          worker.off('exit', done);
          resolve();
        }
        worker.once('exit', done);
      });
    }
    if (!worker.isDead()) return;
    const { exitCode, signalCode } = worker.process;
    const error = new Error(
      `reuseport: the reload stopped at slot ${slot.index}: its new worker (pid ${worker.process.pid}) exited (${signalCode ?? exitCode}) ` +
        `within minUptimeMs (${this.#settings.minUptimeMs} ms) of its start; slot ${slot.index} and the slots after it keep their old workers`,
    );
    throw Object.assign(error, { code: 'ERR_REUSEPORT_RELOAD_FAILED', slot: slot.index, slots: [slot.index], pid: worker.process.pid }) as ReloadFailure;
  }

  /** Stops replacing, then drains and stops every worker; sums what the drains cut, and the pids that had to be killed. */
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

// A new worker that did not start: the reload's error says where it stopped, and keeps the worker's own error as its cause.
function asReloadFailure(error: Error, slot: Slot): ReloadFailure {
  if ((error as Partial<ReloadFailure>).code === 'ERR_REUSEPORT_RELOAD_FAILED') return error as ReloadFailure;
  const failure = new Error(
    `reuseport: the reload stopped at slot ${slot.index}: its new worker did not start (${error.message}); slot ${slot.index} and the slots after it keep their old workers`,
    { cause: error },
  );
  return Object.assign(failure, { code: 'ERR_REUSEPORT_RELOAD_FAILED' as const, slot: slot.index, slots: [slot.index], pid: undefined });
}

/**
 * How many slots a reload's next wave replaces at once: the first slot alone (the canary), then as
 * many as maxDraining leaves room for beside the old workers still draining (at least one).
 */
export function reloadWaveSize(state: { next: number; slots: number; maxDraining: number; draining: number }): number {
  const left = state.slots - state.next;
  if (left <= 0) return 0;
  if (state.next === 0) return 1;
  return Math.max(1, Math.min(left, state.maxDraining - state.draining));
}

// A wave's failures as one error: a wave of one keeps its slot's own error; a wider wave names every
// failed slot (the wave's other slots kept their new workers) and keeps the first error as its cause.
function waveFailure(failures: Error[], wave: Slot[], more: boolean): ReloadFailure {
  const first = failures[0] as ReloadFailure;
  if (wave.length === 1) return first;
  const slots = failures.map((failure) => (failure as ReloadFailure).slot);
  const passed = wave.length - slots.length;
  const error = new Error(
    `reuseport: the reload stopped after the wave of slots ${wave[0]?.index}-${wave.at(-1)?.index}: the new workers of slot${slots.length > 1 ? 's' : ''} ` +
      `${slots.join(', ')} did not start or died within minUptimeMs (first: ${first.message.replace(/^reuseport: /, '')}); ` +
      `${slots.length > 1 ? 'those slots keep' : 'that slot keeps'} ${slots.length > 1 ? 'their' : 'its'} old worker${slots.length > 1 ? 's' : ''}` +
      `${passed > 0 ? `, the wave's other ${passed} slot${passed > 1 ? 's' : ''} kept ${passed > 1 ? 'their' : 'its'} new worker${passed > 1 ? 's' : ''}` : ''}` +
      `${more ? ', and the slots after the wave keep their old workers' : ''}`,
    { cause: first },
  );
  return Object.assign(error, { code: 'ERR_REUSEPORT_RELOAD_FAILED' as const, slot: slots[0] as number, slots, pid: first.pid });
}
