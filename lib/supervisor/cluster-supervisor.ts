// The supervisor in the cluster primary (what startCluster() returns). Forks the workers, owns one SO_REUSEPORT
// socket per worker slot (reuseport mode), replaces a worker that dies, and reloads a canary, then
// waves: each new worker listens on its slot's socket before the old one drains (old ones drain side
// by side), so nothing is lost.
// It composes the parts that each own one concern: the worker slots' lifecycle (slots/worker-slots.ts,
// slots/lifecycle.ts, slots/reload.ts), the answers to workers' requests (slots/lending.ts),
// the slot sockets (slots/slot-sockets.ts), stall protection (liveness/stalls.ts), the periodic checks
// (liveness/checks.ts), the hand-over of the slot sockets to a successor in an upgrade (deploy/upgrade.ts,
// deploy/successor.ts, deploy/handover.ts), systemd (deploy/systemd-link.ts), the health server
// (fleet/health.ts), graceful shutdown (fleet/shutdown.ts), the one stop path (fleet/stop.ts), reloads
// one at a time (slots/reload-queue.ts) and the TLS ticket keys (fleet/ticket-keys.ts).
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { loadBinding } from '../binding';
import { supervisorMessage } from '../cluster/ipc';
import type { Plan } from '../plan/plan';
import type { EmitEvent, SupervisorEventMap } from './core/events';
import type { SupervisorSettings } from './core/settings';
import { whenQuiet } from './core/settle';
import type { ReloadResult, ShutdownOptions, ShutdownResult, SlotStats, SteeringState, Supervisor, UpgradeEvent, UpgradeOptions } from './core/types';
import type { Handover } from './deploy/handover';
import { type OrphanReaper, startReaper } from './deploy/reaper';
import { SlotHandover, adoptHandedSockets } from './deploy/slot-handover';
import { SurplusSockets } from './deploy/surplus';
import type { ListenFds } from './deploy/systemd';
import { SystemdLink } from './deploy/systemd-link';
import { Upgrades } from './deploy/upgrade';
import { HealthServer, supervisorSource } from './fleet/health';
import { ServiceRecord } from './fleet/outcomes';
import { ControlSignals } from './fleet/control-signals';
import { GracefulShutdown, shutdownExitCode } from './fleet/shutdown';
import { slotStats } from './slot-stats';
import { StopPath } from './fleet/stop';
import { TicketKeys } from './fleet/ticket-keys';
import { PeriodicChecks } from './liveness/checks';
import { MemoryLimit } from './liveness/memory';
import { StallGuard } from './liveness/stalls';
import { type BalanceReport, Balancer, balanceOffReason } from './slots/balancer';
import { SlotLending } from './slots/lending';
import { ProgressBoard } from './slots/progress-board';
import { ReloadQueue } from './slots/reload-queue';
import { SlotSockets, queueSourceReason } from './slots/slot-sockets';
import { WorkerSlots } from './slots/worker-slots';

/** The supervisor startCluster() returns: it composes the parts. */
export class ClusterSupervisor extends EventEmitter<SupervisorEventMap> implements Supervisor {
  plan: Plan;
  readonly #settings: SupervisorSettings;
  readonly #workers: WorkerSlots;
  readonly #sockets: SlotSockets | undefined;
  readonly #handover: SlotHandover | undefined;
  readonly #stalls: StallGuard;
  readonly #checks: PeriodicChecks | undefined;
  readonly #board: ProgressBoard | undefined;
  readonly #balancer: Balancer | undefined;
  readonly #balanceOff: string | undefined;
  /** How liveness is told, for the workers' reasons. */
  readonly #lending: SlotLending;
  // While start() runs, events found are held (startCluster's caller has no supervisor to listen on yet).
  #held: (() => void)[] | undefined;
  readonly #systemd: SystemdLink;
  readonly #surplus: SurplusSockets | undefined;
  readonly #reloads: ReloadQueue;
  readonly #stop: StopPath;
  readonly #upgrades: Upgrades;
  readonly #shutdown: GracefulShutdown;
  readonly #health: HealthServer | undefined;
  /** Its counts, when it began (a successor: when its first supervisor did), its last outcomes. */
  readonly #record = new ServiceRecord();
  /** The predecessor's health socket (an upgrade): served on if it is on our health port, else closed. */
  #handedHealthFd: number | undefined;
  #healthPort: number | undefined;
  #ticketKeys: TicketKeys | undefined;
  /** As PID 1 or a subreaper: reaps the orphans given to this process. */
  readonly #reaper: OrphanReaper | undefined;
  /** maxMemoryRestart: replaces a worker over it the way a reload does. */
  readonly #memory: MemoryLimit | undefined;
  readonly #signals: ControlSignals;

