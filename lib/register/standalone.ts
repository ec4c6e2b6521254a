// A hooked listen in a process that is no cluster worker: Node's path there is synchronous (no host, or
// a numeric one), and so is this. It runs where Node's `setupListenHandle` would create and bind the
// handle (`server._listen2`, which Node keeps for code that wraps it): the server gets the package's
// SO_REUSEPORT socket as its handle, and Node's own code then listens on it, sets `_connectionKey` and
// emits 'listening' on the next tick. A failure is emitted as 'error' on the next tick, as Node does.
import type net from 'node:net';
import { type ListenEdges, decide } from '../listen/listen-reuseport';
import type { Plan } from '../plan/plan';
import { type OwnSocket, asNodeError, openOwnSocket } from './own-socket';
import { type HookTarget, type TargetFailure, UV_TCP_REUSEPORT, firstTarget, hookTargets } from './targets';
import { guardPort } from '../listen/guard-port';

/** Node's `server._listen2(address, port, addressType, backlog, fd, flags)`. */
export type Listen2 = (this: net.Server, address: string | null, port: number, addressType: 4 | 6, backlog: number, fd?: number, flags?: number) => void;

type WithHandle = net.Server & { _handle: unknown };

function emitSoon(server: net.Server, error: Error): void {
  process.nextTick(() => server.emit('error', error));
}

/** Listens as `listen2` would, on a socket of the package's when the plan is reuseport. */
export function listenStandalone(
  server: net.Server,
  listen2: Listen2,
  args: Parameters<Listen2>,
  edges: Pick<ListenEdges, 'binding' | 'facts' | 'isWorker' | 'sharedPlan' | 'policy'>,
  group: string | false,
): void {
  const [address, port, addressType, backlog, , flags] = args;
  let plan: Plan;
  try {
    plan = decide('auto', edges);
  } catch (error) {
    emitSoon(server, error as Error);
    return;
  }
  if (plan.mode !== 'reuseport') {
    listen2.apply(server, args);
    return;
  }
  if (plan.backend === 'node' || !edges.binding) {
    // Node >= 22.12 opens the SO_REUSEPORT socket itself; the sharing group is checked once it is bound.
    listen2.call(server, address, port, addressType, backlog, undefined, (flags ?? 0) | UV_TCP_REUSEPORT);
    guardNodeSocket(server, group);
    return;
  }
  const binding = edges.binding;
  const targets = hookTargets(address, addressType, flags);
  let opened: { target: HookTarget; value: OwnSocket };
  try {
    opened = firstTarget(targets, (target) => openOwnSocket(binding, group, target, port));
  } catch (failure) {
    const { error, target } = failure as TargetFailure;
    emitSoon(server, asNodeError(error, 'standalone', target, address, port));
    return;
  }
  const { target, value: socket } = opened;
  (server as WithHandle)._handle = socket.handle;
  listen2.call(server, target.address, port, target.addressType, backlog, undefined, flags);
  // Node closes the handle and emits 'error' when listen(2) fails; the registration goes with it.
  if ((server as WithHandle)._handle) server.once('close', socket.unregister);
  else socket.unregister();
}

// Node's own reusePort socket: the same sharing-group check, once Node has bound it.
function guardNodeSocket(server: net.Server, group: string | false): void {
  const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
  const bound = server.address();
  if (fd === undefined || fd < 0 || bound === null || typeof bound === 'string') return;
  try {
    server.once('close', guardPort(group, { fd, address: bound.address, port: bound.port }, 'tcp', 'server.listen'));
  } catch (error) {
    server.close();
    emitSoon(server, asNodeError(error, 'standalone', bound, bound.address, bound.port));
  }
}
