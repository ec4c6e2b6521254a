// Where the supervisor reads a slot's accept queue, and the reading: TCP_INFO on the socket itself
// (one getsockopt), else the port's listener table (sock_diag, else /proc/net/tcp), else nothing.
import type { NativeBinding } from '../../binding';
import { type ListeningSocket, listeningSocketsOn } from '../../ports/port-holders';

/**
 * Where the supervisor reads a slot's accept queue: 'tcp-info' (getsockopt on the socket itself),
 * 'listeners' (the port's listener table: sock_diag, else /proc/net/tcp, by inode) or 'none'.
 */
export type QueueSource = 'tcp-info' | 'listeners' | 'none';

/**
 * Which source serves (pure): TCP_INFO unless it answered ENOTSUP (an answer too short to hold the
 * queue: qemu-user gives 4 bytes), then the listener table if it lists the socket, else none. Any
 * other TCP_INFO error (a socket not listening yet) decides nothing: undefined, ask again later.
 */
export function chooseQueueSource(tcpInfoError: string | undefined, listed: boolean): QueueSource | undefined {
  if (tcpInfoError === undefined) return 'tcp-info';
  if (tcpInfoError !== 'ENOTSUP') return undefined;
  return listed ? 'listeners' : 'none';
}

/** What a queue source means for stall detection, in the words of a worker's reasons (pure). */
export function queueSourceReason(source: QueueSource | undefined): string {
  switch (source) {
    case 'listeners':
      return "accept queues are read from the port's listener table (sock_diag, else /proc/net/tcp): TCP_INFO answers too short here";
    case 'none':
      return "stall detection is off: TCP_INFO answers too short here and the port's listener table does not list the slot sockets, so no accept queue can be read";
    default:
      return 'accept queues are read with TCP_INFO';
  }
}

/** One slot socket as the reader needs it. */
interface QueuedSocket {
  fd: number;
  inode: string;
}

/** Reads accept queues from the source chosen on the first read that tells, then kept. */
export class QueueReader {
  readonly #binding: NativeBinding;
  #source: QueueSource | undefined;
  // The last listener-table read of each port (for the 'listeners' source).
  readonly #tables = new Map<number, { at: number; sockets: ListeningSocket[] }>();

  constructor(binding: NativeBinding) {
    this.#binding = binding;
  }

  /** The source; undefined until a read told (reads one socket of each group given until one tells). */
  source(sockets: { port: number; socket: QueuedSocket }[]): QueueSource | undefined {
    for (const { port, socket } of sockets) {
      if (this.#source !== undefined) break;
      this.depth(port, socket);
    }
    return this.#source;
  }

  // One socket's accept queue from the source chosen (TCP_INFO, one getsockopt; else the port's
  // listener table, which costs a sock_diag dump or a /proc/net/tcp read); undefined where unknown.
  depth(port: number, socket: QueuedSocket): number | undefined {
    if (this.#source === undefined || this.#source === 'tcp-info') {
      try {
        const { queued } = this.#binding.acceptQueue(socket.fd);
        this.#source = 'tcp-info';
        return queued;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? 'UNKNOWN';
        if (this.#source === 'tcp-info' || code !== 'ENOTSUP') return undefined; // not listening yet, or closed
        const listed = this.#listed(port, socket);
        this.#source = chooseQueueSource(code, listed !== undefined);
        return listed;
      }
    }
    return this.#source === 'listeners' ? this.#listed(port, socket) : undefined;
  }

  // The port's listener table is read once per check, not once per slot: a read is reused for 5 ms.
  #listed(port: number, socket: QueuedSocket): number | undefined {
    const now = performance.now();
    let table = this.#tables.get(port);
    if (!table || now - table.at > 5) {
      try {
        table = { at: now, sockets: listeningSocketsOn(port) };
      } catch {
        return undefined;
      }
      this.#tables.set(port, table);
    }
    return table.sockets.find((entry) => entry.inode === socket.inode)?.queued;
  }
}
