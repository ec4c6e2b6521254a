// The worker's side of startCluster(): borrow the slot's listening socket from the primary, tell the
// primary when listening, answer its pings, and drain on its word. Used by listenReusePort when the worker is supervised.
import cluster from 'node:cluster';
import net from 'node:net';
import type tls from 'node:tls';
import { Balance, isLimit } from './balance';
import { drainServer, trackConnections } from './drain';
import { drainSignal, startDraining } from './drain-signal';
import { ProgressCell } from './progress';
import {
  type Handlers,
  type KeysMessage,
  type PrimaryMessage,
  channel,
  dispatch,
  isSupervisorMessage,
  request,
  reviveError,
  serializeError,
  supervisorMessage,
  toPrimary,
} from '../cluster/ipc';
import type { TcpHandle } from '../tcp-handle';

/** Which slot of which supervisor this worker fills. */
export interface Supervision {
  slot: number;
  supervisorPid: number;
}

export const SLOT_ENV = 'REUSEPORT_SLOT';
export const SUPERVISOR_ENV = 'REUSEPORT_SUPERVISOR';

/** This worker's slot, when startCluster() forked it (and is its parent). */
export function readSupervision(env: NodeJS.ProcessEnv = process.env): Supervision | undefined {
  if (!cluster.isWorker) return undefined;
  const slot = Number(env[SLOT_ENV]);
  const supervisorPid = Number(env[SUPERVISOR_ENV]);
  if (!Number.isInteger(slot) || slot < 0 || supervisorPid !== process.ppid) return undefined;
  return { slot, supervisorPid };
}

// TLS servers that take the supervisor's ticket keys, and get each new one at a rotation.
class KeyedServers {
  readonly #servers = new Set<tls.Server>();
  #listening = false;
  readonly #onRotation = (message: unknown) => {
    const keys = message as KeysMessage;
    if (!isSupervisorMessage(keys) || keys.act !== 'keys' || keys.seq !== undefined || typeof keys.keys !== 'string') return;
    const key = Buffer.from(keys.keys, 'base64');
    for (const server of this.#servers) server.setTicketKeys(key);
    key.fill(0);
  };

