// listenReusePort: validate, resolve the address, open an SO_REUSEPORT socket in the addon, hand it to libuv.
import net from 'node:net';
import os from 'node:os';
import { type Lookup, isIpv6Unavailable, resolveBindTargets } from './address';
import { adoptListener } from './adopt';
import { type NativeBinding, type NativeSocket, loadBinding } from './binding';
import {
  abortError,
  explainListenError,
  invalidArgType,
  reusePortUnavailable,
  serverAlreadyListen,
} from './errors';
import { type ListenRequest, normalizeListenArgs } from './options';
import type { ListenResult } from './types';

const pending = new WeakSet<net.Server>();

// Tries each target in order; the IPv4 fallback only when "::" failed for want of IPv6.
function openFirst(binding: NativeBinding, request: ListenRequest, targets: { address: string; ipv6Only: boolean }[]): NativeSocket {
  let lastError: unknown;
  for (const [index, target] of targets.entries()) {
    try {
      return binding.openListener({
        address: target.address,
        port: request.port,
        ipv6Only: target.ipv6Only,
        backlog: request.backlog,
      });
    } catch (error) {
      lastError = error;
      const hasFallback = index < targets.length - 1;
      if (!hasFallback || !isIpv6Unavailable(error)) break;
    }
  }
  throw explainListenError(lastError as Error);
}

// Closes the server when the signal aborts, as `server.listen({ signal })` does.
function closeOnAbort(server: net.Server, signal: AbortSignal): void {
  const onAbort = () => server.close();
  signal.addEventListener('abort', onAbort, { once: true });
  server.once('close', () => signal.removeEventListener('abort', onAbort));
}

function reasonsFor(socket: NativeSocket): string[] {
  return [
    `${os.type()} ${os.release()} accepts SO_REUSEPORT on TCP sockets and spreads new connections across every socket bound to the port`,
    `the addon opened fd ${socket.fd} with SO_REUSEADDR and SO_REUSEPORT on ${socket.address}:${socket.port} and handed it to libuv`,
  ];
}

/** Internal entry with injectable addon and DNS lookup, so tests can fake the system edges. */
export async function listenWith(
  binding: NativeBinding | undefined,
  lookup: Lookup | undefined,
  server: net.Server,
  portOrOptions: unknown,
  options?: unknown,
): Promise<ListenResult> {
  if (!(server instanceof net.Server)) throw invalidArgType('server', 'an instance of Server', server);
  const request = normalizeListenArgs(portOrOptions, options);
  if (server.listening || pending.has(server)) throw serverAlreadyListen();
  if (request.signal?.aborted) throw abortError(request.signal);
  if (!binding) throw reusePortUnavailable(loadBinding().error?.message ?? 'the native addon is not loaded');
  const probe = binding.probeReusePort();
  if (probe !== 0) {
    throw reusePortUnavailable(`this kernel refuses SO_REUSEPORT on TCP sockets (errno ${probe})`);
  }

  pending.add(server);
  try {
    const targets = await resolveBindTargets(request.host, request.ipv6Only, request.port, lookup);
    if (request.signal?.aborted) throw abortError(request.signal);
    const socket = openFirst(binding, request, targets);
    await adoptListener(server, socket, request.backlog);
    if (request.signal) {
      if (request.signal.aborted) {
        server.close();
        throw abortError(request.signal);
      }
      closeOnAbort(server, request.signal);
    }
    return {
      mode: 'reuseport',
      backend: 'addon',
      address: server.address() as net.AddressInfo,
      reasons: reasonsFor(socket),
    };
  } finally {
    pending.delete(server);
  }
}

/**
 * Listens on `port` with an SO_REUSEPORT socket, so many processes can serve it and the kernel
 * spreads connections among them. Works in a standalone process and in a cluster worker.
 */
export function listenReusePort(server: net.Server, port?: number | string | null, options?: import('./options').ListenReusePortOptions): Promise<ListenResult>;
export function listenReusePort(server: net.Server, options: import('./options').ListenReusePortOptions): Promise<ListenResult>;
export function listenReusePort(server: net.Server, portOrOptions?: unknown, options?: unknown): Promise<ListenResult> {
  return listenWith(loadBinding().binding, undefined, server, portOrOptions, options);
}
