// setupPrimary(): in the cluster primary, before forking, choose the plan once for every worker.
import cluster, { type Worker } from 'node:cluster';
import { type NativeBinding, loadBinding } from '../binding';
import { modeUnsupported } from '../errors';
import { gatherFacts } from '../plan/facts';
import { type Plan, type PlanOptions, planListen } from '../plan/plan';
import { PLAN_ENV, type SharedPlan, isReserveRequest, reserveReply } from './primary-link';

/** Options of setupPrimary: the mode to use ('auto' by default, or REUSEPORT_MODE). */
export type SetupPrimaryOptions = PlanOptions;

// Port 0 in reuseport mode: the primary binds (never listens on) one socket per address, so every
// worker, and every replacement worker later, joins the same port.
const reserved = new Map<string, { fd: number; port: number }>();
let answering = false;

function reserve(binding: NativeBinding | undefined, address: string, ipv6Only: boolean): number {
  const key = `${address}|${ipv6Only}`;
  const known = reserved.get(key);
  if (known) return known.port;
  if (!binding) throw new Error('reuseport: the primary cannot reserve a port without the native addon');
  const socket = binding.openListener({ address, port: 0, ipv6Only, listen: false });
  reserved.set(key, { fd: socket.fd, port: socket.port });
  return socket.port;
}

function answerReservations(worker: Worker): void {
  worker.process.on('internalMessage' as 'message', (message: unknown) => {
    if (!isReserveRequest(message)) return;
    let reply: ReturnType<typeof reserveReply>;
    try {
      reply = reserveReply(message.seq, { port: reserve(loadBinding().binding, message.address, message.ipv6Only) });
    } catch (error) {
      const { code, errno, syscall } = error as { code?: string; errno?: number; syscall?: string };
      reply = reserveReply(message.seq, { error: { message: (error as Error).message, code, errno, syscall } });
    }
    if (worker.isConnected()) worker.process.send(reply as never);
  });
}

function policyFor(plan: Plan): number {
  if (plan.mode === 'round-robin') return cluster.SCHED_RR;
  if (plan.mode === 'shared') return cluster.SCHED_NONE;
  return cluster.schedulingPolicy;
}

/**
 * Call in the cluster primary before forking: chooses the plan for all workers, sets
 * `cluster.schedulingPolicy` to match, and passes the plan to workers (listenReusePort there follows
 * it). Returns the plan. Workers forked without it still work; they decide for themselves.
 */
export function setupPrimary(options?: SetupPrimaryOptions): Plan {
  if (!cluster.isPrimary) {
    throw modeUnsupported('setupPrimary() must be called in the cluster primary, not in a worker.');
  }
  const plan = planListen({ ...gatherFacts(), role: 'primary' }, options);
  const policy = policyFor(plan);
  const forked = Object.keys(cluster.workers ?? {}).length > 0 || cluster.settings.exec !== undefined;
  if (forked && policy !== cluster.schedulingPolicy) {
    throw modeUnsupported(
      `setupPrimary() chose '${plan.mode}', which needs cluster.schedulingPolicy = ${policy === cluster.SCHED_RR ? 'SCHED_RR' : 'SCHED_NONE'}, ` +
        'but node:cluster fixed its policy when the first worker was forked. Call setupPrimary() before cluster.fork() or cluster.setupPrimary().',
    );
  }
  cluster.schedulingPolicy = policy;
  const shared: SharedPlan = {
    ...plan,
    primaryPid: process.pid,
    policy: cluster.schedulingPolicy === cluster.SCHED_NONE ? 'none' : 'rr',
  };
  process.env[PLAN_ENV] = JSON.stringify(shared);
  if (!answering) {
    answering = true;
    for (const worker of Object.values(cluster.workers ?? {})) if (worker) answerReservations(worker);
    cluster.on('fork', answerReservations);
  }
  return plan;
}
