// systemd: the sd_notify messages a Type=notify service sends (READY, MAINPID, RELOADING, STOPPING),
// the slot sockets kept in systemd's file-descriptor store (FDSTORE=1, FDNAME=) so that a restart
// resets nothing, and the sockets systemd passes back (LISTEN_FDS, from the store or a socket unit).
// Protocol: sd_notify(3), sd_listen_fds(3), https://systemd.io/FILE_DESCRIPTOR_STORE/.
import type { NativeBinding } from '../../binding';
import { handoverError, type HandedSocket } from './handover';
import { fdKind, firstNotInherited } from './inherited-fd';

/** The first fd systemd passes (SD_LISTEN_FDS_START). */
const LISTEN_FDS_START = 3;
const PREFIX = 'reuseport';

/** Where a slot socket is, as its fd-store name carries it. */
export type SlotPlace = Omit<HandedSocket, 'fd' | 'steerable' | 'group'>;

/**
 * The fd-store name of a slot socket: "reuseport,<slot>,<port>,<requested port>,<ipv6Only 0|1>,<address>,<requested address>",
 * addresses URI-encoded so that the name has no ':' (LISTEN_FDNAMES' separator) and stays printable ASCII (pure).
 */
export function fdName(place: SlotPlace): string {
  const fields = [
    PREFIX,
    place.slot,
    place.port,
    place.requestedPort,
    place.ipv6Only ? 1 : 0,
    encodeURIComponent(place.address),
    encodeURIComponent(place.requestedAddress),
  ];
  return fields.join(',');
}

/** The slot socket a name of ours describes, or undefined for any other name (pure). */
export function parseFdName(name: string): SlotPlace | undefined {
  const fields = name.split(',');
  if (fields.length !== 7 || fields[0] !== PREFIX) return undefined;
  const [, slot, port, requestedPort, ipv6Only] = fields.map(Number) as number[];
  const decode = (text: string | undefined) => {
    try {
      return decodeURIComponent(text ?? '');
    } catch {
      return '';
    }
  };
  const address = decode(fields[5]);
  const requestedAddress = decode(fields[6]);
  const integer = (value: number | undefined, max: number) => Number.isInteger(value) && (value as number) >= 0 && (value as number) <= max;
  if (
    !integer(slot, 4095) ||
    !integer(port, 65_535) ||
    port === 0 ||
    !integer(requestedPort, 65_535) ||
    (ipv6Only !== 0 && ipv6Only !== 1) ||
    !address ||
    !requestedAddress
  ) {
    return undefined;
  }
  return { slot: slot as number, port: port as number, requestedPort: requestedPort as number, ipv6Only: ipv6Only === 1, address, requestedAddress };
}

/** The fds systemd passed this process, with their names (pure over the environment's values). */
export interface ListenFds {
  fds: { fd: number; name: string }[];
}

/**
 * Reads LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES as sd_listen_fds_with_names does, and removes them
 * from the environment (the workers must not take them for theirs). Undefined when they are not
 * for this process; ERR_REUSEPORT_HANDOVER when they are malformed.
 */
export function takeListenFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid): ListenFds | undefined {
  const { LISTEN_PID: listenPid, LISTEN_FDS: listenFds, LISTEN_FDNAMES: listenNames } = env;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (listenPid === undefined || listenFds === undefined) return undefined;
  if (!/^\d+$/.test(listenPid) || Number(listenPid) !== pid) return undefined;
  if (!/^\d+$/.test(listenFds) || Number(listenFds) < 1 || Number(listenFds) > 4096) {
    throw handoverError(`LISTEN_FDS must be a count of fds from 1 to 4096, not ${JSON.stringify(listenFds)}`);
  }
  const count = Number(listenFds);
  const names = listenNames === undefined ? Array.from({ length: count }, () => 'unknown') : listenNames.split(':');
  if (names.length !== count) {
    throw handoverError(`LISTEN_FDNAMES names ${names.length} fd(s) and LISTEN_FDS says ${count}`);
  }
  return { fds: names.map((name, index) => ({ fd: LISTEN_FDS_START + index, name })) };
}