  /** `cpus`: CPU-local mode's CPU for each slot. */
  constructor(plan: Plan, settings: SupervisorSettings, cpus?: number[]) {
    super();
    this.plan = plan;
    this.#settings = settings;
    const { binding } = loadBinding();
    this.#reaper = startReaper(binding, settings.subreaper);
    const emit: EmitEvent = (event, ...args) => this.emit(event, ...(args as never));
    const sticky = settings.sticky ? { ipv6Prefix: settings.stickyIpv6Prefix } : undefined;
    this.#sockets = plan.mode === 'reuseport' && plan.backend === 'addon' && binding ? new SlotSockets(binding, settings.workers, cpus, sticky) : undefined;
    this.#handover = this.#sockets && new SlotHandover(this.#sockets);
    // Progress cells serve stall protection, which needs the slot sockets and a threshold, and balance.
    const balanceOff = balanceOffReason(settings, this.#sockets !== undefined);
    const board = this.#sockets && (settings.stallThresholdMs > 0 || !balanceOff) ? ProgressBoard.open() : undefined;
    this.#board = board instanceof ProgressBoard ? board : undefined;
    const cells =
      board instanceof ProgressBoard
        ? 'workers that accept show it in their progress cells, and only a worker whose cell stands still while connections wait is pinged'
        : `no progress cells (${board?.message ?? 'no stall protection'}): every worker whose slot has connections waiting is pinged`;
    this.#workers = new WorkerSlots(
      settings,
      {
        emit,
        onRequest: (worker, slot, message) => this.#lending.answer(worker, slot, message),
        onListening: (worker, slot) => {
          this.#stalls.heard(worker);
          this.#surplus?.lendTo(worker, slot);
          this.#steer();
          // Give a lent slot back as soon as its own worker listens again.
          this.#stalls.watch();
          this.#systemd.storeSockets();
        },
        onExit: (worker, slot) => {
          this.#stalls.forget(worker, slot.index);
          this.#balancer?.forget(worker);
        },
        hasSocket: (slot) => this.#sockets?.has(slot.index) ?? false,
        closeSocket: (slot) => {
          this.#systemd.slotClosing(slot.index);
          this.#sockets?.close(slot.index);
        },
      },
      binding,
      cpus,
      this.#board,
    );
    this.#memory =
      settings.maxMemoryRestart > 0 ? new MemoryLimit(settings, this.#workers, { emit, serially: (job) => this.#reloads.serially(job) }) : undefined;
    this.#stalls = new StallGuard(settings, this.#workers, this.#sockets, emit, this.#board);
    this.#lending = new SlotLending(settings, this.#workers, this.#sockets, {
      beat: (worker, accepted) => this.#stalls.beat(worker, accepted),
      ticketKey: () => this.#ticketKeys?.current,
      queuesUnreadable: once(() => this.#tell(() => this.emit('stall-detection-off', { reason: queueSourceReason('none') }))),
      cells,
    });
    this.#balanceOff = balanceOff ?? (board instanceof ProgressBoard ? undefined : `no progress cells (${board?.message})`);
    const workers = this.#workers;
    this.#balancer =
      this.#board && !this.#balanceOff
        ? new Balancer({
            slots: workers.slots,
            board: this.#board,
            send: (worker, message) => workers.send(worker, message),
            isLeaving: (worker) => workers.isLeaving(worker),
            unsettled: () => (this.#stalls.unsettled ? 'a stall is being handled' : undefined),
            steer: (slots, weights) => this.#sockets?.steer(slots, weights),
          })
        : undefined;
    this.#checks = this.#sockets ? new PeriodicChecks(this.#workers.slots, this.#sockets, this.#stalls, emit, this.#board) : undefined;
    this.#systemd = new SystemdLink(binding, this.#handover);
    const supervisor = this;
    this.#upgrades = new Upgrades({
      get plan() {
        return supervisor.plan;
      },
      get closed() {
        return supervisor.#stop.begun;
      },
      sockets: this.#handover,
      readyTimeoutMs: settings.readyTimeoutMs,
      emit,
      shutDown: (letGo) => this.#stop.run({ how: 'hand-over', letGo }),
      healthFd: () => this.#health?.fd,
      ticketKey: () => this.#ticketKeys?.current,
      notes: () => ({
        counts: this.#record.counts,
        serviceStartedAt: this.#record.startedAt,
        ...(settings.commandSyntax ? { commandSyntax: settings.commandSyntax } : {}),
      }),
    });
    this.#surplus = this.#handover ? new SurplusSockets(this.#handover, this.#workers, (slot) => this.#systemd.slotClosing(slot)) : undefined;
    this.#shutdown = new GracefulShutdown({
      signals: settings.shutdownSignals,
      delayMs: settings.shutdownDelayMs,
      drainTimeoutMs: settings.drainTimeoutMs,
      emit,
      close: () => this.#stop.run({ how: 'close' }),
      abort: () => {
        for (const pid of this.pids) process.kill(pid, 'SIGKILL');
      },
    });
    this.#health = settings.health ? new HealthServer(supervisorSource(this, this.#record, this.#shutdown)) : undefined;
    this.#reloads = new ReloadQueue(this.#workers, settings, { emit, systemd: this.#systemd, deploys: [this.#balancer, this.#stalls] });
    this.#stop = new StopPath({
      stopping: () => this.#systemd.stopping(),
      quiet: () => {
        this.#signals.uninstall();
        for (const part of [this.#checks, this.#memory, this.#balancer, this.#surplus, this.#ticketKeys]) part?.stop();
      },
      stopWorkers: () => this.#workers.stopAll(),
      closeSockets: () => this.#sockets?.closeAll(),
      finish: (result) => {
        this.#reaper?.stop();
        this.#board?.close();
        this.#health?.close(result, shutdownExitCode(result));
        this.#shutdown.uninstall();
      },
    });
    this.#record.watch(this);
    this.#shutdown.install();
    this.#signals = new ControlSignals(settings, this);
    this.#signals.install();
  }

  /** In a successor: takes over the predecessor's slot sockets (checked first); the plan's reasons say so. */
  adopt(handover: Handover): void {
    this.#addReasons(adoptHandedSockets(loadBinding().binding, this.#handover, this.plan, handover));
    this.#handedHealthFd = handover.health;
    // The service goes on: its counts (this upgrade too) and its start.
    this.#record.takeOver(handover);
  }

  /** Takes the slot sockets systemd passed back (its fd store, or a socket unit). */
  adoptListenFds(passed: ListenFds): void {
    this.#addReasons(this.#systemd.adopt(loadBinding().binding, passed));
  }

  /** Every slot is served: systemd hears READY=1 (and keeps the sockets in its store). */
  serving(): void {
    this.#addReasons(this.#systemd.serving());
    this.#surplus?.start();
  }

  #addReasons(reasons: string[]): void {
    if (reasons.length > 0) this.plan = { ...this.plan, reasons: [...this.plan.reasons, ...reasons] };
  }

  get ports(): number[] {
    // Without a port a probe listened on and closed (its sockets were released).
    return this.#workers.ports.filter((port) => !this.#sockets?.gaveBack(port));
  }

  get pids(): number[] {
    return this.#workers.pids;
  }

  /** Whether every slot is served by its own worker and no shutdown or close has begun. */
  get ready(): boolean {
    return !this.#stop.begun && !this.#shutdown.begun && this.#workers.serving;
  }

  /** The slots a crash loop stopped (served by lending their sockets); empty when none. */
  get stopped(): number[] {
    return this.#workers.slots.filter((slot) => slot.stopped).map((slot) => slot.index);
  }

  get healthPort(): number | undefined {
    return this.#healthPort;
  }

  shutdown(options?: ShutdownOptions): Promise<ShutdownResult> {
    return this.#shutdown.start(options);
  }

  /** In a successor: the predecessor's ticket key, so that its sessions resume here too. */
  inheritTicketKey(key: Buffer | undefined): void {
    if (key && this.#settings.ticketKeys) this.#ticketKeys = this.#newTicketKeys(key);
  }

  #newTicketKeys(key?: Buffer): TicketKeys {
    return new TicketKeys((next) => {
      const keys = next.toString('base64');
      for (const slot of this.#workers.slots) if (slot.worker) this.#workers.send(slot.worker, supervisorMessage({ act: 'keys', keys }));
      this.emit('ticket-keys', { rotatedAt: Date.now() });
    }, key);
  }

  async start(): Promise<void> {
    const handed = this.#handedHealthFd;
    this.#handedHealthFd = undefined;
    if (!this.#health && handed !== undefined) fs.closeSync(handed);
    // On a failure startCluster closes it (no worker was started yet).
    if (this.#health && this.#settings.health) this.#healthPort = await this.#health.listen(this.#settings.health.port, this.#settings.health.host, handed);
    if (this.#settings.ticketKeys) {
      this.#ticketKeys ??= this.#newTicketKeys();
      this.#ticketKeys.start(this.#settings.ticketKeyRotationMs);
    }
    this.#checks?.start(this.#settings.foreignCheckMs);
    this.#balancer?.start();
    const held: (() => void)[] = [];
    this.#held = held;
    try {
      await Promise.all(this.#workers.slots.map((slot) => this.#workers.start(slot)));
      // A second port the app listens on right after its first is part of the start too.
      await whenQuiet(this, 'listening', () => this.#workers.pendingListens.any);
    } catch (error) {
      await this.close();
      throw error;
    } finally {
      this.#held = undefined;
    }
    this.#memory?.start();
    // Found while starting: told on the next turn, once startCluster's caller has its supervisor.
    if (held.length > 0)
      setImmediate(() => {
        for (const tell of held) tell();
      });
  }

  #tell(event: () => void): void {
    if (this.#held) this.#held.push(event);
    else event();
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
    return slotStats(this.#workers.slots, { stalls: this.#stalls, memory: this.#memory, balancer: this.#balancer });
  }

  /** Whether the workers are balanced (and why not), the spread of their open connections, the connections shed. */
  balance(): BalanceReport {
    return this.#balancer?.report() ?? { enabled: false, reason: this.#balanceOff, spread: 0, shed: 0 };
  }

  reload(): Promise<ReloadResult> {
    return this.#reloads.reload();
  }

  upgrade(options?: UpgradeOptions): Promise<UpgradeEvent> {
    for (const part of [this.#balancer, this.#stalls]) part?.pause('an upgrade');
    const upgrading = this.#upgrades.start(options);
    upgrading.catch(() => undefined).finally(() => [this.#balancer, this.#stalls].forEach((part) => part?.resume('an upgrade')));
    return upgrading;
  }

  /** Drains and stops every worker and closes the slot sockets (fleet/stop.ts), without a shutdown's delay or exit. */
  async close(): Promise<void> {
    await this.#stop.run({ how: 'close' });
  }
}

// `fn` on the first call only.
function once(fn: () => void): () => void {
  let called = false;
  return () => {
    if (!called) fn();
    called = true;
  };
}
