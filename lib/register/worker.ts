// A hooked listen in a cluster worker. Node's path there is asynchronous: `server.listen` asks
// `cluster._getServer` for a handle (node:cluster's primary makes one and shares it, or accepts for
// the worker), then listens on it. The hook answers that request itself, with the slot's socket lent
// by startCluster's supervisor, or else a socket of the worker's own; Node's code then listens on it
// exactly as on a handle from the primary. The primary still hears that the worker listens
// (node:cluster's 'listening' message: PM2 waits for it), and a disconnect closes the server.
import net from 'node:net';
import tls from 'node:tls';
import { getSystemErrorName } from 'node:util';
import { type ListenEdges, decide } from '../listen/listen-reuseport';
import type { Plan } from '../plan/plan';
import { exceptionWithHostPort, explainListenError, uvErrno } from '../errors';
import { afterListen, borrowSlot, isTargetFailure, throwError } from '../listen/acquire';
import { guardPort } from '../listen/guard-port';
import { reportListenFailure, takeTicketKeys } from '../worker/supervised-worker';
import type { TcpHandle } from '../tcp-handle';
import { asNodeError, openOwnSocket } from './own-socket';
import { type HookTarget, UV_TCP_IPV6ONLY, UV_TCP_REUSEPORT, firstTarget, hookTargets } from './targets';

/** What Node's listen asks node:cluster for (lib/net.js listenInCluster's serverQuery). */
export interface ServerQuery {
  address: string | null;
  port: number;
  addressType: 4 | 6;
  fd?: number;
  flags?: number;
  backlog?: number;
}

/** node:cluster's answer: an error number, or 0 and the handle to listen on. */
export type GetServerCallback = (error: number, handle?: unknown) => void;

/** `cluster._getServer(server, query, callback)` in a worker. */
export type GetServer = (server: net.Server, query: ServerQuery, callback: GetServerCallback) => void;

interface Got {
  handle: TcpHandle;
  /** 'lent': the supervisor's slot socket; 'own': this worker's. */
  ownership: 'lent' | 'own';
  /** Gives the socket's claim back once the server closes: own, its sharing-group entry; lent, the supervisor is told. */
  unregister: () => void;
}

type Internals = { _createServerHandle?: (address: string, port: number, addressType: number, fd: undefined, flags: number) => TcpHandle | number };

// Node's own SO_REUSEPORT socket (Node >= 22.12 without the addon), made as node:cluster's shared
// handles are, and checked against the port's other holders as the addon's is.
function nodeSocket(target: HookTarget, port: number, group: string | false): Got {
  const create = (net as unknown as Internals)._createServerHandle;
  if (!create) throw new Error('reuseport: this Node has no net._createServerHandle');
  const flags = UV_TCP_REUSEPORT | (target.ipv6Only ? UV_TCP_IPV6ONLY : 0);
  const handle = create(target.address, port, target.addressType, undefined, flags);
  if (typeof handle === 'number') throw Object.assign(new Error('bind failed'), { errno: handle, code: getSystemErrorName(handle) });
  const fd = (handle as TcpHandle & { fd?: number }).fd;
  if (typeof fd !== 'number' || fd < 0) return { handle, ownership: 'own', unregister: () => undefined };
  try {
    return { handle, ownership: 'own', unregister: guardPort(group, { fd, address: target.address, port }, 'tcp', 'server.listen') };
  } catch (error) {
    handle.close();
    throw error;
  }
}

async function handleFor(server: net.Server, query: ServerQuery, plan: Plan, edges: ListenEdges, group: string | false): Promise<Got> {
  const targets = hookTargets(query.address, query.addressType, query.flags);
  const { supervision } = edges;
  if (supervision && plan.backend === 'addon') {
    if (server instanceof tls.Server) await takeTicketKeys(server);
    const { lent } = await borrowSlot(edges.borrow, targets, query.port, group, 'ipv6-unavailable').catch(throwError);
    return { handle: lent.handle, ownership: 'lent', unregister: lent.release };
  }
  if (plan.backend === 'addon' && edges.binding) {
    const binding = edges.binding;
    const { value } = firstTarget(targets, (target) => openOwnSocket(binding, group, target, query.port));
    return { ...value, ownership: 'own' };
  }
  return firstTarget(targets, (target) => nodeSocket(target, query.port, group)).value;
}

// Servers whose hooked listen is waiting for its socket, and whether it was given up meanwhile.
const pending = new WeakMap<net.Server, { cancelled: boolean }>();

/** Answers node:cluster's handle request with the package's socket when the plan is reuseport. */
export function getServerInWorker(
  server: net.Server,
  query: ServerQuery,
  callback: GetServerCallback,
  original: GetServer,
  edges: ListenEdges,
  group: string | false,
): void {
  let plan: Plan;
  try {
    plan = decide('auto', edges);
  } catch (error) {
    if (edges.supervision) reportListenFailure(error, edges.supervision);
    process.nextTick(() => server.emit('error', error));
    return;
  }
  // Round-robin or a shared handle: node:cluster's primary does it, as without the hook.
  if (plan.mode !== 'reuseport') {
    original(server, query, callback);
    return;
  }
  const earlier = pending.get(server);
  if (earlier) {
    // A second listen() before the first got its socket: node:cluster gives the port once, so the
    // second fails with EADDRINUSE and neither listens. So here.
    earlier.cancelled = true;
    const error = explainListenError(exceptionWithHostPort(uvErrno('EADDRINUSE'), 'bind', query.address, query.port));
    process.nextTick(() => server.emit('error', error));
    return;
  }
  const state = { cancelled: false };
  pending.set(server, state);
  // close() before the socket came (an aborted signal): nothing listens, as in Node.
  const onClose = () => {
    state.cancelled = true;
  };
  server.once('close', onClose);
  // Never sooner than node:cluster, whose answer comes over IPC: what the app does in this turn (a
  // close() on an aborted signal, a second listen()) happens first, as without the hook.
  new Promise<void>((resolve) => setImmediate(resolve))
    .then(() => handleFor(server, query, plan, edges, group))
    .finally(() => {
      pending.delete(server);
      server.off('close', onClose);
    })
    .then(
      (got) => {
        if (state.cancelled) {
          got.handle.close();
          got.unregister();
          return;
        }
        server.once('listening', () => afterListen(server, edges.supervision, got.ownership));
        server.once('close', got.unregister);
        // Node listens on it (checking first that it is bound to the port asked for), as on the primary's.
        callback(0, got.handle);
      },
      (thrown: unknown) => {
        if (state.cancelled) return;
        const { error, target } = isTargetFailure(thrown) ? thrown : { error: thrown, target: { address: query.address ?? '::' } };
        const nodeShaped = asNodeError(error, 'worker', target, query.address, query.port);
        if (edges.supervision) reportListenFailure(nodeShaped, edges.supervision);
        server.emit('error', nodeShaped);
      },
    );
}
