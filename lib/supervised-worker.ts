// The worker's side of startCluster(): borrow the slot's listening socket from the primary, tell the
// primary when listening, and drain on its word. Used by listenReusePort when the worker is supervised.
import cluster from 'node:cluster';
import type net from 'node:net';
import { drainServer, trackConnections } from './drain';
import { type SlotReply, type SupervisorMessage, isSupervisorMessage, supervisorMessage } from './primary-link';
import type { TcpHandle } from './tcp-handle';

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

type InternalProcess = NodeJS.Process & {
  on(event: 'internalMessage', listener: (message: unknown, handle: unknown) => void): InternalProcess;
  off(event: 'internalMessage', listener: (message: unknown, handle: unknown) => void): InternalProcess;
};
const channel = process as InternalProcess;

let sequence = 0;

/** Asks the primary for this slot's socket on address:port; resolves with the handle it lends. */
export function borrowSlotSocket(
  target: { address: string; port: number; ipv6Only: boolean },
  timeoutMs = 10_000,
): Promise<{ handle: TcpHandle; port: number }> {
  const seq = ++sequence;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      channel.off('internalMessage', onMessage);
      reject(new Error(`reuseport: the supervisor did not lend a socket within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (message: unknown, handle: unknown) => {
      const reply = message as SlotReply;
      if (!isSupervisorMessage(reply) || reply.act !== 'slot-reply' || reply.seq !== seq) return;
      clearTimeout(timer);
      channel.off('internalMessage', onMessage);
      if (reply.error || !handle) {
        reject(Object.assign(new Error(reply.error?.message ?? 'the supervisor lent no socket'), reply.error));
        return;
      }
      resolve({ handle: handle as TcpHandle, port: reply.port ?? target.port });
    };
    channel.on('internalMessage', onMessage);
    process.send?.(supervisorMessage({ act: 'slot', seq, ...target }));
  });
}

const servers = new Set<net.Server>();
let listeningForDrain = false;

// One drain order drains every server this worker registered, then reports back.
function onSupervisorMessage(message: unknown): void {
  const order = message as SupervisorMessage;
  if (!isSupervisorMessage(order) || order.act !== 'drain') return;
  const timeoutMs = order.timeoutMs ?? 10_000;
  Promise.all([...servers].map((server) => drainServer(server, timeoutMs))).then((left) => {
    process.send?.(supervisorMessage({ act: 'drained', destroyed: left.reduce((a, b) => a + b, 0) }));
  });
}

/** Registers a listening server with the supervisor: it is drained on reload, and the primary told it listens. */
export function registerWithSupervisor(server: net.Server, supervision: Supervision): void {
  trackConnections(server);
  servers.add(server);
  server.once('close', () => servers.delete(server));
  if (!listeningForDrain) {
    listeningForDrain = true;
    channel.on('internalMessage', onSupervisorMessage);
  }
  const address = server.address() as net.AddressInfo | null;
  process.send?.(supervisorMessage({ act: 'listening', slot: supervision.slot, port: address?.port ?? 0 }));
}
