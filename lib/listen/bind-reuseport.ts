// bindReusePort: validate -> facts -> plan -> bind, for a dgram socket (udp4, udp6); TCP's listenReusePort's twin.
import cluster from 'node:cluster';
import dgram from 'node:dgram';
import { type NativeBinding, loadBinding } from '../binding';
import { invalidArgType, modeUnsupported, nodeError } from '../errors';
import { explainTaken } from '../ports/holder-advice';
import { type Facts, gatherFacts } from '../plan/facts';
import { type DatagramPlan, clusterUdpReason, planBind } from '../plan/plan-datagram';
import { type SharedPlan, readSharedPlan } from '../cluster/primary-link';
import { type Supervision, readSupervision, reportListenFailure } from '../worker/supervised-worker';
import type { BindResult } from '../types';
import { type BindRequest, type BindReusePortOptions, normalizeBindArgs } from './bind-options';
import { type DatagramLookup, type DatagramTarget, bindPlain, bindWithAddon, bindWithNode, resolveDatagramTarget } from './bind-modes';
import { joinClusterDatagram } from './datagram-cluster';

/** The system edges bindReusePort reads; tests replace them. */
export interface BindEdges {
  binding: NativeBinding | undefined;
  lookup: DatagramLookup | undefined;
  facts: Facts;
  isWorker: boolean;
  sharedPlan: SharedPlan | undefined;
  /** The slot this worker fills, when startCluster() forked it. */
  supervision: Supervision | undefined;
}

function withRealEdges(given: Partial<BindEdges> = {}): BindEdges {
  const has = (key: keyof BindEdges) => Object.hasOwn(given, key);
  return {
    binding: has('binding') ? given.binding : loadBinding().binding,
    lookup: given.lookup,
    facts: given.facts ?? gatherFacts(),
    isWorker: given.isWorker ?? cluster.isWorker,
    sharedPlan: has('sharedPlan') ? given.sharedPlan : readSharedPlan(),
    supervision: has('supervision') ? given.supervision : readSupervision(),
  };
}

const pending = new WeakSet<dgram.Socket>();

function isExplicit(mode: BindRequest['mode'], facts: Facts): boolean {
  return mode !== 'auto' || (facts.override !== undefined && facts.override !== 'auto');
}

/** The plan for this bind: in a worker, the primary's plan (from setupPrimary) wins over a fresh one. */
export function decideBind(mode: BindRequest['mode'], edges: Pick<BindEdges, 'facts' | 'isWorker' | 'sharedPlan'>): DatagramPlan {
  const { facts, isWorker, sharedPlan } = edges;
  if (sharedPlan && mode === 'auto') {
    const from = `The cluster primary (pid ${sharedPlan.primaryPid}) chose '${sharedPlan.mode}' in setupPrimary().`;
    if (sharedPlan.mode === 'reuseport') {
      const plan: DatagramPlan = { mode: 'reuseport', backend: 'addon', reasons: [from, ...sharedPlan.reasons] };
      if (facts.addon) return plan;
      if (facts.nodeUdpReusePort) return { ...plan, backend: 'node' };
      throw modeUnsupported(
        `${from} But this worker cannot open an SO_REUSEPORT UDP socket: ${facts.addonError ?? 'no addon'}, and this Node has no dgram reusePort.`,
      );
    }
    if (sharedPlan.mode !== 'exclusive' && facts.platform !== 'win32') {
      return { mode: 'shared', backend: 'cluster', reasons: [from, `${clusterUdpReason}: this worker receives on the primary's shared socket.`] };
    }
  }
  return planBind({ ...facts, role: isWorker ? 'worker' : 'none' }, { mode });
}

// What a lone socket should be told when its port is taken.
function explainExclusive(plan: DatagramPlan): (error: Error) => Error {
  return (error) => {
    if ((error as { code?: string }).code === 'EADDRINUSE') {
      error.message += ` (this process binds in 'exclusive' mode, so it cannot share the port: ${plan.reasons[0] ?? ''})`;
      return error;
    }
    return explainTaken(error, 'udp');
  };
}

