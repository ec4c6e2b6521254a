// listenReusePort: validate -> facts -> plan -> listen, each step in its own file; this one joins them.
import cluster from 'node:cluster';
import net from 'node:net';
import tls from 'node:tls';
import { type Lookup, resolveBindTargets } from './address';
import { type NativeBinding, loadBinding } from '../binding';
import { abortError, invalidArgType, invalidArgValue, modeUnsupported, serverAlreadyListen } from '../errors';
import { explainTaken } from '../ports/holder-advice';
import { type Facts, gatherFacts } from '../plan/facts';
import { afterListen, borrowSlot, throwError } from './acquire';
import { type ListenJob, firstThatWorks, listenOnLentSocket, listenWithAddon, listenWithNode } from './listen-modes';
import { type ListenRequest, type ListenReusePortOptions, normalizeListenArgs } from './options';
import { type ModeChoice, type Plan, planListen } from '../plan/plan';
import { type SharedPlan, inheritedPolicy, readSharedPlan, reservePort } from '../cluster/primary-link';
import { type ExclusiveContext, exclusiveAdvice } from './exclusive-advice';
import { type Supervision, borrowSlotSocket, readSupervision, reportListenFailure, takeTicketKeys } from '../worker/supervised-worker';
import type { ListenResult } from '../types';

/** The system edges listenReusePort reads; tests replace them. */
export interface ListenEdges {
  binding: NativeBinding | undefined;
  lookup: Lookup | undefined;
  facts: Facts;
  isWorker: boolean;
  sharedPlan: SharedPlan | undefined;
  policy: 'rr' | 'none';
  reserve: (address: string, ipv6Only: boolean) => Promise<number>;
  /** The slot this worker fills, when startCluster() forked it. */
  supervision: Supervision | undefined;
  borrow: typeof borrowSlotSocket;
}

/** The real system edges, but for those a test gives. */
export function realEdges(given: Partial<ListenEdges> = {}): ListenEdges {
  const has = (key: keyof ListenEdges) => Object.hasOwn(given, key);
  const sharedPlan = has('sharedPlan') ? given.sharedPlan : readSharedPlan();
  const binding = has('binding') ? given.binding : loadBinding().binding;
  return {
    binding,
    lookup: given.lookup,
    facts: given.facts ?? gatherFacts(),
    isWorker: given.isWorker ?? cluster.isWorker,
    sharedPlan,
    policy: given.policy ?? sharedPlan?.policy ?? inheritedPolicy(),
    reserve: given.reserve ?? reservePort,
    supervision: has('supervision') ? given.supervision : readSupervision(),
    borrow: given.borrow ?? borrowSlotSocket,
  };
}

const pending = new WeakSet<net.Server>();

function isExplicit(mode: ModeChoice, facts: Facts): boolean {
  return mode !== 'auto' || (facts.override !== undefined && facts.override !== 'auto');
}

const policyName = { rr: 'SCHED_RR', none: 'SCHED_NONE' } as const;

/**
 * The plan for this listen. In a worker, the primary's plan (from setupPrimary) wins over a fresh
 * one, and a cluster mode is whatever the primary's scheduling policy makes it.
 */
export function decide(mode: ModeChoice, edges: Pick<ListenEdges, 'facts' | 'isWorker' | 'sharedPlan' | 'policy'>): Plan {
  const { facts, isWorker, sharedPlan } = edges;
  const role = isWorker ? 'worker' : 'none';
  let plan: Plan;
  if (sharedPlan && mode === 'auto') {
    const from = `The cluster primary (pid ${sharedPlan.primaryPid}) chose '${sharedPlan.mode}' in setupPrimary().`;
    plan = { mode: sharedPlan.mode, backend: sharedPlan.backend, reasons: [from, ...sharedPlan.reasons] };
    if (plan.mode === 'reuseport') {
      if (facts.addon) plan.backend = 'addon';
      else if (facts.nodeReusePort) plan.backend = 'node';
      else throw modeUnsupported(`${from} But this worker cannot open an SO_REUSEPORT socket: ${facts.addonError ?? 'no addon'}.`);
    }
  } else {
    plan = planListen({ ...facts, role }, { mode });
  }
  if (isWorker && (plan.mode === 'round-robin' || plan.mode === 'shared')) {
    const actual = edges.policy === 'rr' ? 'round-robin' : 'shared';
    if (actual !== plan.mode) {
      if (isExplicit(mode, facts) && !sharedPlan) {
        throw modeUnsupported(
          `The mode '${plan.mode}' was asked for in a worker, but the primary's cluster.schedulingPolicy is ${policyName[edges.policy]}, ` +
            `which gives '${actual}'. A worker cannot change it: call setupPrimary({ mode: '${plan.mode}' }) in the primary before forking.`,
        );
      }
      plan = {
        ...plan,
        mode: actual,
        reasons: [...plan.reasons, `The primary's cluster.schedulingPolicy is ${policyName[edges.policy]}, so node:cluster uses '${actual}'.`],
      };
    }
  }
  return plan;
}

