// The private channel between a cluster primary (setupPrimary, startCluster) and its workers, written
// once: the message types, the internal channel, one request/reply with an id and a timeout, errors
// serialised and revived, and dispatch by `act`. What arrives from a worker is checked in
// ipc-validate.ts before anything here acts on it (a worker runs app code).
//
// Node delivers messages whose `cmd` starts with "NODE_" as 'internalMessage', never as 'message',
// so the user's own cluster message handlers do not see ours (node:cluster uses the same channel).
// The names on the wire stay as they were: a worker may run another copy (another version) of this
// package than its primary's, and the runner's and the app's copies in one worker share one sequence.

export const COMMAND = 'NODE_REUSEPORT';
type Command = typeof COMMAND;

/** The process as Node's cluster code sees it: it also emits 'internalMessage' (with a handle, if one came). */
export type InternalProcess = NodeJS.Process & {
  on(event: 'internalMessage', listener: (message: unknown, handle: unknown) => void): InternalProcess;
  off(event: 'internalMessage', listener: (message: unknown, handle: unknown) => void): InternalProcess;
};

/** This process's internal channel (to its primary, in a worker). */
export const channel = process as InternalProcess;

/** Listens to a worker's internal channel, in the primary (node:cluster delivers our messages there, not as 'message'). */
export function onInternalMessage(child: import('node:child_process').ChildProcess, listener: (message: unknown, handle: unknown) => void): void {
  (child as unknown as Pick<InternalProcess, 'on'>).on('internalMessage', listener);
}

/** An error as it crosses the channel: Node's own fields, no stack. */
export interface WireError {
  message: string;
  code?: string;
  errno?: number;
  syscall?: string;
  address?: string;
  port?: number;
}

// ---- Worker to primary -------------------------------------------------------------------------

/** A worker's request for the port every worker of the cluster shares for a given address (setupPrimary). */
export interface ReserveRequest {
  cmd: Command;
  act: 'reserve';
  seq: number;
  address: string;
  ipv6Only: boolean;
}

/** A supervised worker asks for its slot's socket on address:port. */
export interface SlotRequest {
  cmd: Command;
  act: 'slot';
  seq: number;
  address: string;
  port: number;
  ipv6Only: boolean;
  group: string | false;
}

/** A worker with a TLS server asks for the session-ticket keys before it listens. */
export interface KeysRequest {
  cmd: Command;
  act: 'keys-request';
  seq: number;
}

/** The worker listens on its slot (port: as bound). */
export interface ListeningMessage {
  cmd: Command;
  act: 'listening';
  slot: number;
  port: number;
}

/** The app closed its server on a lent socket (not a drain): address as asked for, port as bound. */
export interface ReleaseMessage {
  cmd: Command;
  act: 'release';
  address: string;
  port: number;
  ipv6Only: boolean;
}

/** A drain ended; `destroyed`: connections it had to cut at its timeout. */
export interface DrainedMessage {
  cmd: Command;
  act: 'drained';
  destroyed: number;
}

/** A worker's accept counts per slot since it started: ACCEPT_REPORT_MS after it accepts (with a progress cell, only after an accept from a lent slot: the own slot's count is in the cell), and in answer to a ping. */
export interface BeatMessage {
  cmd: Command;
  act: 'beat';
  slot: number;
  accepted: Record<string, number>;
}

/** A listen in the worker failed, so startCluster() or reload() rejects with the real error. */
export interface FailedMessage {
  cmd: Command;
  act: 'failed';
  slot: number;
  error: WireError;
}

/** Requests a worker sends with a `seq`, answered by the act beside each. */
export const REPLY_TO = { reserve: 'reserved', slot: 'slot-reply', 'keys-request': 'keys' } as const;

export type WorkerRequest = ReserveRequest | SlotRequest | KeysRequest;
/** Everything a worker sends to its primary. */
export type WorkerMessage = WorkerRequest | ListeningMessage | ReleaseMessage | DrainedMessage | BeatMessage | FailedMessage;

// ---- Primary to worker -------------------------------------------------------------------------

/** The primary's answer to a reservation: the shared port, or why there is none. */
export interface ReserveReply {
  cmd: Command;
  act: 'reserved';
  seq: number;
  port?: number;
  error?: WireError;
}

/** The primary's answer to a worker that asked for its slot's socket (the handle travels beside it). */
export interface SlotReply {
  cmd: Command;
  act: 'slot-reply';
  seq: number;
  port?: number;
  /** How the supervisor steers connections on this address, for the worker's reasons. */
  steering?: string;
  error?: WireError;
}

/** The supervisor's ticket keys (48 bytes, base64), in answer (seq) or at a rotation; none: keep your own. */
export interface KeysMessage {
  cmd: Command;
  act: 'keys';
  seq?: number;
  keys?: string;
}

/** The primary's answer to a request it cannot take (malformed, unknown, over a limit): `error.code` says why. */
export interface ErrorReply {
  cmd: Command;
  act: 'error';
  seq: number;
  error: WireError;
}

/** Everything a primary sends to a worker. */
export type PrimaryMessage =
  | ReserveReply
  | SlotReply
  | KeysMessage
  | ErrorReply
  | { cmd: Command; act: 'drain'; timeoutMs?: number }
  /** The supervisor asks a worker whose slot has connections waiting whether it answers. */
  | { cmd: Command; act: 'ping' }
  | { cmd: Command; act: 'lend'; slot: number; port: number }
  | { cmd: Command; act: 'recall'; slot: number }
  /** The supervisor asks a worker over its share to shed keep-alive connections down to `limit`; null: stop. */
  | { cmd: Command; act: 'balance'; limit: number | null };

