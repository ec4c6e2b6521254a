// Hands a socket the addon opened to libuv: `listen({ fd })` standalone, a TCP handle in a cluster worker.
import cluster from 'node:cluster';
import fs from 'node:fs';
import type net from 'node:net';
import type { NativeSocket } from './binding';
import { tcpHandleFromFd } from './tcp-handle';

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
  return new Promise<void>((resolve, reject) => {
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    const onError = (error: Error) => {
      server.off('listening', onListening);
      reject(error);
    };
    server.once('listening', onListening);
    server.once('error', onError);
    try {
      listenOnFd(server, socket, backlog);
    } catch (error) {
      server.off('listening', onListening);
      server.off('error', onError);
      reject(error);
    }
  });
}
