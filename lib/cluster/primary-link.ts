// What setupPrimary() shares with listenReusePort() in workers: the plan the primary chose (through
// the environment workers inherit) and port reservations (a request on the channel of ipc.ts).
import cluster from 'node:cluster';
import type { Plan } from '../plan/plan';
import { request, reviveError } from './ipc';

/** What the primary tells its workers: the plan and the scheduling policy in force. */
export interface SharedPlan extends Plan {
  /** The pid of the primary that chose it; a worker of another primary ignores it. */
  primaryPid: number;
  /** The cluster scheduling policy in the primary: 'rr' (round-robin) or 'none' (shared handle). */
  policy: 'rr' | 'none';
}

/** The environment variable that carries the primary's plan to the workers it forks. */
export const PLAN_ENV = 'REUSEPORT_PLAN';

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

/** Asks the primary for the port all workers share on `address` (for port 0); rejects after a bound. */
export async function reservePort(address: string, ipv6Only: boolean, timeoutMs = 10_000): Promise<number> {
  const { reply } = await request({ act: 'reserve', address, ipv6Only }, timeoutMs, { who: 'the cluster primary', what: 'answer a port reservation' });
  if (reply.port !== undefined) return reply.port;
  throw reviveError(reply.error, 'port reservation failed');
}
