// closeListener(): stop listening losing as little as possible, for processes that each bind their
// own SO_REUSEPORT socket (no supervisor). Closing such a socket resets the connections waiting in
// its accept queue unless net.ipv4.tcp_migrate_req=1 moves them to the other sockets of the port.
import fs from 'node:fs';
import type net from 'node:net';
import { listeningSocketsOn } from '../ports/port-holders';

/** Options of closeListener. */
export interface CloseListenerOptions {
  /** How long to wait for the accept queue to empty before closing anyway. Default 500 ms. */
  queueTimeoutMs?: number;
}

/** How it went: whether the kernel migrates queues here, and how many connections were still queued at close. */
export interface CloseListenerResult {
  migrates: boolean;
  queuedAtClose: number | undefined;
}

function readMigrateReq(): number | undefined {
  try {
    return Number(fs.readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim());
  } catch {
    return undefined;
  }
}

// The accept-queue length of our listening socket, by its inode.
function acceptQueue(port: number, inode: number): number | undefined {
  return listeningSocketsOn(port).find((socket) => socket.inode === String(inode))?.queued;
}

interface ListeningHandle {
  fd?: number;
  listen?(backlog: number): number;
}

/**
 * Closes a listening server's socket. Where the kernel migrates queued connections
 * (tcp_migrate_req=1) it simply closes. Otherwise it first shrinks the accept queue to nothing, so
 * new connections go to the port's other sockets (a refused SYN is retried by the client and hashed
 * again), keeps accepting until the queue is empty, and only then closes.
 */
export function closeListener(server: net.Server, options: CloseListenerOptions = {}): Promise<CloseListenerResult> {
  return closeListenerWith(server, options, (listening) => listening.close());
}

/**
 * closeListener with the last step given: `close` closes the server (closeListener: server.close(),
 * which for an http server since Node 19 also closes idle keep-alive connections; a drain closes the
 * listening socket alone and ends idle connections after their grace).
 */
export async function closeListenerWith(server: net.Server, options: CloseListenerOptions, close: (server: net.Server) => void): Promise<CloseListenerResult> {
  const timeoutMs = options.queueTimeoutMs ?? 500;
  const migrates = readMigrateReq() === 1;
  const handle = (server as unknown as { _handle?: ListeningHandle })._handle;
  let queuedAtClose: number | undefined;
  if (!migrates && server.listening && handle?.fd !== undefined && handle.fd >= 0 && handle.listen) {
    const inode = fs.fstatSync(handle.fd).ino;
    const { port } = server.address() as net.AddressInfo;
    handle.listen(0);
    const deadline = performance.now() + timeoutMs;
    let emptyChecks = 0;
    while (performance.now() < deadline && emptyChecks < 3) {
      await new Promise((resolve) => setTimeout(resolve, 2));
      emptyChecks = acceptQueue(port, inode) === 0 ? emptyChecks + 1 : 0;
    }
    queuedAtClose = acceptQueue(port, inode);
  }
  // The listening socket closes at once; open connections go on until they end, as with close().
  close(server);
  return { migrates, queuedAtClose };
}
