// startCluster's public shapes: its options, the supervisor it returns, and the payloads of its events.
import type { EventEmitter } from 'node:events';
import type { ModeChoice, Plan } from '../../plan/plan';
import type { ForkEvent, ReloadResult, SupervisorEventMap, UpgradeEvent } from './events';

export type {
  CrashLoopEvent,
  ForeignSocketEvent,
  ForkEvent,
  ForkFailedEvent,
  ReloadFailure,
  ReloadResult,
  StallEvent,
  UpgradeEvent,
  WorkerExit,
} from './events';

/** Whether new connections are steered on one address, and why (not). */
export interface SteeringState {
  address: string;
  port: number;
  enabled: boolean;
  /** Whether the program is the sticky one (sticky: 'ip'): every connection of one client address to one slot. */
  sticky: boolean;
  reason: string;
}

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
  /**
   * The workers' stdout and stderr: 'inherit' (default), this process's own; or a function, which
   * gets a pipe of each for every worker as it is forked ({ slot, pid, stdout, stderr }, also the
   * 'fork' event) and must read them (it may pause them: a full pipe blocks the worker's writes, as
   * a stalled terminal would).
   */
  output?: 'inherit' | ((event: ForkEvent) => void);
  /** Extra environment for the workers. */
  env?: Record<string, string>;
  /** The variable giving each worker its slot index 0..workers-1, stable across restarts, reloads and upgrades (PM2's `instance_var`; REUSEPORT_SLOT too, always). Default 'NODE_APP_INSTANCE'. */
  instanceVar?: string;
  /** Node flags for every worker after this process's own execArgv, as PM2's `node_args` (`['--import', 'tsx']`); every new worker gets them. Default none. */
  nodeArgs?: string[];
  /**
   * Become a child subreaper (Linux prctl) and reap the orphans of the workers' trees as an init does,
   * never a child of this process's own; always on as PID 1. Default false (ERR_REUSEPORT_MODE_UNSUPPORTED where impossible).
   */
  subreaper?: boolean;
  /**
   * Bytes: a worker whose RSS is over it is replaced as a reload replaces its slot (PM2's
   * `max_memory_restart`, without the kill); checked once a second (Linux /proc). Default 0: off.
   */
  maxMemoryRestart?: number;
  /**
   * Whether the workers preload the hook (reuseport/register, as `--require` in their execArgv), so
   * that an app's ordinary `server.listen(port)` listens on its slot's socket. Default true; false
   * leaves the workers' listens to Node (the app must then call listenReusePort). The app's own
   * `fork()`s inherit the flag, as they inherit any of execArgv.
   */
  register?: boolean;
  /** How long a draining worker may take to finish its requests before its connections are cut. Default 10 s. */
  drainTimeoutMs?: number;
  /** How long a new worker may take to listen. Default 30 s. */
  readyTimeoutMs?: number;
  /** Reload on SIGHUP. Default false. */
  reloadOnSighup?: boolean;
  /** Delay before replacing a worker that died; doubles while replacements keep dying (within minUptimeMs), up to 1 s. Default 100 ms. */
  restartDelayMs?: number;
  /**
   * A worker that dies within this long of its start (whether or not it listened) counts as a crash,
   * as PM2's min_uptime; and a reload's new worker must live this long before the old one drains
   * (else the reload stops there and rejects, and the old workers keep serving). Default 1000 ms; 0
   * counts only deaths before listening and lets a reload go on as soon as the new worker listens.
   */
  minUptimeMs?: number;
  /**
   * After this many restarts in a row that each died within minUptimeMs, the slot stops restarting
   * (a 'crash-loop' event): its socket stays open and is lent to the live workers. A reload starts
   * a stopped slot again. Default 16, as PM2's max_restarts.
   */
  maxRestarts?: number;
  /**
   * How many extra processes a reload keeps alive at once: new workers living out minUptimeMs plus
   * old workers draining. After the canary (slot 0), a reload replaces the slots in waves of up to
   * this many, every new worker of a wave started at once; old workers drain side by side, so a
   * reload with long-lived connections takes about one drainTimeoutMs, not one per worker. 1 is one
   * slot at a time (the next slot waits for the last drain), for apps with little memory to spare.
   * Default: workers (no cap: one wave after the canary).
   */
  maxDraining?: number;
  /** A slot not refilled within this long has its socket closed (its queue then goes to the other slots where the kernel migrates it); never with `sticky`. Default 30 s. */
  slotTimeoutMs?: number;
  /**
   * How many listening addresses one worker may have the primary hold sockets for: slot sockets lent to
   * it (one per address and port it listens on; each costs the primary one socket per slot) and port
   * reservations. Past it the worker's listen fails with ERR_REUSEPORT_TOO_MANY_SOCKETS, so an app
   * that listens on ports without end cannot exhaust the primary's file descriptors. Default 64.
   */
  maxSocketsPerWorker?: number;
  /**
   * Stall protection (reuseport mode): a worker whose slot has connections waiting and that neither
   * accepts one (its progress cell, on Linux) nor answers the supervisor's ping for this long, or a
   * slot with no worker, has its slot socket lent to a live worker until it is back. 0 turns it off.
   * Default 80 ms.
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
  /**
   * Sticky sessions in the kernel (Linux, reuseport mode with the addon): 'ip' sends every new
   * connection from one client address to one slot, by a rendezvous hash of the address (not the
   * port) in the steering program, so a session kept in a worker's memory (socket.io's long polling,
   * in-process sessions) sees all of its client's requests. A reload, a stall or a crash keeps the
   * mapping; a change of worker count moves about |new - old| / max(new, old) of the clients. A slot
   * keeps its socket while it has no worker (slotTimeoutMs does not close it). Exclusive with
   * `cpuLocal`; at most 289 workers. Where it cannot be kept (not Linux, no addon, another listener
   * on the port first, the attach fails) startCluster fails: never a silent fallback. See
   * docs/sticky.md. Default false.
   */
  sticky?: 'ip' | false;
  /**
   * With `sticky: 'ip'`: how many leading bits of an IPv6 client address are hashed (1-128). 64 keeps
   * a host whose privacy addresses (RFC 8981) change within its /64 on one worker, and with it every
   * host of that /64. IPv4 addresses are hashed whole. Default 128.
   */
  stickyIpv6Prefix?: number;
  /**
   * Balance (Linux, reuseport mode with the addon): each worker publishes its open connections in
   * shared memory, and a worker holding more than its share of keep-alive connections answers a few
   * requests with `Connection: close` (HTTP/1.1 only), so a proxy's keep-alive pool spreads evenly
   * over the workers (see docs/balance.md). Off with `sticky` or `cpuLocal`, paused during a reload
   * or an upgrade. Default true; false turns it off (`--no-balance`).
   */
  balance?: boolean;
  /**
   * Upgrade in place on SIGUSR2: start a successor (this command line again), hand it the slot
   * sockets, and drain and exit once it serves every slot. Default false (Node uses SIGUSR1 for its
   * inspector; SIGUSR2 is free unless the app uses it).
   */
  upgradeOnSigusr2?: boolean;
  /**
   * Signals that shut the service down gracefully: readiness fails at once, the workers keep serving
   * for `shutdownDelayMs`, then drain, and the process exits 0 (non-zero if the drain had to cut
   * connections). A second signal ends at once. Default ['SIGTERM', 'SIGINT']; false leaves signals alone.
   */
  shutdownSignals?: NodeJS.Signals[] | false;
  /** How long to keep serving after a shutdown signal, so that balancers stop sending first. Default 0, or 5 s in Kubernetes (KUBERNETES_SERVICE_HOST set). */
  shutdownDelayMs?: number;
  /** A health server of the supervisor's own (so a stalled worker cannot make it lie): GET /ready, /live, /metrics. */
  health?: HealthOptions;
  /**
   * TLS session tickets that resume on every worker: the supervisor makes the ticket key and gives it
   * to each worker whose server is a tls.Server (https, http2 secure, tls) before it listens. Default
   * true; false leaves each worker its own random key (a reconnect then resumes only on the worker
   * that issued the ticket).
   */
  ticketKeys?: boolean;
  /** How often every worker gets a new ticket key, at the same moment (tickets sealed with the old one then need a full handshake). Default 12 h; 1 s to 24 days. */
  ticketKeyRotationMs?: number;
}

