// Makes a server listen and waits for it: on a socket the addon opened (`listen({ fd })` standalone, a
// TCP handle in a cluster worker), or through Node's own listen for the other modes.
import cluster from 'node:cluster';
import { type EventEmitter, once } from 'node:events';
import fs from 'node:fs';
import type net from 'node:net';
import type { NativeSocket } from '../binding';
import { tcpHandleFromFd } from '../tcp-handle';

/**
 * Runs `start` (which calls server.listen, or socket.bind for a dgram socket) and resolves on
 * 'listening', rejects on 'error' (events.once's own rule) or a throw; no listener is left behind.
 */
export async function whenListening(emitter: EventEmitter, start: () => void): Promise<void> {
  const controller = new AbortController();
  const listening = once(emitter, 'listening', { signal: controller.signal });
  try {
    start();
  } catch (error) {
    controller.abort();
    listening.catch(() => undefined);
    throw error;
  }
  await listening;
}

// Starts libuv listening on the fd; the server owns the fd from here, or it is closed on failure.
function listenOnFd(server: net.Server, socket: NativeSocket, backlog: number): void {
  if (!cluster.isWorker) {
    try {
      // Backlog goes positionally: Node reads `options.backlog` only for port listens.
      server.listen({ fd: socket.fd }, backlog);
    } catch (error) {
      fs.closeSync(socket.fd);
      throw error;
    }
    return;
  }
  let handle: ReturnType<typeof tcpHandleFromFd>;
  try {
    handle = tcpHandleFromFd(socket.fd, socket.address, socket.port);
  } catch (error) {
    fs.closeSync(socket.fd);
    throw error;
  }
  try {
    server.listen(handle as unknown as net.ListenOptions, backlog);
  } catch (error) {
    handle.close();
    throw error;
  }
}

/** Makes `server` listen on an already bound and listening socket; resolves on 'listening'. */
export function adoptListener(server: net.Server, socket: NativeSocket, backlog: number): Promise<void> {
  return whenListening(server, () => listenOnFd(server, socket, backlog));
}
