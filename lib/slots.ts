// The supervisor's slot sockets: per worker slot and address, one SO_REUSEPORT socket that the
// primary opens (bound, never accepted on) and lends to whichever worker fills the slot, so a
// worker's exit never closes the socket, and connections waiting in its queue wait for the next one.
import fs from 'node:fs';
import type { NativeBinding } from './binding';
import { explainListenError } from './errors';
import { foreignHolderError, foreignHolders, registerSocket } from './ownership';
import { type TcpHandle, tcpHandleFromFd } from './tcp-handle';

/** One lent socket: its libuv handle in the primary (to send) and where it is bound. */
export interface SlotSocket {
  handle: TcpHandle;
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

/** Slot sockets by slot and address; creates them on first request, closes them on demand. */
export class SlotSockets {
  readonly #binding: NativeBinding;
  readonly #sockets = new Map<number, Map<string, SlotSocket>>();
  // Port 0 means "any", once: later slots and replacements join the port the first one got.
  readonly #chosenPorts = new Map<string, number>();

  constructor(binding: NativeBinding) {
    this.#binding = binding;
  }

  /** The socket for `slot` on the requested address, opened with SO_REUSEPORT if it is new. */
  get(slot: number, request: SlotRequest): SlotSocket {
    const wildcardKey = `${request.address}|${request.port}|${request.ipv6Only}`;
    const port = request.port === 0 ? (this.#chosenPorts.get(wildcardKey) ?? 0) : request.port;
    const key = `${request.address}|${port}|${request.ipv6Only}`;
    const perSlot = this.#sockets.get(slot) ?? new Map<string, SlotSocket>();
    this.#sockets.set(slot, perSlot);
    const known = perSlot.get(key);
    if (known) return known;
    const { group } = request;
    let opened: ReturnType<NativeBinding['openListener']>;
    try {
      opened = this.#binding.openListener({ address: request.address, port, ipv6Only: request.ipv6Only, listen: false });
    } catch (error) {
      throw explainListenError(error as Error);
    }
    let handle: TcpHandle;
    let unregister: () => void = () => undefined;
    try {
      if (group !== false) {
        // Bound but not listening: a holder without SO_REUSEPORT would have made the bind fail;
        // one with it must be of the group.
        unregister = registerSocket(opened.fd, group);
        const foreign = foreignHolders(opened.address, opened.port, group, new Set([String(fs.fstatSync(opened.fd).ino)]));
        if (foreign.length > 0) throw foreignHolderError(foreign, opened.address, opened.port, group);
      }
      handle = tcpHandleFromFd(opened.fd, opened.address, opened.port);
    } catch (error) {
      unregister();
      fs.closeSync(opened.fd);
      throw error;
    }
    if (request.port === 0) this.#chosenPorts.set(wildcardKey, opened.port);
    const socket = { handle, address: opened.address, port: opened.port, ipv6Only: request.ipv6Only, unregister };
    perSlot.set(`${request.address}|${opened.port}|${request.ipv6Only}`, socket);
    return socket;
  }

  /** A slot's sockets (one per address and port it serves). */
  socketsOf(slot: number): SlotSocket[] {
    return [...(this.#sockets.get(slot)?.values() ?? [])];
  }

  /** Whether a slot holds any socket. */
  has(slot: number): boolean {
    return (this.#sockets.get(slot)?.size ?? 0) > 0;
  }

  /** Closes a slot's sockets (with net.ipv4.tcp_migrate_req=1 the kernel moves their queues). */
  close(slot: number): void {
    for (const socket of this.#sockets.get(slot)?.values() ?? []) {
      socket.handle.close();
      socket.unregister();
    }
    this.#sockets.delete(slot);
  }

  /** Closes every slot's sockets. */
  closeAll(): void {
    for (const slot of [...this.#sockets.keys()]) this.close(slot);
  }
}
