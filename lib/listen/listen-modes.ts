// One way to listen per plan: the addon's SO_REUSEPORT socket, Node's own reusePort, a cluster listen
// through the primary, or a plain exclusive listen. Each resolves once the server is listening.
import type net from 'node:net';
import { bindWithAddon, throwError, tryTargets } from './acquire';
import type { BindTarget } from './address';
import { adoptListener, whenListening } from './adopt';
import type { NativeBinding, NativeSocket } from '../binding';
import { explainTaken } from '../ports/holder-advice';
import type { ListenRequest } from './options';
import { guardPort } from './guard-port';
import type { TcpHandle } from '../tcp-handle';

/** Where and how to listen, once validated and resolved. */
export interface ListenJob {
  server: net.Server;
  request: ListenRequest;
  /** Numeric addresses to try, in order ("::" then "0.0.0.0" for the default host). */
  targets: BindTarget[];
  /** The port to bind: the request's, or the one the cluster primary reserved for port 0. */
  port: number;
}

/** Tries each target in order, the next one only when the last failed for want of IPv6; throws that error. */
export async function firstThatWorks<T>(targets: BindTarget[], attempt: (target: BindTarget) => Promise<T> | T): Promise<T> {
  return (await tryTargets(targets, 'ipv6-unavailable', attempt).catch(throwError)).value;
}

function guardOwnership(job: ListenJob, bound: { fd: number; address: string; port: number }): () => void {
  return guardPort(job.request.group, bound);
}

/**
 * reuseport through the addon: it binds the socket, the sharing group is checked and the socket
 * registered, and libuv listens on it. A holder without SO_REUSEPORT makes the bind itself fail
 * (EADDRINUSE from the kernel); one with it but of another group is refused here, before listening.
 */
export async function listenWithAddon(binding: NativeBinding, job: ListenJob): Promise<NativeSocket> {
  const { socket, unregister } = await firstThatWorks(job.targets, (target) =>
    bindWithAddon(binding, job.request.group, target, job.port, { caller: 'listenReusePort', explain: true }),
  );
  try {
    await adoptListener(job.server, socket, job.request.backlog);
  } catch (error) {
    unregister();
    throw error;
  }
  job.server.once('close', unregister);
  return socket;
}

/**
 * Marks a server while the package itself calls its listen(), so that the preload hook
 * (reuseport/register) leaves that listen to Node. A global symbol: any copy of the package sees it.
 */
export const OWN_LISTEN: unique symbol = Symbol.for('reuseport.ownListen') as never;

/** Node's own listen: `reusePort` for Node's reuseport, `exclusive` to stay out of the cluster primary. */
export async function listenWithNode(
  job: ListenJob,
  flags: { reusePort?: boolean; exclusive?: boolean },
  explain: (error: Error) => Error = explainTaken,
): Promise<void> {
  // With no host, Node itself tries "::" then "0.0.0.0"; a resolved name is passed as its address.
  const host = job.request.host === undefined ? undefined : job.targets[0]?.address;
  const options: net.ListenOptions & { reusePort?: boolean } = {
    port: job.port,
    host,
    backlog: job.request.backlog,
    ipv6Only: job.request.ipv6Only,
    exclusive: flags.exclusive ?? false,
  };
  if (flags.reusePort) options.reusePort = true;
  try {
    await whenListening(job.server, () => ownListen(job.server, () => job.server.listen(options)));
  } catch (error) {
    throw explain(error as Error);
  }
  const fd = (job.server as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (flags.reusePort && fd !== undefined && fd >= 0) {
    const { address, port } = job.server.address() as net.AddressInfo;
    try {
      // Node binds and listens in one step, so here the check can only follow.
      job.server.once('close', guardOwnership(job, { fd, address, port }));
    } catch (error) {
      job.server.close();
      throw error;
    }
  }
}

// Runs `listen` with the server marked as the package's own listen.
function ownListen(server: net.Server, listen: () => void): void {
  const marked = server as net.Server & { [OWN_LISTEN]?: boolean };
  marked[OWN_LISTEN] = true;
  try {
    listen();
  } finally {
    delete marked[OWN_LISTEN];
  }
}

/** Listens on a slot socket the supervisor lent (bound in the primary, listening from here on). */
export async function listenOnLentSocket(job: ListenJob, handle: TcpHandle): Promise<void> {
  try {
    await whenListening(job.server, () => job.server.listen(handle as unknown as net.ListenOptions, job.request.backlog));
  } catch (error) {
    if (job.server.listening === false) handle.close();
    throw explainTaken(error as Error);
  }
}
