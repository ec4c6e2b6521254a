// One way to listen per plan: the addon's SO_REUSEPORT socket, Node's own reusePort, a cluster listen
// through the primary, or a plain exclusive listen. Each resolves once the server is listening.
import type net from 'node:net';
import { type BindTarget, isIpv6Unavailable } from './address';
import { adoptListener, whenListening } from './adopt';
import type { NativeBinding, NativeSocket } from './binding';
import { explainListenError } from './errors';
import type { ListenRequest } from './options';
import type { TcpHandle } from './tcp-handle';

/** Where and how to listen, once validated and resolved. */
export interface ListenJob {
  server: net.Server;
  request: ListenRequest;
  /** Numeric addresses to try, in order ("::" then "0.0.0.0" for the default host). */
  targets: BindTarget[];
  /** The port to bind: the request's, or the one the cluster primary reserved for port 0. */
  port: number;
}

/** Tries each target in order; the next one only when the last failed for want of IPv6. */
export async function firstThatWorks<T>(targets: BindTarget[], attempt: (target: BindTarget) => Promise<T> | T): Promise<T> {
  let lastError: unknown;
  for (const [index, target] of targets.entries()) {
    try {
      return await attempt(target);
    } catch (error) {
      lastError = error;
      if (index === targets.length - 1 || !isIpv6Unavailable(error)) break;
    }
  }
  throw lastError;
}

/** reuseport through the addon: it opens the socket, libuv adopts it. Returns the socket opened. */
export async function listenWithAddon(binding: NativeBinding, job: ListenJob): Promise<NativeSocket> {
  const socket = await firstThatWorks(job.targets, (target) => {
    try {
      return binding.openListener({
        address: target.address,
        port: job.port,
        ipv6Only: target.ipv6Only,
        backlog: job.request.backlog,
      });
    } catch (error) {
      throw explainListenError(error as Error);
    }
  });
  await adoptListener(job.server, socket, job.request.backlog);
  return socket;
}

/** Node's own listen: `reusePort` for Node's reuseport, `exclusive` to stay out of the cluster primary. */
export async function listenWithNode(
  job: ListenJob,
  flags: { reusePort?: boolean; exclusive?: boolean },
  explain: (error: Error) => Error = explainListenError,
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
    await whenListening(job.server, () => job.server.listen(options));
  } catch (error) {
    throw explain(error as Error);
  }
}

/** Listens on a slot socket the supervisor lent (bound in the primary, listening from here on). */
export async function listenOnLentSocket(job: ListenJob, handle: TcpHandle): Promise<void> {
  try {
    await whenListening(job.server, () => job.server.listen(handle as unknown as net.ListenOptions, job.request.backlog));
  } catch (error) {
    if (job.server.listening === false) handle.close();
    throw explainListenError(error as Error);
  }
}