async function execute(plan: DatagramPlan, socket: dgram.Socket, request: BindRequest, target: DatagramTarget, edges: BindEdges): Promise<DatagramPlan> {
  const reasons = [...plan.reasons];
  const v6only = request.ipv6Only && target.family === 6;
  switch (plan.mode) {
    case 'reuseport': {
      const { group } = request;
      reasons.push(
        group === false
          ? 'The sharing-group check is off ({ group: false }): any process of this user may join the port and take part of its datagrams.'
          : `Only processes of the sharing group "${group}" may share this port; a UDP socket of another app on it is refused${process.platform === 'linux' ? '' : ' (where /proc can show it: not on this platform)'}.`,
      );
      if (target.port === 0 && edges.isWorker) {
        const why = 'Port 0 in a cluster worker: workers cannot agree on one UDP port for their own sockets';
        if (isExplicit(request.mode, edges.facts)) throw modeUnsupported(`${why}. Bind a fixed port.`);
        await bindPlain(socket, target, false, (error: Error) => explainTaken(error, 'udp'));
        return { mode: 'shared', backend: 'cluster', reasons: [...plan.reasons, `${why}, so this worker binds through the primary: ${clusterUdpReason}.`] };
      }
      if (edges.supervision) {
        reasons.push(
          `Supervised by startCluster (pid ${edges.supervision.supervisorPid}, slot ${edges.supervision.slot}): this worker binds its own UDP socket. ` +
            'Stall lending and primary-held slot sockets are TCP-only: datagrams the kernel sends to a stalled worker wait in its socket, and a worker that exits loses what its socket held.',
        );
      }
      if (plan.backend === 'addon' && edges.binding) {
        const bound = await bindWithAddon(edges.binding, socket, target, group);
        reasons.push(`The addon opened fd ${bound.fd} with SO_REUSEPORT (no SO_REUSEADDR) on ${bound.address}:${bound.port} and the dgram socket adopted it.`);
        return { ...plan, reasons };
      }
      await bindWithNode(socket, target, group);
      return {
        ...plan,
        backend: 'node',
        reasons: [...reasons, "Node bound the socket with libuv's UV_UDP_REUSEPORT, as dgram.createSocket({ reusePort: true }) does."],
      };
    }
    case 'shared':
      await bindPlain(socket, target, false, (error: Error) => explainTaken(error, 'udp'));
      if (v6only) reasons.push("ipv6Only is not applied through the primary: give dgram.createSocket({ type: 'udp6', ipv6Only: true }) instead.");
      return { ...plan, reasons };
    case 'exclusive':
      await bindPlain(socket, target, true, explainExclusive(plan));
      if (v6only) reasons.push("ipv6Only is not applied by a plain bind: give dgram.createSocket({ type: 'udp6', ipv6Only: true }) instead.");
      return { ...plan, reasons };
  }
}

// ERR_SOCKET_ALREADY_BOUND, as socket.bind() throws it.
function alreadyBound(): Error {
  return nodeError(Error, 'ERR_SOCKET_ALREADY_BOUND', 'Socket is already bound');
}

// Refuses a socket that is bound (or binding) or closed, before anything is opened. address() answers
// only for a bound socket; an unbound one fails its getsockname (EBADF), a closed one is not running.
function checkUnbound(socket: dgram.Socket): void {
  if (pending.has(socket)) throw alreadyBound();
  try {
    socket.address();
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_SOCKET_DGRAM_NOT_RUNNING') throw error;
    return;
  }
  throw alreadyBound();
}

/** bindReusePort with its system edges given, so tests can fake the addon, DNS, facts and cluster. */
export async function bindWith(
  edgesOrUndefined: Partial<BindEdges> | undefined,
  socket: dgram.Socket,
  portOrOptions: unknown,
  options?: unknown,
): Promise<BindResult> {
  if (!(socket instanceof dgram.Socket)) throw invalidArgType('socket', 'an instance of dgram.Socket', socket);
  const request = normalizeBindArgs(portOrOptions, options);
  checkUnbound(socket);
  const edges = withRealEdges(edgesOrUndefined);
  pending.add(socket);
  try {
    const plan = decideBind(request.mode, edges);
    const type = (socket as dgram.Socket & { type: 'udp4' | 'udp6' }).type;
    const target = await resolveDatagramTarget(type === 'udp4' ? 4 : 6, request.address, request.port, request.ipv6Only, edges.lookup);
    const done = await execute(plan, socket, request, target, edges);
    if (done.backend !== 'cluster') joinClusterDatagram(socket, edges.supervision);
    return { ...done, address: socket.address() };
  } catch (error) {
    if (edges.supervision) reportListenFailure(error, edges.supervision);
    throw error;
  } finally {
    pending.delete(socket);
  }
}

/**
 * Binds a dgram socket (udp4 or udp6) so that many processes can receive on one UDP port: its own
 * SO_REUSEPORT socket where the kernel balances datagrams, else the cluster primary's shared socket
 * or a socket alone; the result says which and why.
 */
export function bindReusePort(socket: dgram.Socket, port?: number | string, options?: BindReusePortOptions): Promise<BindResult>;
export function bindReusePort(socket: dgram.Socket, options: BindReusePortOptions): Promise<BindResult>;
export function bindReusePort(socket: dgram.Socket, portOrOptions?: unknown, options?: unknown): Promise<BindResult> {
  return bindWith(undefined, socket, portOrOptions, options);
}
