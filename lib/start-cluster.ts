// startCluster(): the supervisor in the cluster primary. Forks the workers, owns one SO_REUSEPORT
// socket per worker slot (reuseport mode), replaces a worker that dies, and reloads one slot at a
// time: the new worker listens on the slot's socket before the old one drains, so nothing is lost.
import cluster, { type Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import os from 'node:os';
import { loadBinding } from './binding';
import { invalidArgType, outOfRange } from './errors';
import type { Plan } from './plan';
import type { ModeChoice } from './plan';
import { type SupervisorMessage, isSupervisorMessage, supervisorMessage } from './primary-link';
import { setupPrimary } from './setup-primary';
import { SlotSockets } from './slots';
import { SLOT_ENV, SUPERVISOR_ENV } from './supervised-worker';

/** Options of startCluster. */
export interface StartClusterOptions {
  /** The worker script; it calls listenReusePort as usual. */
  exec: string;
  /** How many workers (slots). Default: os.availableParallelism(). */
  workers?: number;
  /** 'auto' (default), or a mode to insist on; as for setupPrimary. */
  mode?: ModeChoice;
  /** Arguments for the worker script. */
  args?: string[];
  /** Extra environment for the workers. */
  env?: Record<string, string>;
  /** How long a draining worker may take to finish its requests before its connections are cut. Default 10 s. */
  drainTimeoutMs?: number;
  /** How long a new worker may take to listen. Default 30 s. */
  readyTimeoutMs?: number;
  /** Reload on SIGHUP. Default false. */
  reloadOnSighup?: boolean;
  /** Delay before replacing a worker that died; doubles while replacements keep dying, up to 5 s. Default 100 ms. */
  restartDelayMs?: number;
  /** A slot not refilled within this long has its socket closed (its queue then goes to the other slots where the kernel migrates it). Default 30 s. */
  slotTimeoutMs?: number;
}

/** Why a worker left. */
export interface WorkerExit {
  slot: number;
  pid: number;
  code: number | null;
  signal: string | null;
  /** True when the supervisor asked it to go (reload, close). */
  expected: boolean;
}

/** The running cluster: `pids`, `reload()`, `close()`, and events 'listening', 'exit', 'slot-closed', 'reload'. */
export interface Supervisor extends EventEmitter {
  /** The plan every worker follows. */
  readonly plan: Plan;
  /** The live workers' pids, slot by slot (kept current). */
  readonly pids: number[];
  /** The ports the workers listen on (port 0 resolved), in the order first seen. */
  readonly ports: number[];
  /** Replaces every worker, one slot at a time; resolves when all are replaced. */
  reload(): Promise<void>;
  /** Drains and stops every worker and closes the slot sockets. */
  close(): Promise<void>;
}

interface Slot {
  index: number;
  worker: Worker | undefined;
  ready: boolean;
  failures: number;
  restartTimer: NodeJS.Timeout | undefined;
  closeTimer: NodeJS.Timeout | undefined;
}

function positiveInteger(value: unknown, name: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min) throw outOfRange(name, `an integer >= ${min}`, value);
  return value;
}

// startCluster's options with every default resolved.
type SupervisorSettings = Required<Omit<StartClusterOptions, 'mode' | 'args' | 'env'>> & { env: Record<string, string> };

