// startCluster(): the supervisor in the cluster primary. Forks the workers, owns one SO_REUSEPORT
// socket per worker slot (reuseport mode), replaces a worker that dies, and reloads one slot at a
// time: the new worker listens on the slot's socket before the old one drains, so nothing is lost.
// It composes the parts that each own one concern: the worker slots' lifecycle (worker-slots.ts),
// the slot sockets (slots.ts), stall protection (stalls.ts) and the periodic checks (checks.ts).
import cluster, { type Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import { loadBinding } from '../binding';
import { type SupervisorMessage, supervisorMessage } from '../cluster/primary-link';
import { setupPrimary } from '../cluster/setup-primary';
import type { Plan } from '../plan/plan';
import { slotCpus } from './affinity';
import { PeriodicChecks } from './checks';
import { type SupervisorSettings, cpuLocalCpus, resolveSettings } from './settings';
import { SlotSockets, type SteeringState } from './slot-sockets';
import { StallGuard } from './stalls';
import type { SlotStats, StartClusterOptions, Supervisor } from './types';
import { type Slot, WorkerSlots } from './worker-slots';

export type { ForeignSocketEvent, SlotStats, StallEvent, StartClusterOptions, Supervisor, WorkerExit } from './types';

class ClusterSupervisor extends EventEmitter implements Supervisor {
  readonly plan: Plan;
  readonly #settings: SupervisorSettings;
  readonly #workers: WorkerSlots;
  readonly #sockets: SlotSockets | undefined;
  readonly #stalls: StallGuard;
  readonly #checks: PeriodicChecks | undefined;
  #reloading: Promise<void> = Promise.resolve();
  readonly #onSighup = () => {
    this.reload().catch((error: Error) => this.emit('reload-failed', error));
  };

  /** `cpus`: CPU-local mode's CPU for each slot. */
  constructor(plan: Plan, settings: SupervisorSettings, cpus?: number[]) {
    super();
    this.plan = plan;
    this.#settings = settings;
    const { binding } = loadBinding();
    const emit = (event: string, payload: unknown) => this.emit(event, payload);
    this.#sockets = plan.mode === 'reuseport' && plan.backend === 'addon' && binding ? new SlotSockets(binding, settings.workers, cpus) : undefined;
    this.#workers = new WorkerSlots(
      settings,
      {
        emit,
        onRequest: (worker, slot, message) => this.#onRequest(worker, slot, message),
        onListening: (worker) => {
          this.#stalls.heard(worker);
          this.#steer();
          // Give a lent slot back as soon as its own worker listens again.
          this.#stalls.watch();
        },
        onExit: (worker) => this.#stalls.forget(worker),
        hasSocket: (slot) => this.#sockets?.has(slot.index) ?? false,
        closeSocket: (slot) => this.#sockets?.close(slot.index),
      },
      binding,
      cpus,
    );
    this.#stalls = new StallGuard(settings, this.#workers, this.#sockets, emit);
    this.#checks = this.#sockets ? new PeriodicChecks(this.#workers.slots, this.#sockets, this.#stalls, emit) : undefined;
    if (settings.reloadOnSighup) process.on('SIGHUP', this.#onSighup);
  }

  get ports(): number[] {
    return this.#workers.ports;
  }

  get pids(): number[] {
    return this.#workers.pids;
  }

  async start(): Promise<void> {
    this.#checks?.start(this.#settings.foreignCheckMs);
    try {
      await Promise.all(this.#workers.slots.map((slot) => this.#workers.start(slot)));
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  // A worker asks for its slot's socket, or sends a heartbeat.
  #onRequest(worker: Worker, slot: Slot, message: SupervisorMessage): void {
    if (message.act === 'beat') {
      this.#stalls.beat(worker, message.accepted);
      return;
    }
    if (message.act !== 'slot') return;
    if (!this.#sockets) {
      this.#workers.send(worker, supervisorMessage({ act: 'slot-reply', seq: message.seq, error: { message: 'this supervisor lends no sockets' } }));
      return;
    }
    try {
      const socket = this.#sockets.get(slot.index, message);
      const steering = this.#sockets.steering().find((state) => state.port === socket.port && state.address === socket.address);
      const protection =
        this.#settings.stallThresholdMs > 0
          ? `Stall protection: a slot whose worker is silent for ${this.#settings.stallThresholdMs} ms is lent to a live worker; ${steering?.reason ?? 'no steering'}.`
          : `Stall protection is off (stallThresholdMs: 0); ${steering?.reason ?? 'no steering'}.`;
      this.#workers.send(worker, supervisorMessage({ act: 'slot-reply', seq: message.seq, port: socket.port, steering: protection }), socket.handle);
    } catch (error) {
      const { code, errno, syscall, address, port } = error as Record<string, never>;
      const reply = { act: 'slot-reply' as const, seq: message.seq, error: { message: (error as Error).message, code, errno, syscall, address, port } };
      this.#workers.send(worker, supervisorMessage(reply));
    }
  }

  // New connections go to the slots' own sockets and nowhere else: a socket of another app that
  // joins the group later gets none. The set is every slot, whatever its worker's state. Steering
  // away from a dead or stalled slot was tried: swapping programs while handshakes were under way
  // cost tens of resets per kill -9 at 2000 new connections/s here (against 0-1 without), so such
  // a slot is served by lending its socket instead.
  #steer(): void {
    this.#sockets?.steer(this.#workers.slots.map((slot) => slot.index));
  }

  steering(): SteeringState[] {
    return this.#sockets?.steering() ?? [];
  }

  stats(): SlotStats[] {
    return this.#workers.slots.map((slot) => ({
      slot: slot.index,
      pid: slot.worker?.process.pid,
      accepted: slot.accepted,
      stalls: slot.stalls,
      lentTo: this.#stalls.lentTo(slot.index)?.process.pid,
      queued: slot.queued,
      queuedPeak: slot.queuedPeak,
      cpu: slot.pinned ? slot.cpu : undefined,
    }));
  }

  reload(): Promise<void> {
    const run = async () => {
      await this.#workers.replaceAll();
      if (!this.#workers.closing) this.emit('reload', { pids: this.pids });
    };
    this.#reloading = this.#reloading.catch(() => undefined).then(run);
    return this.#reloading;
  }

  async close(): Promise<void> {
    process.off('SIGHUP', this.#onSighup);
    this.#checks?.stop();
    await this.#workers.stopAll();
    this.#sockets?.closeAll();
  }
}

/**
 * Starts a supervised cluster in the primary: forks `workers` copies of `exec`, each of which calls
 * listenReusePort as usual, and resolves once every one listens.
 */
export async function startCluster(options: StartClusterOptions): Promise<Supervisor> {
  const settings = resolveSettings(options);
  const plan = setupPrimary({ mode: options.mode ?? 'auto' });
  const cpus = settings.cpuLocal ? slotCpus(settings.workers, cpuLocalCpus(plan)) : undefined;
  cluster.setupPrimary({ exec: settings.exec, args: options.args ?? [] });
  const supervisor = new ClusterSupervisor(plan, settings, cpus);
  await supervisor.start();
  return supervisor;
}
