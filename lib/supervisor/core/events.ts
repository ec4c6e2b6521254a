// The supervisor's events, each name with what it carries: a misspelt name or a wrong payload does not
// compile, in the supervisor's parts (which are given `EmitEvent`) or in an app's listeners.

/** The 'fork' event: a worker was forked for a slot; with `output: 'pipe'`, its stdout and stderr. */
export interface ForkEvent {
  slot: number;
  pid: number;
  stdout: import('node:stream').Readable | null;
  stderr: import('node:stream').Readable | null;
}

/** The 'fork-failed' event: the slot's worker could not be forked (`spawn EMFILE`, `EAGAIN`); the slot is tried again with the restart back-off. */
export interface ForkFailedEvent {
  slot: number;
  code: string | undefined;
  message: string;
}

/** A successor that took over: its pid. */
export interface UpgradeEvent {
  pid: number;
}

/** A slot whose worker stopped answering, or came back. */
export interface StallEvent {
  slot: number;
  pid: number | undefined;
  /** The worker that serves the slot meanwhile. */
  lentTo?: number | undefined;
  /** On recovery: how long the slot was served by another worker. */
  stalledMs?: number;
  /**
   * A stall seen while a reload or an upgrade runs ('a reload', 'an upgrade'): new workers starting
   * take the CPU from old ones, so on a machine with few cores a short stall then is expected (the
   * slot is served by another worker meanwhile), not an alarm.
   */
  during?: string;
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

/** How a reload ended (its result and its 'reload' event): the new pids, connections its drains cut at drainTimeoutMs, and old workers that had to be killed. */
export interface ReloadResult {
  pids: number[];
  cut: number;
  killed: number[];
}

/**
 * reload() stopped: a new worker did not start, or did not live minUptimeMs. Its slot keeps its old
 * worker, as do the slots after its wave; the wave's other slots keep their new workers.
 */
export interface ReloadFailure extends Error {
  code: 'ERR_REUSEPORT_RELOAD_FAILED';
  /** The first slot whose new worker failed. */
  slot: number;
  /** Every slot of the wave whose new worker failed (they keep their old workers). */
  slots: number[];
  /** The new worker's pid, when it started (it died within minUptimeMs). */
  pid: number | undefined;
}

/** A slot stopped restarting: its workers died within minUptimeMs, maxRestarts times in a row after a start. */
export interface CrashLoopEvent {
  slot: number;
  /** The last worker's pid, exit code and signal. */
  pid: number;
  code: number | null;
  signal: string | null;
  restarts: number;
  /** What counted as dying young. */
  minUptimeMs: number;
  /** Every slot stopped so far, and how many slots are not stopped (serving, or being restarted; 0: nothing will serve). */
  stopped: number[];
  serving: number;
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

/** A worker listens on a slot socket (a reload's new worker too). */
export interface ListeningEvent {
  slot: number;
  pid: number | undefined;
  port: number;
}

/** A slot not refilled within slotTimeoutMs had its socket closed. */
export interface SlotClosedEvent {
  slot: number;
}

/** A graceful shutdown began (a signal, or shutdown() with no signal). */
export interface ShutdownEvent {
  signal: NodeJS.Signals | undefined;
  delayMs: number;
}

/** The TLS session-ticket keys were rotated and sent to every worker. */
export interface TicketKeysEvent {
  rotatedAt: number;
}

/** Stall protection is off: no accept queue can be read here. */
export interface StallDetectionOffEvent {
  reason: string;
}

/** The 'restart' event: a serving worker was replaced on purpose (`reason` 'memory': its RSS was over `limit`) by worker `by`; it drains. */
export interface RestartEvent {
  slot: number;
  pid: number;
  reason: 'memory';
  /** Its RSS (bytes) at the check that found it over the limit. */
  rss: number;
  limit: number;
  by: number;
}

/** The 'memory-limit-too-low' event: the slot's fresh workers are over maxMemoryRestart at once; its workers are no longer recycled. */
export interface MemoryLimitEvent {
  slot: number;
  pid: number;
  rss: number;
  limit: number;
}

/** Every event a supervisor emits, and its arguments. */
export interface SupervisorEventMap {
  fork: [ForkEvent];
  'fork-failed': [ForkFailedEvent];
  listening: [ListeningEvent];
  exit: [WorkerExit];
  'slot-closed': [SlotClosedEvent];
  'crash-loop': [CrashLoopEvent];
  stall: [StallEvent];
  recover: [StallEvent];
  'stall-replace': [StallEvent];
  'stall-detection-off': [StallDetectionOffEvent];
  foreign: [ForeignSocketEvent];
  reload: [ReloadResult];
  'reload-failed': [ReloadFailure | Error];
  upgrade: [UpgradeEvent];
  'upgrade-failed': [Error];
  shutdown: [ShutdownEvent];
  'ticket-keys': [TicketKeysEvent];
  restart: [RestartEvent];
  'memory-limit-too-low': [MemoryLimitEvent];
}

/** The names of the supervisor's events. */
export type SupervisorEventName = keyof SupervisorEventMap;

/** Emits one of the supervisor's events: what its parts are given instead of the emitter itself. */
export type EmitEvent = <K extends SupervisorEventName>(event: K, ...args: SupervisorEventMap[K]) => void;