// What a lone listener should be told when its port is taken: why it listens alone, and the fix.
function explainExclusive(context: ExclusiveContext): (error: Error) => Error {
  return (error) => {
    if ((error as { code?: string }).code === 'EADDRINUSE') {
      error.message += ` (${exclusiveAdvice(context)}.)`;
      return error;
    }
    return explainTaken(error);
  };
}

// Closes the server when the signal aborts, as `server.listen({ signal })` does.
function closeOnAbort(server: net.Server, signal: AbortSignal): void {
  const onAbort = () => server.close();
  signal.addEventListener('abort', onAbort, { once: true });
  server.once('close', () => signal.removeEventListener('abort', onAbort));
}

// Runs the plan; returns the plan as carried out (port 0 in a worker may turn reuseport into a cluster mode).
async function execute(plan: Plan, job: ListenJob, edges: ListenEdges, explicit: boolean): Promise<Plan> {
  switch (plan.mode) {
    case 'reuseport': {
      const { group } = job.request;
      const reasons = [
        ...plan.reasons,
        group === false
          ? 'The sharing-group check is off ({ group: false }): any process of this user may join the port and take part of its connections.'
          : `Only processes of the sharing group "${group}" may share this port; a listener of another app on it is refused${process.platform === 'linux' ? '' : ' (where /proc can show it: not on this platform)'}.`,
      ];
      const { supervision } = edges;
      if (supervision && plan.backend === 'addon') {
        const { lent } = await borrowSlot(edges.borrow, job.targets, job.port, job.request.group, 'ipv6-unavailable').catch(throwError);
        await listenOnLentSocket(job, lent.handle);
        job.server.once('close', lent.release);
        reasons.push(
          `The supervisor (pid ${supervision.supervisorPid}) lent slot ${supervision.slot}'s SO_REUSEPORT socket on port ${lent.port}; ` +
            'it stays open in the primary when this worker exits, so connections waiting in it are served by the next worker of the slot.',
        );
        if (lent.steering) reasons.push(lent.steering);
        return { ...plan, reasons };
      }
      if (job.port === 0 && edges.isWorker) {
        if (!edges.sharedPlan) {
          const why = 'Port 0 in a cluster worker: without setupPrimary() in the primary, workers cannot agree on one port for their own sockets';
          if (explicit) throw modeUnsupported(`${why}. Call setupPrimary() before forking, or listen on a fixed port.`);
          const actual = edges.policy === 'rr' ? 'round-robin' : 'shared';
          await listenWithNode(job, {});
          const through = `${why}, so this worker listens through the primary ('${actual}': cluster.schedulingPolicy is ${policyName[edges.policy]}).`;
          return { mode: actual, backend: 'cluster', reasons: [...plan.reasons, through] };
        }
        job.port = await firstThatWorks(job.targets, (target) => edges.reserve(target.address, target.ipv6Only));
        reasons.push(`Port 0: the primary reserved port ${job.port} so that every worker binds the same one.`);
      }
      if (plan.backend === 'addon' && edges.binding) {
        const socket = await listenWithAddon(edges.binding, job);
        reasons.push(`The addon opened fd ${socket.fd} with SO_REUSEADDR and SO_REUSEPORT on ${socket.address}:${socket.port} and handed it to libuv.`);
        return { ...plan, reasons };
      }
      await listenWithNode(job, { reusePort: true, exclusive: true });
      return { ...plan, backend: 'node', reasons: [...reasons, 'Node opened the socket with listen({ reusePort: true, exclusive: true }).'] };
    }
    case 'round-robin':
    case 'shared':
      await listenWithNode(job, {});
      return plan;
    case 'exclusive':
      await listenWithNode(job, { exclusive: true }, explainExclusive({ facts: edges.facts, primaryPid: edges.sharedPlan?.primaryPid }));
      return plan;
  }
}

