// A UDP socket of its own in a cluster worker (reuseport, or exclusive) bypasses node:cluster's primary:
// this tells the primary it is bound (node:cluster's own 'listening', addressType 'udp4'/'udp6', as
// Node sends for a UDP socket it shares) and closes it on disconnect. Under startCluster it also tells
// the supervisor (the slot's 'listening') and closes it when the supervisor drains the worker.
import cluster from 'node:cluster';
import type dgram from 'node:dgram';
import type net from 'node:net';
import { channel, isSupervisorMessage, supervisorMessage, toPrimary } from '../cluster/ipc';
import type { Supervision } from '../worker/supervised-worker';

const sockets = new Set<dgram.Socket>();
// TCP servers this worker registered with the supervisor: while one is open, its drain answers.
const supervisedServers = new Set<net.Server>();
let watching = false;

/** Notes a TCP server registered with the supervisor, so a drain is answered once by the TCP side. */
export function trackSupervisedServer(server: net.Server): void {
  supervisedServers.add(server);
  server.once('close', () => supervisedServers.delete(server));
}

function closeAll(): void {
  for (const socket of sockets) {
    sockets.delete(socket);
    socket.close();
  }
}

function watch(): void {
  if (watching) return;
  watching = true;
  channel.on('internalMessage', (message) => {
    const command = message as { cmd?: string; act?: string };
    if (command?.cmd === 'NODE_CLUSTER' && command.act === 'disconnect') closeAll();
    if (!isSupervisorMessage(message) || message.act !== 'drain') return;
    // A datagram socket has nothing in flight to wait for: closing it is the whole drain. The TCP
    // side answers when this worker has servers of its own, after their connections end.
    const answer = supervisedServers.size === 0 && sockets.size > 0;
    closeAll();
    if (answer) toPrimary(supervisorMessage({ act: 'drained', destroyed: 0 }));
  });
  process.on('disconnect', () => {
    if (cluster.worker?.exitedAfterDisconnect) closeAll();
  });
}

/**
 * Makes a UDP socket bound on its own in a cluster worker visible to node:cluster (and, supervised,
 * to the supervisor's slot) and closed on disconnect or drain. Does nothing outside a worker.
 */
export function joinClusterDatagram(socket: dgram.Socket, supervision: Supervision | undefined): void {
  const worker = cluster.worker;
  if (!cluster.isWorker || !worker || !process.connected) return;
  const address = socket.address();
  sockets.add(socket);
  socket.once('close', () => sockets.delete(socket));
  watch();
  (worker as typeof worker & { state: string }).state = 'listening';
  toPrimary({
    cmd: 'NODE_CLUSTER',
    act: 'listening',
    address: address.address,
    port: address.port,
    addressType: (socket as dgram.Socket & { type: string }).type,
    fd: undefined,
  });
  if (supervision) toPrimary(supervisorMessage({ act: 'listening', slot: supervision.slot, port: address.port }));
}
