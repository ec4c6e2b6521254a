// Patches Node's listen once per process: `net.Server.prototype._listen2` (where a standalone process
// creates its handle) and, in a cluster worker, `cluster._getServer` (where a worker asks the primary
// for one). Node's own `listen()` stays in front, so argument checks, errors thrown, DNS lookups,
// callback and event order are Node's. A process-wide marker (a global symbol) keeps a second copy of
// the package (the runner's and the app's own) from patching again.
import cluster from 'node:cluster';
import net from 'node:net';
import { realEdges } from '../listen/listen-reuseport';
import { OWN_LISTEN } from '../listen/listen-modes';
import { defaultGroup } from '../ports/ownership';
import { type ListenCall, routeListen } from './route';
import { type Listen2, listenStandalone } from './standalone';
import { type GetServer, getServerInWorker } from './worker';

const INSTALLED = Symbol.for('reuseport.register');

type Patched = typeof net.Server.prototype & { _listen2: Listen2; [INSTALLED]?: string; [OWN_LISTEN]?: boolean };
type ClusterInternals = typeof cluster & { _getServer?: GetServer };

// Servers whose current listen() asked for `exclusive: true`, and those the package listens on itself.
const exclusive = new WeakSet<net.Server>();
const own = new WeakSet<net.Server>();

function callOf(server: net.Server, port: number | null, addressType: number | string | null, fd: unknown): ListenCall {
  const hasHandle = Boolean((server as unknown as { _handle: unknown })._handle);
  return { port, addressType, fd, hasHandle, exclusive: exclusive.has(server), own: own.has(server) };
}

function note(set: WeakSet<net.Server>, server: net.Server, yes: boolean): void {
  if (yes) set.add(server);
  else set.delete(server);
}

/** Whether the hook is installed in this process (by this copy of the package or another). */
export function isHookInstalled(): boolean {
  return typeof (net.Server.prototype as Patched)[INSTALLED] === 'string';
}

/** Installs the hook; does nothing when a copy of the package already did. Returns whether this call installed it. */
export function installHook(): boolean {
  const proto = net.Server.prototype as Patched;
  if (isHookInstalled()) return false;
  Object.defineProperty(proto, INSTALLED, { value: __filename, enumerable: false });
  const listen = proto.listen;
  // Notes what only listen() sees: `exclusive: true`, and the package's own listens.
  proto.listen = function listen_(this: net.Server, ...args: unknown[]) {
    const first = args[0] as { exclusive?: unknown } | null | undefined;
    const self = this as Patched;
    note(own, this, self[OWN_LISTEN] === true);
    note(exclusive, this, typeof first === 'object' && first !== null && first.exclusive === true);
    return (listen as (...a: unknown[]) => net.Server).apply(this, args);
  } as typeof proto.listen;

  const listen2 = proto._listen2;
  proto._listen2 = function _listen2(this: net.Server, ...args: Parameters<Listen2>) {
    const [, port, addressType, , fd] = args;
    // In a worker, a listen without a handle here is an exclusive one: Node's, as asked.
    if (cluster.isWorker || routeListen(callOf(this, port, addressType, fd)).through === 'node') {
      listen2.apply(this, args);
      return;
    }
    listenStandalone(this, listen2, args, realEdges(), defaultGroup());
  };

  const internals = cluster as ClusterInternals;
  const getServer = internals._getServer;
  if (cluster.isWorker && typeof getServer === 'function') {
    const original: GetServer = (server, query, callback) => getServer.call(cluster, server, query, callback);
    internals._getServer = function _getServer(server, query, callback) {
      if (!(server instanceof net.Server) || routeListen(callOf(server, query.port, query.addressType, query.fd)).through === 'node') {
        original(server, query, callback);
        return;
      }
      getServerInWorker(server, query, callback, original, realEdges(), defaultGroup());
    };
  }
  return true;
}
