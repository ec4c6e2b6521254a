// The private channel between setupPrimary() and listenReusePort() in workers: the plan the primary
// chose (through the environment workers inherit) and port reservations (through internal IPC).
import cluster from 'node:cluster';
import type { Plan } from '../plan/plan';

/** What the primary tells its workers: the plan and the scheduling policy in force. */
export interface SharedPlan extends Plan {
  /** The pid of the primary that chose it; a worker of another primary ignores it. */
  primaryPid: number;
  /** The cluster scheduling policy in the primary: 'rr' (round-robin) or 'none' (shared handle). */
  policy: 'rr' | 'none';
}

/** The environment variable that carries the primary's plan to the workers it forks. */
export const PLAN_ENV = 'REUSEPORT_PLAN';

// Node delivers messages whose `cmd` starts with "NODE_" as 'internalMessage', never as 'message',
// so the user's own cluster message handlers do not see ours (node:cluster uses the same channel).
const COMMAND = 'NODE_REUSEPORT';

/** A worker's request for the port every worker of the cluster shares for a given address. */
export interface ReserveRequest {
  cmd: typeof COMMAND;
  act: 'reserve';
  seq: number;
  address: string;
  ipv6Only: boolean;
}

/** The primary's answer: the shared port, or why there is none. */
export interface ReserveReply {
  cmd: typeof COMMAND;
  act: 'reserved';
  seq: number;
  port?: number;
  error?: { message: string; code?: string; errno?: number; syscall?: string };
}

/** The plan this worker's primary shared, if it called setupPrimary() (and is this worker's parent). */
export function readSharedPlan(env: NodeJS.ProcessEnv = process.env): SharedPlan | undefined {
  const text = env[PLAN_ENV];
  if (!text || !cluster.isWorker) return undefined;
  try {
    const plan = JSON.parse(text) as SharedPlan;
    return plan.primaryPid === process.ppid ? plan : undefined;
  } catch {
    return undefined;
  }
}

/** The scheduling policy of this worker's primary, when it did not share a plan: env, else Node's default. */
export function inheritedPolicy(env: NodeJS.ProcessEnv = process.env): 'rr' | 'none' {
  const fromEnv = env.NODE_CLUSTER_SCHED_POLICY;
  if (fromEnv === 'rr' || fromEnv === 'none') return fromEnv;
  return process.platform === 'win32' ? 'none' : 'rr';
}

type InternalProcess = NodeJS.Process & {
  on(event: 'internalMessage', listener: (message: unknown) => void): InternalProcess;
  off(event: 'internalMessage', listener: (message: unknown) => void): InternalProcess;
};

// One sequence of request numbers per process, shared by every copy of the package loaded in it (the
// runner's and the app's own), so a reply is never taken by the other copy's request of the same number.
const SEQUENCE = Symbol.for('reuseport.sequence');

/** The next request number of this process's requests to its primary. */
export function nextSequence(): number {
  const holder = globalThis as typeof globalThis & { [SEQUENCE]?: number };
  holder[SEQUENCE] = (holder[SEQUENCE] ?? 0) + 1;
  return holder[SEQUENCE];
}

/** Asks the primary for the port all workers share on `address` (for port 0); rejects after a bound. */
export function reservePort(address: string, ipv6Only: boolean, timeoutMs = 10_000): Promise<number> {
  const channel = process as InternalProcess;
  const seq = nextSequence();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      channel.off('internalMessage', onMessage);
      reject(new Error(`reuseport: the cluster primary did not answer a port reservation within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (message: unknown) => {
      const reply = message as Partial<ReserveReply>;
      if (reply?.cmd !== COMMAND || reply.act !== 'reserved' || reply.seq !== seq) return;
      clearTimeout(timer);
      channel.off('internalMessage', onMessage);
      if (reply.port !== undefined) return resolve(reply.port);
      reject(Object.assign(new Error(reply.error?.message ?? 'port reservation failed'), reply.error));
    };
    channel.on('internalMessage', onMessage);
    const request: ReserveRequest = { cmd: COMMAND, act: 'reserve', seq, address, ipv6Only };
    process.send?.(request);
  });
}

/** Messages between startCluster() and its workers, on the same internal channel. */
export type SupervisorMessage =
  | { cmd: typeof COMMAND; act: 'slot'; seq: number; address: string; port: number; ipv6Only: boolean; group: string | false }
  | SlotReply
  | { cmd: typeof COMMAND; act: 'listening'; slot: number; port: number }
  /** The app closed its server on a lent socket (not a drain): address as asked for, port as bound. */
  | { cmd: typeof COMMAND; act: 'release'; address: string; port: number; ipv6Only: boolean }
  | { cmd: typeof COMMAND; act: 'drain'; timeoutMs?: number }
  | { cmd: typeof COMMAND; act: 'drained'; destroyed: number }
  /** A worker's accept counts: ACCEPT_REPORT_MS after it accepts, and in answer to a ping (which it is alive to give). */
  | { cmd: typeof COMMAND; act: 'beat'; slot: number; accepted: Record<string, number> }
  /** The supervisor asks a worker whose slot has connections waiting whether it answers. */
  | { cmd: typeof COMMAND; act: 'ping' }
  | { cmd: typeof COMMAND; act: 'lend'; slot: number; port: number }
  | { cmd: typeof COMMAND; act: 'recall'; slot: number }
  /** The supervisor asks a worker over its share to shed keep-alive connections down to `limit`; null: stop. */
  | { cmd: typeof COMMAND; act: 'balance'; limit: number | null }
  /** A worker with a TLS server asks for the session-ticket keys before it listens. */
  | { cmd: typeof COMMAND; act: 'keys-request'; seq: number }
  /** The supervisor's ticket keys (48 bytes, base64), in answer (seq) or at a rotation; none: keep your own. */
  | { cmd: typeof COMMAND; act: 'keys'; seq?: number; keys?: string }
  | { cmd: typeof COMMAND; act: 'failed'; slot: number; error: { message: string; code?: string; errno?: number; syscall?: string; address?: string; port?: number } };

/** The primary's answer to a worker that asked for its slot's socket (the handle travels beside it). */
export interface SlotReply {
  cmd: typeof COMMAND;
  act: 'slot-reply';
  seq: number;
  port?: number;
  /** How the supervisor steers connections on this address, for the worker's reasons. */
  steering?: string;
  error?: { message: string; code?: string; errno?: number; syscall?: string; address?: string; port?: number };
}

type WithoutCmd<T> = T extends unknown ? Omit<T, 'cmd'> : never;

/** Wraps a supervisor message for the internal channel. */
export function supervisorMessage(body: WithoutCmd<SupervisorMessage>): SupervisorMessage {
  return { cmd: COMMAND, ...body } as SupervisorMessage;
}

/** Whether a message is one of ours. */
export function isSupervisorMessage(message: unknown): message is SupervisorMessage {
  return (message as { cmd?: unknown } | null)?.cmd === COMMAND;
}

/** Whether a message from a worker is a port reservation request. */
export function isReserveRequest(message: unknown): message is ReserveRequest {
  const request = message as Partial<ReserveRequest> | null;
  return request?.cmd === COMMAND && request.act === 'reserve' && typeof request.address === 'string';
}

/** Builds the reply to a reservation. */
export function reserveReply(seq: number, outcome: { port: number } | { error: ReserveReply['error'] }): ReserveReply {
  return { cmd: COMMAND, act: 'reserved', seq, ...outcome };
}
