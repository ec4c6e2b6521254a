// A cluster worker that listens on its own socket (reuseport, exclusive, or a slot socket lent by the
// supervisor) bypasses node:cluster's primary, so Node neither tells the primary that it listens nor
// closes the server when the worker disconnects. This file does both, as Node does for the servers it
// shares, so that every cluster-based manager (PM2, a hand-written primary) sees such a worker as it
// sees any other:
// - 'listening': the primary gets node:cluster's own message, so `worker.on('listening', address)` and
//   `cluster.on('listening', worker, address)` fire with { address, port, addressType } (PM2's reload
//   waits for it, else for its listen timeout);
// - disconnect: `worker.disconnect()` in the primary (or `cluster.worker.disconnect()` here) closes the
//   server, as Node closes shared ones; an own SO_REUSEPORT socket closes with closeListener, so the
//   connections waiting in its queue go to the port's other sockets instead of being reset.
import cluster from 'node:cluster';
import net from 'node:net';
import { closeListener } from './close-listener';

type InternalProcess = NodeJS.Process & {
  on(event: 'internalMessage', listener: (message: unknown) => void): InternalProcess;
};

/** How a server's socket must close when the worker disconnects. */
export type SocketOwnership =
  /** This process's own socket: closing it resets its accept queue, so closeListener moves it first. */
  | 'own'
  /** A socket another process keeps open (a supervisor's slot): a plain close loses nothing. */
  | 'lent';

// Node's own internal message (lib/internal/cluster/child.js sends it from the server's 'listening').
interface ClusterMessage {
  cmd: 'NODE_CLUSTER';
  act: string;
}

function isClusterMessage(message: unknown): message is ClusterMessage {
  return typeof message === 'object' && message !== null && (message as ClusterMessage).cmd === 'NODE_CLUSTER';
}

const servers = new Map<net.Server, SocketOwnership>();
let watching = false;

/** Closes every server this worker listens on with its own socket; resolves once their sockets are closed. */
export async function closeOwnListeners(): Promise<void> {
  const closing = [...servers].map(async ([server, ownership]) => {
    servers.delete(server);
    if (!server.listening) return;
    if (ownership === 'own') await closeListener(server);
    else server.close();
  });
  await Promise.all(closing);
}

function watchDisconnect(): void {
  if (watching) return;
  watching = true;
  // The primary's worker.disconnect() arrives as this message; Node's own handler closes the servers it
  // shares and cuts the channel, and this one closes ours.
  (process as InternalProcess).on('internalMessage', (message) => {
    if (isClusterMessage(message) && message.act === 'disconnect') void closeOwnListeners();
  });
  // cluster.worker.disconnect() in this worker: the channel closes with exitedAfterDisconnect set (an
  // unexpected disconnect makes Node exit the worker at once, before this runs).
  process.on('disconnect', () => {
    if (cluster.worker?.exitedAfterDisconnect) void closeOwnListeners();
  });
}

/**
 * Makes a server that listens on its own socket in a cluster worker behave towards node:cluster as a
 * shared one: the primary sees it listen, and a disconnect closes it. Does nothing outside a worker.
 */
export function joinCluster(server: net.Server, ownership: SocketOwnership): void {
  const worker = cluster.worker;
  if (!cluster.isWorker || !worker || !process.connected) return;
  const address = server.address();
  if (address === null || typeof address === 'string') return;
  servers.set(server, ownership);
  server.once('close', () => servers.delete(server));
  watchDisconnect();
  (worker as typeof worker & { state: string }).state = 'listening';
  const message = {
    cmd: 'NODE_CLUSTER',
    act: 'listening',
    address: address.address,
    port: address.port,
    addressType: net.isIPv6(address.address) ? 6 : 4,
    fd: undefined,
  };
  process.send?.(message, undefined, {}, () => undefined);
}
