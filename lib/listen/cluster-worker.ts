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
//   connections waiting in its queue go to the port's other sockets instead of being reset;
// - PM2 (cluster mode) stops an instance with a signal, never a disconnect (`pm2 reload` kills the old
//   instance with SIGINT, or PM2_KILL_SIGNAL, once its replacement listens): that signal first closes the
//   server the same way and lets the requests in flight end (at most KILL_GRACE_MS), then has its
//   default effect, unless the app listens for it itself, in which case the app decides when to exit.
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

/** How long a PM2 kill signal waits for the requests in flight once the listener is closed. */
export const KILL_GRACE_MS = 1_000;

/** The signal PM2 stops this process with, when PM2 runs it in cluster mode (from the env PM2 gives its apps). */
export function pm2KillSignal(env: NodeJS.ProcessEnv): NodeJS.Signals | undefined {
  if (env.pm_id === undefined || env.exec_mode !== 'cluster_mode') return undefined;
  const signal = env.PM2_KILL_SIGNAL ?? 'SIGINT';
  return /^SIG[A-Z0-9]+$/.test(signal) ? (signal as NodeJS.Signals) : undefined;
}

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

// Resolves once the server has closed (its connections ended), or after `ms`.
function closed(server: net.Server, ms: number): Promise<void> {
  if (!server.listening && (server as net.Server & { _connections: number })._connections === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    server.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function watchKillSignal(signal: NodeJS.Signals): void {
  const onSignal = () => {
    const appDecides = process.listenerCount(signal) > 1;
    const closing = [...servers.keys()];
    void closeOwnListeners()
      .then(() => Promise.all(closing.map((server) => closed(server, KILL_GRACE_MS))))
      .finally(() => {
        if (appDecides) return;
        process.off(signal, onSignal);
        process.kill(process.pid, signal);
      });
  };
  process.on(signal, onSignal);
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
  const signal = pm2KillSignal(process.env);
  if (signal) watchKillSignal(signal);
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