/**
 * What the `reuseport` runner adds to startCluster's options (not part of the public API): how its
 * command line is to be read, told to an upgrade's successor in the hand-over (a runner that reruns
 * its command line reads it so). Default none.
 */
export interface RunnerStartOptions extends StartClusterOptions {
  commandSyntax?: string;
}

/** Where the supervisor's health server listens. */
export interface HealthOptions {
  port: number;
  /** Default '127.0.0.1'; '::' or '0.0.0.0' for a balancer on another host. */
  host?: string;
}

/** Options of supervisor.shutdown(). */
export interface ShutdownOptions {
  /** Keep serving this long first (default: shutdownDelayMs). */
  delayMs?: number;
  /** Exit the process when done (0, or 1 if connections were cut). Default true. */
  exit?: boolean;
}

/** How a shutdown ended: connections the drain had to cut, and workers that had to be killed. */
export interface ShutdownResult {
  cut: number;
  killed: number[];
}

/** Options of supervisor.upgrade(). */
export interface UpgradeOptions {
  /**
   * The successor's command line, [file, ...args]. Default: this process's own
   * (process.execPath, process.execArgv, process.argv.slice(1)), so new code on disk and a new Node
   * binary at the same path are picked up.
   */
  command?: string[];
  /** How long the successor may take to serve every slot before it is stopped. Default: readyTimeoutMs. */
  readyTimeoutMs?: number;
  /** Exit 0 once the successor serves and this supervisor's workers have drained. Default true. */
  exit?: boolean;
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
  /** A crash loop stopped restarting the slot (maxRestarts); its socket is lent to the live workers. */
  stopped: boolean;
  /** With maxMemoryRestart: the worker's RSS at the last check (bytes), and the slot's workers replaced for memory. */
  rss?: number;
  memoryRestarts?: number;
  /** Balance: the slot's worker's open connections at the last read (every 50 ms; undefined without it), and the keep-alive connections it shed. */
  connections?: number;
  shed?: number;
  /** Balance: the slot's steering weight (its share of new connections is its weight over the sum), once the loads were weighed. */
  weight?: number;
}

