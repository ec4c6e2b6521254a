// setupPrimary(): in the cluster primary, before forking, choose the plan once for every worker.
import cluster, { type Worker } from 'node:cluster';
import fs from 'node:fs';
import { loadBinding } from '../binding';
import { modeUnsupported, tooManySockets } from '../errors';
import { gatherFacts } from '../plan/facts';
import { type Plan, type PlanOptions, planListen } from '../plan/plan';
import { type ReserveReply, type ReserveRequest, isSupervisorMessage, onInternalMessage, serializeError, supervisorMessage } from './ipc';
import { checkWorkerMessage, forgetWorker, refusal, warnBadMessage } from './ipc-validate';
import { PLAN_ENV, type SharedPlan } from './primary-link';

/** Options of setupPrimary: the mode to use ('auto' by default, or REUSEPORT_MODE). */
export type SetupPrimaryOptions = PlanOptions;

// Port 0 in reuseport mode: the primary binds (never listens on) one socket per address, so every
// worker, and every replacement worker later, joins the same port. One worker may make the primary
// hold at most `perWorker` of them; one that no live worker has asked for closes `graceMs` after its
// last asker exited (a replacement that comes sooner gets the same port).
interface Reservation {
  fd: number;
  port: number;
  users: Set<Worker>;
  timer?: NodeJS.Timeout;
}
const reserved = new Map<string, Reservation>();
const limits = { perWorker: 64, graceMs: 30_000 };
let answering = false;

/** Sets how many reservations one worker may hold, and how long an unused one stays (startCluster's settings). */
export function limitReservations(perWorker: number, graceMs: number): void {
  limits.perWorker = perWorker;
  limits.graceMs = graceMs;
}

function reserve(worker: Worker, address: string, ipv6Only: boolean): number {
  const key = `${address}|${ipv6Only}`;
  const known = reserved.get(key);
  if (known?.users.has(worker)) return known.port;
  const held = [...reserved.values()].filter((each) => each.users.has(worker)).length;
  if (held >= limits.perWorker) {
    throw tooManySockets(
      `reuseport: the worker (pid ${worker.process.pid}) already holds ${held} port reservations in the primary, the most one worker may (maxSocketsPerWorker: ${limits.perWorker})`,
    );
  }
  if (known) {
    clearTimeout(known.timer);
    known.users.add(worker);
    return known.port;
  }
  const { binding } = loadBinding();
  if (!binding) throw new Error('reuseport: the primary cannot reserve a port without the native addon');
  const socket = binding.openListener({ address, port: 0, ipv6Only, listen: false });
  reserved.set(key, { fd: socket.fd, port: socket.port, users: new Set([worker]) });
  return socket.port;
}

// A worker is gone: the reservations only it used close once no one asked for them within graceMs.
function releaseReservations(worker: Worker): void {
  for (const [key, reservation] of reserved) {
    if (!reservation.users.delete(worker) || reservation.users.size > 0) continue;
    clearTimeout(reservation.timer);
    reservation.timer = setTimeout(() => {
      if (reservation.users.size > 0 || reserved.get(key) !== reservation) return;
      reserved.delete(key);
      fs.closeSync(reservation.fd);
    }, limits.graceMs);
    reservation.timer.unref();
  }
}

function answerReservations(worker: Worker): void {
  onInternalMessage(worker.process, (message) => {
    if (!isSupervisorMessage(message) || message.act !== 'reserve') return;
    const checked = checkWorkerMessage(message, { slots: 0 });
    if (!checked.ok) {
      const reply = refusal(checked);
      if (reply && worker.isConnected()) worker.process.send(reply as never, () => undefined);
      else warnBadMessage(worker, checked);
      return;
    }
    const request = checked.message as ReserveRequest;
    let reply: ReserveReply;
    try {
      reply = supervisorMessage({ act: 'reserved', seq: request.seq, port: reserve(worker, request.address, request.ipv6Only) });
    } catch (error) {
      reply = supervisorMessage({ act: 'reserved', seq: request.seq, error: serializeError(error) });
    }
    if (worker.isConnected()) worker.process.send(reply as never, () => undefined);
  });
  worker.once('exit', () => {
    releaseReservations(worker);
    forgetWorker(worker);
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