class ClusterSupervisor extends EventEmitter implements Supervisor {
  readonly plan: Plan;
  readonly #options: SupervisorSettings;
  readonly #slots: Slot[];
  readonly #sockets: SlotSockets | undefined;
  readonly #slotOf = new Map<Worker, number>();
  readonly #leaving = new Set<Worker>();
  readonly #waiters = new Map<Worker, { listening: () => void; drained: () => void }>();
  #closing = false;
  #reloading: Promise<void> = Promise.resolve();
  readonly #onSighup = () => {
    this.reload().catch((error: Error) => this.emit('reload-failed', error));
  };

  constructor(plan: Plan, options: SupervisorSettings) {
    super();
    this.plan = plan;
    this.#options = options;
    this.#slots = Array.from({ length: options.workers }, (_, index) => ({
      index,
      worker: undefined,
      ready: false,
      failures: 0,
      restartTimer: undefined,
      closeTimer: undefined,
    }));
    const { binding } = loadBinding();
    this.#sockets = plan.mode === 'reuseport' && plan.backend === 'addon' && binding ? new SlotSockets(binding) : undefined;
    if (options.reloadOnSighup) process.on('SIGHUP', this.#onSighup);
  }

  readonly #ports = new Set<number>();

  get ports(): number[] {
    return [...this.#ports];
  }

  get pids(): number[] {
    return this.#slots.flatMap((slot) => (slot.worker?.process.pid ? [slot.worker.process.pid] : []));
  }

  async start(): Promise<void> {
    try {
      await Promise.all(this.#slots.map((slot) => this.#startWorker(slot)));
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  // Forks a worker for the slot; resolves when it listens, rejects if it exits or times out first.
  #fork(slot: Slot): { worker: Worker; listening: Promise<void> } {
    const worker = cluster.fork({
      ...this.#options.env,
      [SLOT_ENV]: String(slot.index),
      [SUPERVISOR_ENV]: String(process.pid),
    });
    this.#slotOf.set(worker, slot.index);
    const listening = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`reuseport: the worker for slot ${slot.index} (pid ${worker.process.pid}) did not listen within ${this.#options.readyTimeoutMs} ms`));
        this.#stop(worker).catch(() => undefined);
      }, this.#options.readyTimeoutMs);
      const exitedEarly = (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        reject(new Error(`reuseport: the worker for slot ${slot.index} (pid ${worker.process.pid}) exited (${signal ?? code}) before it listened`));
      };
      worker.once('exit', exitedEarly);
      this.#waiters.set(worker, {
        listening: () => {
          clearTimeout(timer);
          worker.off('exit', exitedEarly);
          resolve();
        },
        drained: () => undefined,
      });
    });
    worker.process.on('internalMessage' as 'message', (message: unknown, handle: unknown) => this.#onMessage(worker, slot, message, handle));
    worker.on('exit', (code: number | null, signal: string | null) => this.#onExit(worker, slot, code, signal));
    return { worker, listening };
  }

  async #startWorker(slot: Slot): Promise<void> {
    const { worker, listening } = this.#fork(slot);
    slot.worker = worker;
    await listening;
  }

  #onMessage(worker: Worker, slot: Slot, raw: unknown, _handle: unknown): void {
    if (!isSupervisorMessage(raw)) return;
    const message = raw as SupervisorMessage;
    if (message.act === 'slot') {
      if (!this.#sockets) {
        worker.process.send(supervisorMessage({ act: 'slot-reply', seq: message.seq, error: { message: 'this supervisor lends no sockets' } }) as never);
        return;
      }
      try {
        const socket = this.#sockets.get(slot.index, message);
        worker.process.send(supervisorMessage({ act: 'slot-reply', seq: message.seq, port: socket.port }) as never, socket.handle as never);
      } catch (error) {
        const { code, errno, syscall, address, port } = error as Record<string, never>;
        const reply = { act: 'slot-reply' as const, seq: message.seq, error: { message: (error as Error).message, code, errno, syscall, address, port } };
        worker.process.send(supervisorMessage(reply) as never);
      }
    } else if (message.act === 'listening') {
      if (slot.worker === worker || !slot.ready) slot.ready = true;
      slot.failures = 0;
      if (slot.closeTimer) clearTimeout(slot.closeTimer);
      slot.closeTimer = undefined;
      if (message.port > 0) this.#ports.add(message.port);
      this.#waiters.get(worker)?.listening();
      this.emit('listening', { slot: slot.index, pid: worker.process.pid, port: message.port });
    } else if (message.act === 'drained') {
      this.#waiters.get(worker)?.drained();
    }
  }

  #onExit(worker: Worker, slot: Slot, code: number | null, signal: string | null): void {
    const expected = this.#leaving.has(worker) || this.#closing;
    this.#leaving.delete(worker);
    this.#slotOf.delete(worker);
    this.#waiters.delete(worker);
    const exit: WorkerExit = { slot: slot.index, pid: worker.process.pid ?? 0, code, signal, expected };
    this.emit('exit', exit);
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
    if (this.#sockets?.has(slot.index) && !slot.closeTimer) {
      slot.closeTimer = setTimeout(() => {
        slot.closeTimer = undefined;
        if (slot.ready) return;
        this.#sockets?.close(slot.index);
        this.emit('slot-closed', { slot: slot.index });
      }, this.#options.slotTimeoutMs);
    }
    const delay = Math.min(5_000, this.#options.restartDelayMs * 2 ** Math.max(0, slot.failures - 1));
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (this.#closing) return;
      this.#startWorker(slot).catch(() => {
        // Its exit handler schedules the next try; a hang is stopped by the ready timeout.
      });
    }, delay);
  }

  // Drains a worker (bounded) and makes sure it exits.
  async #stop(worker: Worker): Promise<void> {
    if (worker.isDead()) return;
    this.#leaving.add(worker);
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    const drained = new Promise<void>((resolve) => {
      const waiter = this.#waiters.get(worker);
      this.#waiters.set(worker, { listening: waiter?.listening ?? (() => undefined), drained: resolve });
    });
    if (worker.isConnected()) worker.process.send(supervisorMessage({ act: 'drain', timeoutMs: this.#options.drainTimeoutMs }) as never);
    const bound = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
    await Promise.race([drained, exited, bound(this.#options.drainTimeoutMs + 2_000)]);
    if (!worker.isDead()) worker.process.kill('SIGTERM');
    await Promise.race([exited, bound(5_000)]);
    if (!worker.isDead()) worker.process.kill('SIGKILL');
    await exited;
  }

  reload(): Promise<void> {
    const run = async () => {
      for (const slot of this.#slots) {
        if (this.#closing) return;
        const old = slot.worker;
        const { worker, listening } = this.#fork(slot);
        await listening;
        slot.worker = worker;
        slot.ready = true;
        if (old) await this.#stop(old);
      }
      this.emit('reload', { pids: this.pids });
    };
    this.#reloading = this.#reloading.catch(() => undefined).then(run);
    return this.#reloading;
  }

  async close(): Promise<void> {
    this.#closing = true;
    process.off('SIGHUP', this.#onSighup);
    for (const slot of this.#slots) {
      if (slot.restartTimer) clearTimeout(slot.restartTimer);
      if (slot.closeTimer) clearTimeout(slot.closeTimer);
      slot.restartTimer = slot.closeTimer = undefined;
    }
    await Promise.all([...this.#slotOf.keys()].map((worker) => this.#stop(worker)));
    this.#sockets?.closeAll();
  }
}

/**
 * Starts a supervised cluster in the primary: forks `workers` copies of `exec`, each of which calls
 * listenReusePort as usual, and resolves once every one listens.
 */
export async function startCluster(options: StartClusterOptions): Promise<Supervisor> {
  if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'of type object', options);
  if (typeof options.exec !== 'string' || options.exec === '') throw invalidArgType('options.exec', 'a non-empty string', options.exec);
  if (options.args !== undefined && !Array.isArray(options.args)) throw invalidArgType('options.args', 'an array', options.args);
  const settings = {
    exec: options.exec,
    workers: positiveInteger(options.workers, 'options.workers', os.availableParallelism()),
    drainTimeoutMs: positiveInteger(options.drainTimeoutMs, 'options.drainTimeoutMs', 10_000, 0),
    readyTimeoutMs: positiveInteger(options.readyTimeoutMs, 'options.readyTimeoutMs', 30_000),
    reloadOnSighup: options.reloadOnSighup === true,
    restartDelayMs: positiveInteger(options.restartDelayMs, 'options.restartDelayMs', 100, 0),
    slotTimeoutMs: positiveInteger(options.slotTimeoutMs, 'options.slotTimeoutMs', 30_000),
    env: { ...options.env },
  };
  const plan = setupPrimary({ mode: options.mode ?? 'auto' });
  cluster.setupPrimary({ exec: settings.exec, args: options.args ?? [] });
  const supervisor = new ClusterSupervisor(plan, settings);
  await supervisor.start();
  return supervisor;
}
