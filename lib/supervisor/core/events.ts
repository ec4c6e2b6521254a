// The supervisor's events, each name with what it carries: a misspelt name or a wrong payload does not
// compile, in the supervisor's parts (which are given `EmitEvent`) or in an app's listeners.
import type { CrashLoopEvent, ForeignSocketEvent, ForkEvent, ForkFailedEvent, ReloadFailure, ReloadResult, StallEvent, UpgradeEvent, WorkerExit } from './types';

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
}

/** The names of the supervisor's events. */
export type SupervisorEventName = keyof SupervisorEventMap;

/** Emits one of the supervisor's events: what its parts are given instead of the emitter itself. */
export type EmitEvent = <K extends SupervisorEventName>(event: K, ...args: SupervisorEventMap[K]) => void;