/** What to do with the fds systemd passed: the slot sockets to adopt, and the fds left to the app. */
export interface ListenFdsPlan {
  sockets: HandedSocket[];
  /** Sockets of ours that cannot be used (closed), with why; and fds not ours (left open for the app). */
  refused: { fd: number; name: string; why: string }[];
  ignored: { fd: number; name: string }[];
}

/**
 * Sorts the passed fds: ours (named by fdName) and TCP listeners from a socket unit become slot sockets
 * (socket-unit sockets take the free slots in the order passed); a socket named ours that is not
 * what its name says is refused and closed; anything else is left to the app. Socket-unit listeners
 * without SO_REUSEPORT cannot be shared by the workers: ERR_REUSEPORT_HANDOVER says to set ReusePort=yes.
 */
export function planListenFds(binding: NativeBinding, passed: ListenFds, close: (fd: number) => void, kindOf = fdKind): ListenFdsPlan {
  // A name of ours on an fd that is no socket: LISTEN_FDS counts fds that were not passed (Node's own
  // are there): an error, before anything is closed. Other names' fds are the app's, left alone.
  const problem = firstNotInherited(
    passed.fds.filter(({ name }) => parseFdName(name)).map(({ fd, name }) => ({ fd, as: `"${name}"` })),
    kindOf,
  );
  if (problem) throw handoverError(`LISTEN_FDS and LISTEN_FDNAMES name ${problem}: systemd did not pass it, so it is neither used nor closed`);
  const plan: ListenFdsPlan = { sockets: [], refused: [], ignored: [] };
  const unitSockets: { fd: number; name: string; info: ReturnType<NativeBinding['socketInfo']> }[] = [];
  for (const { fd, name } of passed.fds) {
    const place = parseFdName(name);
    let info: ReturnType<NativeBinding['socketInfo']> | undefined;
    try {
      info = binding.socketInfo(fd);
    } catch (error) {
      if (place) {
        plan.refused.push({ fd, name, why: `not a TCP socket (${(error as Error).message})` });
        close(fd);
      } else plan.ignored.push({ fd, name });
      continue;
    }
    if (!place) {
      if (!info.listening) plan.ignored.push({ fd, name });
      else if (!info.reusePort) {
        throw handoverError(
          `fd ${fd} ("${name}") listens on ${info.address}:${info.port} without SO_REUSEPORT, so the workers cannot have a socket each on it: set ReusePort=yes in the socket unit`,
        );
      } else unitSockets.push({ fd, name, info });
      continue;
    }
    const problem = !info.listening
      ? 'is not listening'
      : !info.reusePort
        ? 'has no SO_REUSEPORT'
        : info.port !== place.port || info.address !== place.address
          ? `is bound to ${info.address}:${info.port}, not ${place.address}:${place.port}`
          : plan.sockets.some(
                (socket) => socket.slot === place.slot && socket.port === place.port && socket.address === place.address && socket.ipv6Only === place.ipv6Only,
              )
            ? `names slot ${place.slot} again`
            : undefined;
    if (problem) {
      plan.refused.push({ fd, name, why: problem });
      close(fd);
      continue;
    }
    plan.sockets.push({ ...place, fd, steerable: true, group: false });
  }
  for (const { fd, info } of unitSockets) {
    const ipv6Only = info.address === '::' ? info.ipv6Only : false;
    const taken = plan.sockets.filter((socket) => socket.port === info.port && socket.address === info.address && socket.ipv6Only === ipv6Only);
    const slot = taken.length === 0 ? 0 : Math.max(...taken.map((socket) => socket.slot)) + 1;
    plan.sockets.push({
      fd,
      slot,
      address: info.address,
      port: info.port,
      requestedPort: info.port,
      requestedAddress: info.address,
      ipv6Only,
      steerable: true,
      group: false,
    });
  }
  return plan;
}

