// startCluster(): the supervisor in the cluster primary. Forks the workers, owns one SO_REUSEPORT
// socket per worker slot (reuseport mode), replaces a worker that dies, and reloads one slot at a
// time: the new worker listens on the slot's socket before the old one drains, so nothing is lost.
import cluster, { type Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import os from 'node:os';
import { pinProcess, slotCpus } from './affinity';
import { type NativeBinding, loadBinding } from './binding';
import { invalidArgType, modeUnsupported, outOfRange } from './errors';
import type { Plan } from './plan';
import type { ModeChoice } from './plan';
import { type SupervisorMessage, isSupervisorMessage, supervisorMessage } from './primary-link';
import { setupPrimary } from './setup-primary';
import { SlotSockets, type SteeringState } from './slots';
import { processesByInode } from './port-holders';
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
  /**
   * Stall protection (reuseport mode): a worker whose heartbeats stop for this long, or a slot with
   * no worker, has its slot socket lent to a live worker until it is back. 0 turns it off. Default 80 ms.
   */
  stallThresholdMs?: number;
  /** A worker that has not answered for this long is killed and replaced (its slot is served meanwhile). 0: never. Default 30 s. */
  stallReplaceMs?: number;
  /**
   * How often to look for sockets of other apps on the ports. The kernel is asked for listening
   * sockets only (sock_diag, ~0.05 ms whatever the machine's connections); where that fails,
   * /proc/net/tcp is read, whose cost grows with every TCP socket, TIME_WAIT included. Steering
   * keeps them from connections meanwhile. Default 1 s.
   */
  foreignCheckMs?: number;
  /**
   * CPU-local mode (Linux, reuseport mode with the addon): worker slot i is pinned to the i-th CPU
   * this process may run on (wrapping around when there are more workers than CPUs), and each new
   * connection goes to the worker of the CPU whose network stack received it, so it is handled where
   * its packets already are. It pays off when the NIC spreads flows over CPUs (RSS/RPS); on loopback
   * the receiving CPU is the client's, so one busy client feeds one worker (see docs/benchmarks.md).
   * Default false: new connections are spread by a hash of the client's address and port.
   */
  cpuLocal?: boolean;
}

/** A slot whose worker stopped answering, or came back. */
export interface StallEvent {
  slot: number;
  pid: number | undefined;
  /** The worker that serves the slot meanwhile. */
  lentTo?: number | undefined;
  /** On recovery: how long the slot was served by another worker. */
  stalledMs?: number;
}

/** A socket of another process that joined one of the supervisor's ports. */
export interface ForeignSocketEvent {
  address: string;
  port: number;
  inode: string;
  uid: number;
  processes: { pid: number; command: string }[];
  /** True when the steering program keeps every new connection away from it. */
  steeredAway: boolean;
}

/** Per-slot figures from stats(). */
export interface SlotStats {
  slot: number;
  pid: number | undefined;
  /** Connections accepted from this slot's socket, by its worker or a borrower. */
  accepted: number;
  /** Stalls seen (its worker stopped answering while listening). */
  stalls: number;
  /** The worker serving the slot for another right now, if any. */
  lentTo: number | undefined;
  /** Connections waiting in the slot's accept queue at the last sample (every 100 ms), and the most seen. */
  queued: number;
  queuedPeak: number;
  /** CPU-local mode: the CPU the slot's worker is pinned to (undefined otherwise, or if pinning failed). */
  cpu: number | undefined;
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

/** The running cluster: `pids`, `reload()`, `close()`, `stats()`, `steering()`, and events 'listening', 'exit', 'stall', 'recover', 'stall-replace', 'foreign', 'slot-closed', 'reload'. */
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
  /** Per slot: connections accepted, stalls seen, queue depth, who serves it now if not its own worker, and its CPU in CPU-local mode. */
  stats(): SlotStats[];
  /** Per address: whether new connections are steered (Linux cBPF), and why not. */
  steering(): SteeringState[];
}

interface Slot {
  index: number;
  worker: Worker | undefined;
  ready: boolean;
  failures: number;
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

/** How often the supervisor checks that every slot is served. */
const MONITOR_MS = 20;
/** Accept queues are sampled every this many checks (100 ms). */
const QUEUE_SAMPLE_TICKS = 5;

function positiveInteger(value: unknown, name: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min) throw outOfRange(name, `an integer >= ${min}`, value);
  return value;
}

function optionalBoolean(value: unknown, name: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value);
  return value;
}