  async take(server: tls.Server, timeoutMs: number): Promise<boolean> {
    if (!this.#listening) {
      this.#listening = true;
      channel.on('internalMessage', this.#onRotation);
    }
    const { reply } = await request({ act: 'keys-request' }, timeoutMs, { who: 'the supervisor', what: 'answer for the TLS ticket keys' });
    if (!reply.keys) return false;
    const key = Buffer.from(reply.keys, 'base64');
    server.setTicketKeys(key);
    key.fill(0);
    this.#servers.add(server);
    server.once('close', () => this.#servers.delete(server));
    return true;
  }
}
const keyedServers = new KeyedServers();

/**
 * Asks the supervisor for its TLS ticket key and applies it to `server` before it listens (so its
 * first ticket already resumes on every worker); later keys come at each rotation. Resolves false
 * when the supervisor shares none (ticketKeys: false), leaving the server its own.
 */
export function takeTicketKeys(server: tls.Server, timeoutMs = 10_000): Promise<boolean> {
  return keyedServers.take(server, timeoutMs);
}

/** A slot socket the supervisor lent: its handle, the port it is bound to, and how to give it back. */
export interface LentSocket {
  handle: TcpHandle;
  port: number;
  steering: string | undefined;
  /**
   * Tells the supervisor that the app closed its server on this socket (once): when no worker
   * listens on the address any more, the supervisor closes its sockets there, as Node frees a port.
   * A drain's close says nothing: the worker is being replaced, and the slot keeps its socket.
   */
  release: () => void;
}

// The release message for one lent socket, sent at most once and never while draining.
function releaser(where: { address: string; port: number; ipv6Only: boolean }): () => void {
  let sent = false;
  return () => {
    if (sent || drainSignal().aborted) return;
    sent = true;
    toPrimary(supervisorMessage({ act: 'release', ...where }));
  };
}

/** Asks the primary for this slot's socket on address:port; resolves with the handle it lends. */
export async function borrowSlotSocket(
  target: { address: string; port: number; ipv6Only: boolean; group: string | false },
  timeoutMs = 10_000,
): Promise<LentSocket> {
  const { reply, handle } = await request({ act: 'slot', ...target }, timeoutMs, { who: 'the supervisor', what: 'lend a socket' });
  if (reply.error || !handle) throw reviveError(reply.error, 'the supervisor lent no socket');
  const port = reply.port ?? target.port;
  return { handle: handle as TcpHandle, port, steering: reply.steering, release: releaser({ address: target.address, port, ipv6Only: target.ipv6Only }) };
}

/**
 * How long after an accept the counts go to the primary (at most one message per this many ms, and
 * none while nothing is accepted). With a progress cell (Linux), only accepts from slots lent to this
 * worker need one: its own slot's count and its liveness are in the cell, and the primary asks
 * ('ping') only when its slot socket has connections waiting while the cell stands still; this
 * worker answers with its counts.
 */
export const ACCEPT_REPORT_MS = 250;

// Node's own bookkeeping of a server's connections (net.js: `_connections`, and `socket._server`,
// which a socket's destroy decrements and whose close callback waits for).
type Counted = net.Server & { _connections: number; maxConnections?: number | null };

// Moves an accepted socket from the borrowed listener to the application's server, as if that server
// had accepted it: counted by its getConnections(), its close() waits for it, maxConnections holds.
function adopt(target: net.Server, listener: net.Server, socket: net.Socket): void {
  const to = target as Counted;
  const from = listener as Counted;
  from._connections -= 1;
  if (to.maxConnections != null && to._connections >= to.maxConnections) {
    target.emit('drop', {
      localAddress: socket.localAddress,
      localPort: socket.localPort,
      localFamily: socket.localFamily,
      remoteAddress: socket.remoteAddress,
      remotePort: socket.remotePort,
      remoteFamily: socket.remoteFamily,
    });
    (socket as net.Socket & { _server: net.Server | null })._server = null;
    socket.destroy();
    return;
  }
  to._connections += 1;
  (socket as net.Socket & { _server: net.Server; server: net.Server }).server = target;
  (socket as net.Socket & { _server: net.Server })._server = target;
  target.emit('connection', socket);
}

/** This worker's link to its supervisor (one per process, made at its first registered server): its servers, loans, counts and orders. */
class WorkerLink {
  readonly #slot: number;
  readonly servers = new Set<net.Server>();
  // Slot sockets lent to this worker while their own worker cannot accept: slot -> listeners.
  readonly #loans = new Map<number, net.Server[]>();
  // Connections accepted per slot since the start (the own slot's in #acceptedHere, borrowed ones in
  // #accepted); the primary adds up the difference.
  #acceptedHere = 0;
  readonly #accepted = new Map<number, number>();
  readonly #borrowedSockets = new WeakSet<net.Socket>();
  #reportTimer: NodeJS.Timeout | undefined;
  // This worker's progress cell in the supervisor's file, when it has one (Linux).
  readonly #progress: ProgressCell | undefined;
  // Its load reports and shedding (worker/balance.ts), with a cell.
  readonly balance: Balance | undefined;

  // What the supervisor tells this worker, by act (replies to requests are taken by request()).
  readonly #orders: Handlers<PrimaryMessage, [unknown]> = {
    lend: (order, handle) => {
      if (handle) this.#borrow(order.slot, order.port, handle);
    },
    ping: () => this.#report(),
    recall: (order) => this.#giveBack(order.slot),
    balance: (order) => {
      if (isLimit(order.limit) && !drainSignal().aborted) this.balance?.setLimit(order.limit);
    },
    drain: (order) => {
      this.balance?.stop();
      startDraining('the supervisor replaces or stops this worker (a reload, an upgrade or a shutdown)');
      // Borrowed sockets first, so that nothing new arrives from them while this worker finishes.
      for (const slot of [...this.#loans.keys()]) this.#giveBack(slot);
      const timeoutMs = order.timeoutMs ?? 10_000;
      Promise.all([...this.servers].map((server) => drainServer(server, timeoutMs))).then((left) => {
        toPrimary(supervisorMessage({ act: 'drained', destroyed: left.reduce((a, b) => a + b, 0) }));
      });
    },
  };

  constructor(supervision: Supervision) {
    this.#slot = supervision.slot;
    this.#progress = ProgressCell.open(process.env, supervision.supervisorPid);
    if (this.#progress) this.balance = new Balance(this.servers, this.#progress);
    channel.on('internalMessage', (message: unknown, handle: unknown) => {
      if (isSupervisorMessage(message)) dispatch(this.#orders, message as PrimaryMessage, handle);
    });
  }

  /** Whether this socket came in through a borrowed slot (counted there). */
  borrowed(socket: net.Socket): boolean {
    return this.#loans.size > 0 && this.#borrowedSockets.has(socket);
  }

  count(slot: number): void {
    // This runs for every connection. The own slot's count: with a progress cell, a store there
    // (the supervisor reads it; no message), else in a field that the next beat carries.
    if (slot === this.#slot) {
      this.#acceptedHere += 1;
      if (this.#progress) {
        this.#progress.accepted();
        return;
      }
    } else this.#accepted.set(slot, (this.#accepted.get(slot) ?? 0) + 1);
    if (!this.#reportTimer) {
      this.#reportTimer = setTimeout(() => this.#report(), ACCEPT_REPORT_MS);
      this.#reportTimer.unref();
    }
  }

  #report(): void {
    if (this.#reportTimer) clearTimeout(this.#reportTimer);
    this.#reportTimer = undefined;
    toPrimary(supervisorMessage({ act: 'beat', slot: this.#slot, accepted: { ...Object.fromEntries(this.#accepted), [this.#slot]: this.#acceptedHere } }));
  }

  // A borrowed socket feeds the application's own server, so its handlers, connection tracking and
  // drain see those connections like any other ('connection' is the documented way in).
  // A socket of a port none of its servers listens on is closed (this process's copy: its queue stays
  // with the supervisor), never handed to a server of another port.
  #borrow(slot: number, port: number, handle: unknown): void {
    const target = [...this.servers].find((server) => (server.address() as net.AddressInfo | null)?.port === port);
    if (!target) {
      (handle as { close?: () => void }).close?.();
      return;
    }
    const listener = net.createServer((socket) => {
      this.count(slot);
      this.#borrowedSockets.add(socket);
      adopt(target, listener, socket);
    });
    listener.on('error', () => listener.close());
    listener.listen(handle as net.ListenOptions);
    this.#loans.set(slot, [...(this.#loans.get(slot) ?? []), listener]);
  }

  // Gives a borrowed slot back: closing this process's copy of the socket leaves its queue intact.
  #giveBack(slot: number): void {
    for (const listener of this.#loans.get(slot) ?? []) if (listener.listening) net.Server.prototype.close.call(listener);
    this.#loans.delete(slot);
  }
}

let link: WorkerLink | undefined;

/** Tells the supervisor that a listen failed, so startCluster() or reload() rejects with the real error. */
export function reportListenFailure(error: unknown, supervision: Supervision): void {
  toPrimary(supervisorMessage({ act: 'failed', slot: supervision.slot, error: serializeError(error) }));
}

/** Registers a listening server with the supervisor: drained on reload, fed by lent slots, announced to the primary. */
export function registerWithSupervisor(server: net.Server, supervision: Supervision): void {
  // Closed before this ran (a port probe that listens and closes at once): nothing to serve or announce.
  if (!server.listening) return;
  link ??= new WorkerLink(supervision);
  const worker = link;
  // Connections handed in from a borrowed slot were counted there.
  trackConnections(server, (socket) => {
    if (!worker.borrowed(socket)) worker.count(supervision.slot);
  });
  worker.servers.add(server);
  server.once('close', () => worker.servers.delete(server));
  worker.balance?.added(server);
  const address = server.address() as net.AddressInfo | null;
  toPrimary(supervisorMessage({ act: 'listening', slot: supervision.slot, port: address?.port ?? 0 }));
}