/** The running cluster: `pids`, `reload()`, `upgrade()`, `close()`, `stats()`, `steering()`, and the events of SupervisorEventMap (core/events.ts). */
export interface Supervisor extends EventEmitter<SupervisorEventMap> {
  /** The plan every worker follows. */
  readonly plan: Plan;
  /** The live workers' pids, slot by slot (kept current). */
  readonly pids: number[];
  /** The ports the workers listen on (port 0 resolved), in the order first seen. */
  readonly ports: number[];
  /**
   * Replaces every worker: a canary (slot 0's new worker listens and lives minUptimeMs before its
   * old one drains), then the other slots in waves of at most maxDraining, each new worker of a wave
   * started at once and living minUptimeMs before its own old worker drains; resolves when every old
   * worker is gone, with what the drains cut. Rejects with ERR_REUSEPORT_RELOAD_FAILED (`slots`) after
   * a wave where a new worker did not start or died within minUptimeMs: those slots and the slots
   * after the wave keep their old workers.
   */
  reload(): Promise<ReloadResult>;
  /** Drains and stops every worker and closes the slot sockets. */
  close(): Promise<void>;
  /**
   * Replaces the whole service with a successor that adopts the same slot sockets (nothing queued is
   * reset): resolves once it serves every slot and this supervisor's workers have drained (then
   * exits 0 unless `exit: false`). A successor that exits, fails or is late is stopped, and this one
   * keeps serving; the promise rejects with ERR_REUSEPORT_UPGRADE_FAILED.
   */
  upgrade(options?: UpgradeOptions): Promise<UpgradeEvent>;
  /**
   * Graceful shutdown (what shutdownSignals run): readiness fails at once, keep serving for the delay,
   * drain every worker, close; then exit 0 (1 if the drain cut connections) unless `exit: false`.
   */
  shutdown(options?: ShutdownOptions): Promise<ShutdownResult>;
  /**
   * Whether every slot is served by its own worker and no shutdown has begun (what GET /ready says);
   * slots a crash loop stopped do not count against it while any worker serves (see `stopped`).
   */
  readonly ready: boolean;
  /** The slots a crash loop stopped ('crash-loop'): the service is degraded while there are any. */
  readonly stopped: number[];
  /** The port the health server listens on (health.port 0 resolved), if there is one. */
  readonly healthPort: number | undefined;
  /** Per slot: connections accepted, stalls seen, queue depth, who serves it now if not its own worker, and its CPU in CPU-local mode. */
  stats(): SlotStats[];
  /** Per address: whether new connections are steered (Linux cBPF), and why not. */
  steering(): SteeringState[];
}