// The CPUs CPU-local mode pins workers to (this process's own mask), or why it cannot run here.
function cpuLocalCpus(plan: Plan): number[] {
  const { binding, error } = loadBinding();
  const missing =
    process.platform !== 'linux'
      ? `it is Linux only (SO_ATTACH_REUSEPORT_CBPF with SKF_AD_CPU, sched_setaffinity), and this is ${process.platform}`
      : !binding
        ? `it needs the native addon, which did not load (${error?.message ?? 'unknown'})`
        : plan.mode !== 'reuseport' || plan.backend !== 'addon'
          ? `it needs the reuseport mode through the addon, and the plan is ${plan.mode} (${plan.backend}): ${plan.reasons.join('; ')}`
          : undefined;
  if (missing || !binding) throw modeUnsupported(`reuseport: cpuLocal cannot be used: ${missing}`);
  return binding.getCpuAffinity(0);
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
  readonly #waiters = new Map<Worker, { listening: () => void; drained: () => void; failed?: (error: Error) => void }>();
  #closing = false;
  #reloading: Promise<void> = Promise.resolve();
  readonly #lastBeat = new Map<Worker, number>();
  readonly #lastAccepted = new Map<Worker, Record<string, number>>();
  /** Slot -> the worker it is lent to. */
  readonly #loans = new Map<number, Worker>();
  #monitor: NodeJS.Timeout | undefined;
  #strangerWatch: NodeJS.Timeout | undefined;
  readonly #strangersSeen = new Set<string>();
  #ticks = 0;
  #stallLimit = 0;
  readonly #condemned = new WeakSet<Worker>();
  readonly #onSighup = () => {
    this.reload().catch((error: Error) => this.emit('reload-failed', error));
  };

  readonly #binding: NativeBinding | undefined;

  /** `cpus`: CPU-local mode's CPU for each slot. */
  constructor(plan: Plan, options: SupervisorSettings, cpus?: number[]) {
    super();
    this.plan = plan;
    this.#options = options;
    this.#stallLimit = options.stallThresholdMs;
    this.#slots = Array.from({ length: options.workers }, (_, index) => ({
      index,
      worker: undefined,
      ready: false,
      failures: 0,
      restartTimer: undefined,
      closeTimer: undefined,
      accepted: 0,
      stalls: 0,
      unservedSince: undefined,
      everListened: false,
      queued: 0,
      queuedPeak: 0,
      cpu: cpus?.[index],
      pinned: false,
    }));
    const { binding } = loadBinding();
    this.#binding = binding;
    this.#sockets = plan.mode === 'reuseport' && plan.backend === 'addon' && binding ? new SlotSockets(binding, options.workers, cpus) : undefined;
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
    if (this.#sockets && this.#options.stallThresholdMs > 0) {
      this.#monitor = setInterval(() => this.#watch(), MONITOR_MS);
      this.#monitor.unref();
    }
    if (this.#sockets) {
      this.#strangerWatch = setInterval(() => this.#lookForStrangers(), this.#options.foreignCheckMs);
      this.#strangerWatch.unref();
    }
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
    // Pinned at once, so the threads Node starts while booting inherit the CPU.
    this.#pin(worker, slot);
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
        failed: (error: Error) => {
          clearTimeout(timer);
          worker.off('exit', exitedEarly);
          reject(error);
          this.#stop(worker).catch(() => undefined);
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
        this.#send(worker, supervisorMessage({ act: 'slot-reply', seq: message.seq, error: { message: 'this supervisor lends no sockets' } }));
        return;
      }
      try {
        const socket = this.#sockets.get(slot.index, message);
        const steering = this.#sockets.steering().find((state) => state.port === socket.port && state.address === socket.address);
        const protection =
          this.#options.stallThresholdMs > 0
            ? `Stall protection: a slot whose worker is silent for ${this.#options.stallThresholdMs} ms is lent to a live worker; ${steering?.reason ?? 'no steering'}.`
            : `Stall protection is off (stallThresholdMs: 0); ${steering?.reason ?? 'no steering'}.`;
        this.#send(worker, supervisorMessage({ act: 'slot-reply', seq: message.seq, port: socket.port, steering: protection }), socket.handle);
      } catch (error) {
        const { code, errno, syscall, address, port } = error as Record<string, never>;
        const reply = { act: 'slot-reply' as const, seq: message.seq, error: { message: (error as Error).message, code, errno, syscall, address, port } };
        this.#send(worker, supervisorMessage(reply));
      }
    } else if (message.act === 'beat') {
      this.#lastBeat.set(worker, performance.now());
      const last = this.#lastAccepted.get(worker) ?? {};
      for (const [index, total] of Object.entries(message.accepted)) {
        const target = this.#slots[Number(index)];
        if (target) target.accepted += total - (last[index] ?? 0);
      }
      this.#lastAccepted.set(worker, message.accepted);
    } else if (message.act === 'listening') {
      this.#lastBeat.set(worker, performance.now());
      // Again, now that every thread it starts at boot exists (one started before the first pin).
      this.#pin(worker, slot);
      if (slot.worker === worker || !slot.ready) slot.ready = true;
      slot.failures = 0;
      if (slot.closeTimer) clearTimeout(slot.closeTimer);
      slot.closeTimer = undefined;
      if (message.port > 0) this.#ports.add(message.port);
      if (slot.worker === worker) slot.everListened = true;
      this.#waiters.get(worker)?.listening();
      this.#steer();
      // Give a lent slot back as soon as its own worker listens again.
      if (this.#monitor) this.#watch();
      this.emit('listening', { slot: slot.index, pid: worker.process.pid, port: message.port });
    } else if (message.act === 'failed') {
      const { message: text, ...fields } = message.error;
      const error = Object.assign(new Error(`${text} (worker pid ${worker.process.pid}, slot ${slot.index})`), fields);
      this.#waiters.get(worker)?.failed?.(error);
    } else if (message.act === 'drained') {
      this.#waiters.get(worker)?.drained();
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
    this.#lastBeat.delete(worker);
    this.#lastAccepted.delete(worker);
    for (const [index, borrower] of this.#loans) if (borrower === worker) this.#loans.delete(index);
    // Lend the dead worker's slot (and what it borrowed) at once, not at the next check.
    if (this.#monitor) setImmediate(() => this.#watch());
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
      this.#waiters.set(worker, { ...waiter, listening: waiter?.listening ?? (() => undefined), drained: resolve });
    });
    this.#send(worker, supervisorMessage({ act: 'drain', timeoutMs: this.#options.drainTimeoutMs }));
    const bound = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
    await Promise.race([drained, exited, bound(this.#options.drainTimeoutMs + 2_000)]);
    if (!worker.isDead()) worker.process.kill('SIGTERM');
    await Promise.race([exited, bound(5_000)]);
    if (!worker.isDead()) worker.process.kill('SIGKILL');
    await exited;
  }

  // Sends over IPC; a worker that is gone cannot be told anything, and its exit is handled elsewhere.
  #send(worker: Worker, message: SupervisorMessage, handle?: unknown): void {
    if (!worker.isConnected()) return;
    const ignore = () => undefined;
    if (handle) worker.process.send(message as never, handle as never, {}, ignore);
    else worker.process.send(message as never, ignore);
  }

  // Whether a worker answers: alive, connected, not leaving, and its heartbeat is recent.
  #answers(worker: Worker | undefined, now: number): worker is Worker {
    if (!worker || worker.isDead() || !worker.isConnected() || this.#leaving.has(worker)) return false;
    return now - (this.#lastBeat.get(worker) ?? Number.NEGATIVE_INFINITY) < this.#stallLimit;
  }

  // How long a silence counts as a stall right now: the threshold, or 4 times the typical silence
  // of the workers when they are all slow (a saturated machine delays every heartbeat alike, and
  // moving load off a busy worker onto equally busy ones would only make it swing).
  #updateStallLimit(now: number): void {
    const silences = this.#slots
      .flatMap((slot) => (slot.ready && slot.worker && !slot.worker.isDead() ? [now - (this.#lastBeat.get(slot.worker) ?? now)] : []))
      .sort((a, b) => a - b);
    const typical = silences[Math.floor((silences.length - 1) / 2)] ?? 0;
    this.#stallLimit = Math.max(this.#options.stallThresholdMs, 4 * typical);
  }

  // Every slot whose own worker cannot accept (stalled, dead, starting, draining) is lent to a live
  // worker, and recalled when its own worker answers again. Nothing is closed, so nothing is lost.
  #watch(): void {
    if (!this.#sockets || this.#closing) return;
    const now = performance.now();
    this.#updateStallLimit(now);
    this.#ticks += 1;
    if (this.#ticks % QUEUE_SAMPLE_TICKS === 0) this.#sampleQueues();
    for (const slot of this.#slots) {
      if (!slot.everListened || !this.#sockets.has(slot.index)) continue;
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
    const limit = this.#options.stallReplaceMs;
    if (!limit || !worker || !slot.ready || worker.isDead() || this.#leaving.has(worker) || this.#condemned.has(worker)) return;
    const silentFor = now - (this.#lastBeat.get(worker) ?? now);
    if (silentFor < limit) return;
    this.emit('stall-replace', { slot: slot.index, pid: worker.process.pid, stalledMs: Math.round(silentFor) } satisfies StallEvent);
    this.#condemned.add(worker);
    worker.process.kill('SIGKILL');
  }

  // The kernel's accept-queue depth per slot: a slot that is not being served shows it first.
  #sampleQueues(): void {
    const depth = this.#sockets?.queued() ?? new Map<number, number>();
    for (const slot of this.#slots) {
      slot.queued = depth.get(slot.index) ?? 0;
      slot.queuedPeak = Math.max(slot.queuedPeak, slot.queued);
    }
  }

  // New connections go to the slots' own sockets and nowhere else: a socket of another app that
  // joins the group later gets none. The set is every slot, whatever its worker's state. Steering
  // away from a dead or stalled slot was tried: swapping programs while handshakes were under way
  // cost tens of resets per kill -9 at 2000 new connections/s here (against 0-1 without), so such
  // a slot is served by lending its socket instead.
  #steer(): void {
    this.#sockets?.steer(this.#slots.map((slot) => slot.index));
  }

  // A socket of another process that joined one of our ports (it set SO_REUSEPORT itself): said once.
  #lookForStrangers(): void {
    if (!this.#sockets || this.#closing) return;
    const strangers = this.#sockets.strangers().filter((socket) => !this.#strangersSeen.has(socket.inode));
    if (strangers.length === 0) return;
    const owners = processesByInode(new Set(strangers.map((socket) => socket.inode)));
    for (const socket of strangers) {
      this.#strangersSeen.add(socket.inode);
      const steered = this.#sockets.steering().some((state) => state.port === socket.port && state.enabled);
      this.emit('foreign', { ...socket, processes: owners.get(socket.inode) ?? [], steeredAway: steered } satisfies ForeignSocketEvent);
    }
  }

  #pickBorrower(slot: Slot, now: number): Worker | undefined {
    let best: Worker | undefined;
    let fewest = Number.POSITIVE_INFINITY;
    for (const other of this.#slots) {
      if (other === slot || !other.ready || !this.#answers(other.worker, now)) continue;
      const loans = [...this.#loans.values()].filter((w) => w === other.worker).length;
      if (loans < fewest) {
        fewest = loans;
        best = other.worker;
      }
    }
    return best;
  }

  #lend(slot: Slot, borrower: Worker, now: number): void {
    for (const socket of this.#sockets?.socketsOf(slot.index) ?? []) {
      this.#send(borrower, supervisorMessage({ act: 'lend', slot: slot.index, port: socket.port }), socket.handle);
    }
    this.#loans.set(slot.index, borrower);
    if (slot.unservedSince === undefined) {
      slot.unservedSince = now;
      // A slot whose worker was listening and stopped answering is a stall; dead or starting is not.
      if (slot.ready && slot.worker && !slot.worker.isDead() && !this.#leaving.has(slot.worker)) {
        slot.stalls += 1;
        this.emit('stall', { slot: slot.index, pid: slot.worker.process.pid, lentTo: borrower.process.pid } satisfies StallEvent);
      }
    }
  }

  #recall(slot: Slot, borrower: Worker, now: number): void {
    this.#send(borrower, supervisorMessage({ act: 'recall', slot: slot.index }));
    this.#loans.delete(slot.index);
    if (slot.unservedSince !== undefined && slot.ready && this.#answers(slot.worker, now)) {
      const stalledMs = Math.round(now - slot.unservedSince);
      slot.unservedSince = undefined;
      this.emit('recover', { slot: slot.index, pid: slot.worker.process.pid, stalledMs } satisfies StallEvent);
    }
  }

  steering(): SteeringState[] {
    return this.#sockets?.steering() ?? [];
  }

  stats(): SlotStats[] {
    return this.#slots.map((slot) => ({
      slot: slot.index,
      pid: slot.worker?.process.pid,
      accepted: slot.accepted,
      stalls: slot.stalls,
      lentTo: this.#loans.get(slot.index)?.process.pid,
      queued: slot.queued,
      queuedPeak: slot.queuedPeak,
      cpu: slot.pinned ? slot.cpu : undefined,
    }));
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
    if (this.#monitor) clearInterval(this.#monitor);
    if (this.#strangerWatch) clearInterval(this.#strangerWatch);
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
    stallThresholdMs: positiveInteger(options.stallThresholdMs, 'options.stallThresholdMs', 80, 0),
    stallReplaceMs: positiveInteger(options.stallReplaceMs, 'options.stallReplaceMs', 30_000, 0),
    foreignCheckMs: positiveInteger(options.foreignCheckMs, 'options.foreignCheckMs', 1_000),
    cpuLocal: optionalBoolean(options.cpuLocal, 'options.cpuLocal'),
    env: { ...options.env },
  };
  const plan = setupPrimary({ mode: options.mode ?? 'auto' });
  const cpus = settings.cpuLocal ? slotCpus(settings.workers, cpuLocalCpus(plan)) : undefined;
  cluster.setupPrimary({ exec: settings.exec, args: options.args ?? [] });
  const supervisor = new ClusterSupervisor(plan, settings, cpus);
  await supervisor.start();
  return supervisor;
}