/** Every message on the channel, either way. */
export type SupervisorMessage = WorkerMessage | PrimaryMessage;
export type Act = SupervisorMessage['act'];

type WithoutCmd<T> = T extends unknown ? Omit<T, 'cmd'> : never;

/** Wraps a message for the internal channel. */
export function supervisorMessage<B extends WithoutCmd<SupervisorMessage>>(body: B): B & { cmd: Command } {
  return { cmd: COMMAND, ...body };
}

/** Whether a message is one of ours (its fields unchecked: see ipc-validate.ts for those from a worker). */
export function isSupervisorMessage(message: unknown): message is SupervisorMessage {
  return typeof message === 'object' && message !== null && (message as { cmd?: unknown }).cmd === COMMAND;
}

// ---- Errors ------------------------------------------------------------------------------------

const WIRE_STRING = 1_024;
/** The longest error message that crosses the channel (a longer one is cut there). */
export const MAX_ERROR_TEXT = 16_384;

/** What of an error crosses the channel: its message and Node's fields, where they have their types. */
export function serializeError(error: unknown): WireError {
  const source = (typeof error === 'object' && error !== null ? error : { message: String(error) }) as Record<string, unknown>;
  const wire: WireError = { message: (typeof source.message === 'string' ? source.message : String(error)).slice(0, MAX_ERROR_TEXT) };
  if (typeof source.code === 'string') wire.code = source.code.slice(0, WIRE_STRING);
  if (typeof source.errno === 'number') wire.errno = source.errno;
  if (typeof source.syscall === 'string') wire.syscall = source.syscall.slice(0, WIRE_STRING);
  if (typeof source.address === 'string') wire.address = source.address.slice(0, WIRE_STRING);
  if (typeof source.port === 'number') wire.port = source.port;
  return wire;
}

/** An Error again from its wire form (`fallback` when none came); `suffix` is added to its message. */
export function reviveError(wire: WireError | undefined, fallback: string, suffix = ''): Error {
  const { message, ...fields } = wire ?? { message: fallback };
  return Object.assign(new Error(`${message}${suffix}`), fields);
}

// ---- Request and reply (worker side) -----------------------------------------------------------

// One sequence of request numbers per process, shared by every copy of the package loaded in it (the
// runner's and the app's own), so a reply is never taken by the other copy's request of the same number.
const SEQUENCE = Symbol.for('reuseport.sequence');

/** The next request number of this process's requests to its primary. */
export function nextSequence(): number {
  const holder = globalThis as typeof globalThis & { [SEQUENCE]?: number };
  holder[SEQUENCE] = (holder[SEQUENCE] ?? 0) + 1;
  return holder[SEQUENCE];
}

/** node:cluster's own messages on the same channel (a worker that listens on a socket of its own sends 'listening'). */
export interface NodeClusterMessage {
  cmd: 'NODE_CLUSTER';
  act: string;
  [field: string]: unknown;
}

/** Sends to the primary; once the channel is gone there is no one to tell (and cluster exits the worker). */
export function toPrimary(message: WorkerMessage | NodeClusterMessage): void {
  if (process.connected) process.send?.(message, undefined, {}, () => undefined);
}

type ReplyOf<A extends WorkerRequest['act']> = Extract<PrimaryMessage, { act: (typeof REPLY_TO)[A] }>;

/**
 * Sends a request to the primary and resolves with its reply (and the handle that came with it);
 * rejects with the primary's coded error when it refused the request, or after `timeoutMs` with
 * "reuseport: <who> did not <what> within N ms".
 */
export function request<A extends WorkerRequest['act']>(
  body: WithoutCmd<Omit<Extract<WorkerRequest, { act: A }>, 'seq'>> & { act: A },
  timeoutMs: number,
  unanswered: { who: string; what: string },
): Promise<{ reply: ReplyOf<A>; handle: unknown }> {
  const seq = nextSequence();
  const expected = REPLY_TO[body.act];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      channel.off('internalMessage', onMessage);
      reject(new Error(`reuseport: ${unanswered.who} did not ${unanswered.what} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (message: unknown, handle: unknown) => {
      if (!isSupervisorMessage(message) || (message as { seq?: unknown }).seq !== seq) return;
      if (message.act !== expected && message.act !== 'error') return;
      clearTimeout(timer);
      channel.off('internalMessage', onMessage);
      if (message.act === 'error') reject(reviveError((message as ErrorReply).error, 'the primary refused the request'));
      else resolve({ reply: message as ReplyOf<A>, handle });
    };
    channel.on('internalMessage', onMessage);
    toPrimary({ cmd: COMMAND, ...body, seq } as unknown as WorkerMessage);
  });
}

// ---- Dispatch ----------------------------------------------------------------------------------

/** A handler for each act a side takes; `context`: what the side passes along (the worker, the handle). */
export type Handlers<M extends { act: string }, C extends unknown[]> = { [A in M['act']]?: (message: Extract<M, { act: A }>, ...context: C) => void };

/** Calls the handler of the message's act; false when there is none. */
export function dispatch<M extends { act: string }, C extends unknown[]>(handlers: Handlers<M, C>, message: M, ...context: C): boolean {
  const handler = (handlers as Record<string, ((message: M, ...context: C) => void) | undefined>)[message.act];
  if (!Object.hasOwn(handlers, message.act) || !handler) return false;
  handler(message, ...context);
  return true;
}