// The notify socket's queue is full (the manager is busy): try again for up to a second, sleeping a
// few ms between tries. It blocks this process that long at most, where a blocking send could wait
// forever; systemd drains its queue in microseconds, so this almost never loops.
const RETRY_SLEEP_MS = 5;
const RETRIES = 200;
const pause = new Int32Array(new SharedArrayBuffer(4));
function sendRetrying(send: () => void): void {
  for (let attempt = 0; ; attempt++) {
    try {
      send();
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' || attempt >= RETRIES) throw error;
      Atomics.wait(pause, 0, 0, RETRY_SLEEP_MS);
    }
  }
}

/** Sends sd_notify messages when NOTIFY_SOCKET is set; a failure is a warning (once), never a crash. */
export class SystemdNotifier {
  readonly #binding: NativeBinding;
  readonly #path: string;
  readonly #stored = new Map<string, string>();
  #warned = false;

  constructor(binding: NativeBinding, path: string) {
    this.#binding = binding;
    this.#path = path;
  }

  /** The notifier for this process, if systemd (or a harness) listens on NOTIFY_SOCKET. */
  static fromEnv(binding: NativeBinding | undefined, env: NodeJS.ProcessEnv = process.env): SystemdNotifier | undefined {
    const path = env.NOTIFY_SOCKET;
    if (!binding || !path || (!path.startsWith('/') && !path.startsWith('@'))) return undefined;
    return new SystemdNotifier(binding, path);
  }

  /** Sends one datagram of KEY=VALUE lines, with fds attached. */
  send(fields: Record<string, string | number>, fds: number[] = []): boolean {
    const message = Object.entries(fields)
      .map(([key, value]) => `${key}=${value}`)
      .join('\n');
    try {
      sendRetrying(() => this.#binding.notify(this.#path, message, fds));
      return true;
    } catch (error) {
      if (!this.#warned) {
        this.#warned = true;
        process.emitWarning(`reuseport: could not notify systemd on ${this.#path}: ${(error as Error).message}`, { code: 'REUSEPORT_NOTIFY_FAILED' });
      }
      return false;
    }
  }

  /** READY=1 with this process as the main pid (a successor of an upgrade takes over the unit so). */
  ready(): void {
    this.send({ READY: 1, MAINPID: process.pid });
  }

  reloading(): void {
    // CLOCK_MONOTONIC in microseconds (Type=notify-reload needs it; process.hrtime reads that clock on Linux).
    this.send({ RELOADING: 1, MONOTONIC_USEC: String(process.hrtime.bigint() / 1000n) });
  }

  stopping(): void {
    this.send({ STOPPING: 1 });
  }

  /** Stores every slot socket not stored yet (by name and inode) in the fd store. */
  store(sockets: { name: string; fd: number; inode: string }[]): void {
    for (const socket of sockets) {
      if (this.#stored.get(socket.name) === socket.inode) continue;
      // A different socket under a stored name (a slot socket reopened): the old one goes first.
      if (this.#stored.has(socket.name)) this.send({ FDSTOREREMOVE: 1, FDNAME: socket.name });
      if (this.send({ FDSTORE: 1, FDNAME: socket.name }, [socket.fd])) this.#stored.set(socket.name, socket.inode);
    }
  }

  /** Removes sockets from the fd store (closed for good: a slot not refilled, a port no worker uses). */
  remove(names: string[]): void {
    for (const name of names) {
      this.send({ FDSTOREREMOVE: 1, FDNAME: name });
      this.#stored.delete(name);
    }
  }

  /** Marks sockets stored already (passed back by systemd from its store). */
  known(sockets: { name: string; inode: string }[]): void {
    for (const socket of sockets) this.#stored.set(socket.name, socket.inode);
  }
}
