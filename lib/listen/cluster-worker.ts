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
//   instance with SIGINT, or PM2_KILL_SIGNAL, once its replacement listens): that signal closes the
//   server the same way and drains it as the supervisor drains a worker (what is in flight answered
//   with `Connection: close`, idle keep-alive connections closed after their grace) within PM2's
//   kill_timeout, then has its default effect, unless the app listens for it itself, in which case
//   the app decides when to exit.
// Each of these aborts drainSignal(). The servers and the watch are process-wide (global symbols), so
// two copies of the package in one process (the runner's hook and the app's own) act as one.
import cluster from 'node:cluster';
import net from 'node:net';
import { closeListenerWith } from './close-listener';
import { drainServer, trackConnections } from '../worker/drain';
import { startDraining } from '../worker/drain-signal';
import { channel } from '../cluster/ipc';

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

// Process-wide: every copy of the package adds its servers to one map, and one copy watches.
const STATE = Symbol.for('reuseport.clusterWorker');
type State = { servers: Map<net.Server, SocketOwnership>; watching: boolean };
const holder = globalThis as typeof globalThis & { [STATE]?: State };
holder[STATE] ??= { servers: new Map(), watching: false };
const state = holder[STATE];
const { servers } = state;

/** PM2's kill_timeout when the app's config sets none (PM2's own default). */
export const PM2_KILL_TIMEOUT_MS = 1_600;
/** What a drain under PM2 leaves of kill_timeout, for the process to exit before PM2's SIGKILL. */
export const PM2_EXIT_MARGIN_MS = 300;

/** How long a drain under PM2 may take: its kill_timeout (from the env PM2 gives its apps) less the margin to exit. */
export function pm2DrainMs(env: NodeJS.ProcessEnv): number {
  const configured = Number(env.kill_timeout ?? env.PM2_KILL_TIMEOUT);
  const killTimeout = Number.isFinite(configured) && configured > 0 ? configured : PM2_KILL_TIMEOUT_MS;
  return Math.max(killTimeout - PM2_EXIT_MARGIN_MS, 100);
}

/** The signal PM2 stops this process with, when PM2 runs it in cluster mode (from the env PM2 gives its apps). */
export function pm2KillSignal(env: NodeJS.ProcessEnv): NodeJS.Signals | undefined {
  if (env.pm_id === undefined || env.exec_mode !== 'cluster_mode') return undefined;
  const signal = env.PM2_KILL_SIGNAL ?? 'SIGINT';
  return /^SIG[A-Z0-9]+$/.test(signal) ? (signal as NodeJS.Signals) : undefined;
}

// net.Server's close, not http.Server's: since Node 19 that one also destroys idle keep-alive
// connections, whose clients may be sending their next request at that instant.
function closeListeningSocket(server: net.Server): void {
  net.Server.prototype.close.call(server);
}

/**
 * Closes every server this worker listens on with its own socket; resolves once their sockets are
 * closed. `how` 'close' is server.close() (a disconnect, as Node closes the servers it shares);
 * 'drain' closes the listening socket alone, for drainServer to end the connections.
 */
export async function closeOwnListeners(how: 'close' | 'drain' = 'close'): Promise<void> {
  const close = how === 'drain' ? closeListeningSocket : (server: net.Server) => server.close();
  const closing = [...servers].map(async ([server, ownership]) => {
    servers.delete(server);
    if (!server.listening) return;
    if (ownership === 'own') await closeListenerWith(server, {}, close);
    else close(server);
  });
  await Promise.all(closing);
}

// Marks the package's own signal listeners, so they never count as the app's.
const OWN_LISTENER = Symbol.for('reuseport.ownSignalListener');

/** Whether the app itself listens for the signal (any listener that is not the package's own). */
export function appListensFor(signal: NodeJS.Signals): boolean {
  return process.listeners(signal).some((listener) => !(listener as { [OWN_LISTENER]?: boolean })[OWN_LISTENER]);
}

function watchKillSignal(signal: NodeJS.Signals): void {
  const onSignal = () => {
    const appDecides = appListensFor(signal);
    startDraining(`PM2 stops this instance (${signal})`);
    const draining = [...servers.keys()];
    const drainMs = pm2DrainMs(process.env);
    void closeOwnListeners('drain')
      .then(() => Promise.all(draining.map((server) => drainServer(server, drainMs))))
      .finally(() => {
        if (appDecides) return;
        process.off(signal, onSignal);
        process.kill(process.pid, signal);
      });
  };
  Object.defineProperty(onSignal, OWN_LISTENER, { value: true });
  process.on(signal, onSignal);
}

function watchDisconnect(): void {
  if (state.watching) return;
  state.watching = true;
  // The primary's worker.disconnect() arrives as this message; Node's own handler closes the servers it
  // shares and cuts the channel, and this one closes ours.
  channel.on('internalMessage', (message) => {
    if (isClusterMessage(message) && message.act === 'disconnect') {
      startDraining("node:cluster's disconnect");
      void closeOwnListeners();
    }
  });
  // cluster.worker.disconnect() in this worker: the channel closes with exitedAfterDisconnect set (an
  // unexpected disconnect makes Node exit the worker at once, before this runs).
  process.on('disconnect', () => {
    if (cluster.worker?.exitedAfterDisconnect) {
      startDraining('cluster.worker.disconnect()');
      void closeOwnListeners();
    }
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
  // Under PM2 its stop signal drains the server: its http2 sessions are followed for their GOAWAY.
  if (ownership === 'own' && pm2KillSignal(process.env)) trackConnections(server);
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
