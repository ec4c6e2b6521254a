// The slot sockets on one address and port, as the supervisor keeps them: one per slot whose worker
// listens there, with each one's place in the kernel's group, their key, their steering and who holds them.
import fs from 'node:fs';
import type { NativeBinding, NativeSocket } from '../../binding';
import { explainTaken } from '../../ports/holder-advice';
import { foreignHolderError, foreignHolders, overlaps, registerSocket } from '../../ports/ownership';
import { type ListeningSocket, listeningSocketsOn } from '../../ports/port-holders';
import type { SteeringState } from '../core/types';
import { type TcpHandle, tcpHandleFromFd } from '../../tcp-handle';

const BACKLOG = 511;

/** A socket bound (not listening yet) and how to take its registration back. */
export interface BoundSocket {
  socket: NativeSocket;
  unregister: () => void;
}

/** The key of the group of sockets on one address and port (port 0: the one a first request chose). */
export function groupKey(address: string, port: number, ipv6Only: boolean): string {
  return `${address}|${port}|${ipv6Only}`;
}

/** One lent socket: its libuv handle in the primary (to send) and where it is bound. */
export interface SlotSocket {
  handle: TcpHandle;
  fd: number;
  inode: string;
  address: string;
  port: number;
  ipv6Only: boolean;
  unregister: () => void;
}

/** What a worker asks for: the slot's socket on address:port (0 = the port the first slot got). */
export interface SlotRequest {
  address: string;
  port: number;
  ipv6Only: boolean;
  /** The worker's sharing group; false: no ownership check. */
  group: string | false;
}

/** The slot sockets on one address and port: one for each slot whose worker listens there. */
export interface SocketGroup {
  address: string;
  port: number;
  ipv6Only: boolean;
  /** By slot; undefined for a slot whose worker never asked for one, or once its socket was closed. */
  sockets: (SlotSocket | undefined)[];
  /**
   * The slot of each socket by its index in the kernel's SO_REUSEPORT group (the order they listened
   * in: a slot's socket joins at the end when its worker first asks). The steering programs return
   * these indexes. Once a socket closes the kernel moves another into its place, which a dup a worker
   * still holds can delay: the steering then stops (see SlotSockets.close).
   */
  order: number[];
  steering: SteeringState;
  /** The allowed slots of the program attached now ("0,2"), if any. */
  attached: string | undefined;
  /** What the workers asked for (the group's key) and the sharing group the sockets are registered to. */
  requested: { address: string; port: number };
  sharing: string | false;
  /** Whether a worker asked for it (adopted groups may be of a port no worker listens on). */
  used: boolean;
  /** The workers it was lent to that have not given it back (see giveBack). */
  holders: Set<Holder>;
  /**
   * The slots whose workers asked for it (listen there): steering sends new connections only to
   * their sockets, so a port only some workers listen on (an admin port of slot 0, a port per worker)
   * never queues a connection where no worker accepts.
   */
  wanted: Set<number>;
}

/** Who a socket is lent to: a worker, which may have died since. */
export interface Holder {
  isDead(): boolean;
}

/** Binds `count` sockets (not listening yet), registers them and checks the port's other holders. */
export function bindSockets(binding: NativeBinding, request: SlotRequest, port: number, count: number, alsoOurs: string[] = []): BoundSocket[] {
  const bound: BoundSocket[] = [];
  const release = () => {
    for (const { socket, unregister } of bound) {
      unregister();
      fs.closeSync(socket.fd);
    }
  };
  try {
    for (let i = 0; i < count; i++) {
      let socket: NativeSocket;
      try {
        socket = binding.openListener({ address: request.address, port: bound[0]?.socket.port ?? port, ipv6Only: request.ipv6Only, listen: false });
      } catch (error) {
        throw explainTaken(error as Error);
      }
      const unregister = request.group === false ? () => undefined : registerSocket(socket.fd, request.group);
      bound.push({ socket, unregister });
    }
    const first = bound[0]?.socket;
    if (first && request.group !== false) {
      // Bound, not listening: a holder without SO_REUSEPORT made the bind fail; one with it must be of the group.
      const ours = new Set([...alsoOurs, ...bound.map(({ socket }) => String(fs.fstatSync(socket.fd).ino))]);
      const foreign = foreignHolders(first.address, first.port, request.group, ours);
      if (foreign.length > 0) throw foreignHolderError(foreign, first.address, first.port, request.group);
    }
    return bound;
  } catch (error) {
    release();
    throw error;
  }
}

/** Listens (if asked) and wraps a bound socket in the handle that is sent to workers. */
export function wrapSocket(binding: NativeBinding, { socket, unregister }: BoundSocket, ipv6Only: boolean, listen: boolean): SlotSocket {
  try {
    if (listen) binding.listenSocket(socket.fd, BACKLOG);
    const handle = tcpHandleFromFd(socket.fd, socket.address, socket.port);
    const inode = String(fs.fstatSync(socket.fd).ino);
    return { handle, fd: socket.fd, inode, address: socket.address, port: socket.port, ipv6Only, unregister };
  } catch (error) {
    unregister();
    fs.closeSync(socket.fd);
    throw error;
  }
}

/** Closes sockets and ends their registrations (this process's copies: a worker's dup stays open). */
export function closeSockets(sockets: readonly (SlotSocket | undefined)[]): void {
  for (const socket of sockets) {
    socket?.handle.close();
    socket?.unregister();
  }
}

/** A new group's record, with no socket yet (the caller places them, in `sockets` and `order`). */
export function newGroup(
  at: { address: string; port: number; ipv6Only: boolean },
  requested: { address: string; port: number },
  sharing: string | false,
  steering: { enabled: boolean; reason: string },
): SocketGroup {
  return {
    address: at.address,
    port: at.port,
    ipv6Only: at.ipv6Only,
    sockets: [],
    order: [],
    steering: { address: at.address, port: at.port, enabled: steering.enabled, sticky: false, reason: steering.reason },
    attached: undefined,
    requested,
    sharing,
    used: false,
    holders: new Set(),
    wanted: new Set(),
  };
}

/**
 * Listening sockets on the groups' ports that are not the groups' own (a process that set
 * SO_REUSEPORT itself). 127.0.0.1:P and 0.0.0.0:P of one app overlap, and are not strangers to each other.
 */
export function strangersOf(groups: readonly SocketGroup[]): ListeningSocket[] {
  const ours = new Set(groups.flatMap((group) => group.sockets.flatMap((socket) => (socket ? [socket.inode] : []))));
  return groups.flatMap((group) => listeningSocketsOn(group.port).filter((socket) => !ours.has(socket.inode) && overlaps(socket.address, group.address)));
}

/** The kernel's indexes of `slots`' sockets in the group (pure; -1 for a slot with none). */
export function kernelIndexes(group: Pick<SocketGroup, 'order'>, slots: readonly number[]): number[] {
  return slots.map((slot) => group.order.indexOf(slot));
}

/**
 * One supervisor's groups by key (groupKey), and the port chosen for each port-0 request (later slots
 * and replacements join the port the first one got). Held by the slot sockets (slot-sockets.ts) and
 * shared with their hand-over (deploy/slot-handover.ts), which adopts and closes whole groups.
 */
export class SocketGroups extends Map<string, SocketGroup> {
  readonly chosenPorts = new Map<string, number>();
}