/** listenReusePort with its system edges given, so tests can fake the addon, DNS, facts and cluster. */
export async function listenWith(
  edgesOrUndefined: Partial<ListenEdges> | undefined,
  server: net.Server,
  portOrOptions: unknown,
  options?: unknown,
): Promise<ListenResult> {
  if (!(server instanceof net.Server)) throw invalidArgType('server', 'an instance of Server', server);
  const request = normalizeListenArgs(portOrOptions, options);
  if (server.listening || pending.has(server)) throw serverAlreadyListen();
  if (request.signal?.aborted) throw abortError(request.signal);
  const edges = realEdges(edgesOrUndefined);
  let plan: Plan;
  try {
    plan = decide(request.mode, edges);
  } catch (error) {
    if (edges.supervision) reportListenFailure(error, edges.supervision);
    throw error;
  }

  pending.add(server);
  try {
    return await listenPlanned(server, request, edges, plan);
  } catch (error) {
    if (edges.supervision) reportListenFailure(error, edges.supervision);
    throw error;
  } finally {
    pending.delete(server);
  }
}

// The part of a listen that has side effects, once the arguments and the plan are settled.
async function listenPlanned(server: net.Server, request: ListenRequest, edges: ListenEdges, plan: Plan): Promise<ListenResult> {
  const targets = await resolveBindTargets(request.host, request.ipv6Only, request.port, edges.lookup);
  if (request.signal?.aborted) throw abortError(request.signal);
  const keys = await applyTicketKeys(server, request, edges);
  const done = await execute(plan, { server, request, targets, port: request.port }, edges, isExplicit(request.mode, edges.facts));
  if (keys) done.reasons = [...done.reasons, keys];
  afterListen(server, edges.supervision, done.backend === 'cluster' ? 'cluster' : edges.supervision && done.backend === 'addon' ? 'lent' : 'own');
  if (request.signal) {
    if (request.signal.aborted) {
      server.close();
      throw abortError(request.signal);
    }
    closeOnAbort(server, request.signal);
  }
  return { ...done, address: server.address() as net.AddressInfo };
}

// A TLS server gets its session-ticket key before it listens, so its first ticket already resumes in
// every process of the port: the one given, else (supervised) the supervisor's. Says which.
async function applyTicketKeys(server: net.Server, request: ListenRequest, edges: ListenEdges): Promise<string | undefined> {
  const isTls = server instanceof tls.Server;
  if (request.ticketKeys) {
    if (!isTls) throw invalidArgValue("property 'options.ticketKeys'", 'given only for a tls.Server (https, http2 secure, tls)', 'a Buffer for a plain server');
    (server as tls.Server).setTicketKeys(request.ticketKeys);
    return 'TLS session tickets are sealed with the ticketKeys given, so a ticket resumes on every process that has them.';
  }
  if (!isTls || !edges.supervision) return undefined;
  const shared = await takeTicketKeys(server as tls.Server);
  return shared
    ? "TLS session tickets are sealed with the supervisor's key, which every worker has (and gets anew at each rotation), so a ticket from any worker resumes on all of them."
    : "TLS session tickets are sealed with this worker's own key (startCluster({ ticketKeys: false })): a ticket resumes only on this worker.";
}

/**
 * Listens so that many processes can serve one port: with an SO_REUSEPORT socket where the kernel
 * balances connections, else the best cluster mode; the result says which and why.
 */
export function listenReusePort(server: net.Server, port?: number | string, options?: ListenReusePortOptions): Promise<ListenResult>;
export function listenReusePort(server: net.Server, options: ListenReusePortOptions): Promise<ListenResult>;
export function listenReusePort(server: net.Server, portOrOptions?: unknown, options?: unknown): Promise<ListenResult> {
  return listenWith(undefined, server, portOrOptions, options);
}
