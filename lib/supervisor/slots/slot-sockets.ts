// The supervisor's slot sockets: for each address the workers listen on, one SO_REUSEPORT socket per
// worker slot, opened and listened by the primary in slot order (so each slot's index in the kernel's
// group is known) and lent to whichever worker fills the slot. A worker's exit never closes its
// socket, so connections waiting in its queue wait for the next one; a steering program attached
// to the group sends new connections only to the slots' own sockets (by hash, or in CPU-local mode
// to the slot pinned to the CPU that received the SYN, or with sticky: 'ip' to the slot of the
// client's address), and none to a socket of another app that joins the group later. With sticky,
// the steering cannot end: a group that cannot be steered, or a program that cannot be attached, is
// an error when the group opens, and no slot's socket is closed before the supervisor closes.
import fs from 'node:fs';
import type { NativeBinding, NativeSocket } from '../../binding';
import { explainListenError, modeUnsupported } from '../../errors';
import { foreignHolderError, foreignHolders, overlaps, registerSocket } from '../../ports/ownership';
import { type ListeningSocket, listeningSocketsOn } from '../../ports/port-holders';
import type { SteeringState } from '../core/types';
import { slotsByCpu } from './affinity';
import { type Instruction, type StickyOptions, cpuLocalProgram, flatten, steeringProgram, stickyProgram } from './steering';
import { type TcpHandle, tcpHandleFromFd } from '../../tcp-handle';

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

/** The slot sockets on one address and port, in slot order. */
export interface SocketGroup {
  address: string;
  port: number;
  ipv6Only: boolean;
  /** By slot; undefined once a slot's socket was closed. */
  sockets: (SlotSocket | undefined)[];
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

const BACKLOG = 511;
// An index past the end of the group: the kernel then picks by its own hash, as with no program.
const NO_STEERING = [0x06, 0, 0, 0xffffffff];

/** Which program a supervisor's groups get: by a hash of address and port, by CPU, or by the client's address. */
export type SteeringKind = 'hash' | 'cpu-local' | 'sticky';

/** What the steering on one address does, or why there is none (pure). */
export function steeringReason(steerable: boolean, othersFirst: number, kind: SteeringKind): string {
  const cpuLocal = kind === 'cpu-local';
  if (steerable && kind === 'sticky') {
    return "sticky: a cBPF program on the SO_REUSEPORT group sends every new connection from one client address to one slot (a rendezvous hash of the address), none to a socket of another app that joins later";
  }
  if (steerable && cpuLocal) {
    return 'CPU-local: each worker is pinned to one CPU, and a cBPF program on the SO_REUSEPORT group sends each new connection to the slot of the CPU that received it (SKF_AD_CPU), none to a socket of another app that joins later';
  }
  if (steerable) {
    return "a cBPF program on the SO_REUSEPORT group sends new connections only to the slots' own sockets, none to a socket of another app that joins later";
  }
  const why =
    process.platform !== 'linux'
      ? 'no steering: classic BPF on SO_REUSEPORT groups is Linux only; stall protection lends the slot instead'
      : `no steering: ${othersFirst} other listener(s) were on the port first, so the slots' places in the kernel's group are unknown`;
  return cpuLocal ? `${why} (cpuLocal: the workers are pinned, but connections are not kept on their CPU)` : why;
}

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

/** Slot sockets by address; made on a worker's first request, closed on demand. */
export class SlotSockets {
  protected readonly binding: NativeBinding;
  /** How many worker slots the supervisor has (adopted sockets may have more). */
  protected readonly slotCount: number;
  protected readonly groups = new Map<string, SocketGroup>();
  // Port 0 means "any", once: later slots and replacements join the port the first one got.
  protected readonly chosenPorts = new Map<string, number>();

  // Ports whose sockets were all given back (see giveBack), until a worker listens there again.
  readonly #givenBack = new Set<number>();

  // CPU-local mode: each slot's CPU; undefined: steer by hash.
  protected readonly cpuOfSlot: readonly number[] | undefined;
  // sticky: 'ip': what the sticky program hashes; undefined: not sticky.
  protected readonly sticky: StickyOptions | undefined;
  // Decided on the first read that tells (chooseQueueSource), then kept.
  #queueSource: QueueSource | undefined;
  // The slots steer() was last told of (every slot until then).
  #steered: number[] | undefined;
  // The last listener-table read of each port (for the 'listeners' source).
  readonly #tables = new Map<number, { at: number; sockets: ListeningSocket[] }>();

  constructor(binding: NativeBinding, slots: number, cpuOfSlot?: readonly number[], sticky?: StickyOptions) {
    this.binding = binding;
    this.slotCount = slots;
    this.cpuOfSlot = cpuOfSlot;
    this.sticky = sticky;
  }

  /** Which program the groups get. */
  protected get kind(): SteeringKind {
    return this.sticky ? 'sticky' : this.cpuOfSlot ? 'cpu-local' : 'hash';
  }

  /**
   * With sticky: attaches the program over this supervisor's slots to a group now, before any of its
   * sockets is lent, and throws (closing nothing: the caller does) where stickiness cannot be had.
   * The program never changes after that: no slot's socket closes while the supervisor runs.
   */
  protected stickNow(group: SocketGroup, why: string | undefined): void {
    if (!this.sticky) return;
    const where = `${group.address}:${group.port}`;
    if (why !== undefined) {
      throw Object.assign(modeUnsupported(`reuseport: sticky: 'ip' cannot be kept on ${where}: ${why}. Stop the other listener, or start without sticky`), { address: group.address, port: group.port });
    }
    const slots = Array.from({ length: this.slotCount }, (_, slot) => slot);
    const any = group.sockets.find((socket) => socket !== undefined);
    if (!any) throw new Error(`reuseport: no socket on ${where} to attach the sticky program to`);
    try {
      this.binding.attachReusePortProgram(any.fd, flatten(this.#program(slots)));
    } catch (error) {
      const failure = error as Error;
      failure.message = `reuseport: sticky: 'ip' cannot be kept on ${where}: attaching the program failed: ${failure.message}`;
      throw failure;
    }
    group.attached = slots.join(',');
    group.steering = { ...group.steering, enabled: true, sticky: true, reason: steeringReason(true, 0, 'sticky') };
  }

  /** How many groups are lent to `holder` and not given back (maxSocketsPerWorker counts them). */
  heldBy(holder: Holder): number {
    let held = 0;
    for (const group of this.groups.values()) if (group.holders.has(holder)) held += 1;
    return held;
  }

  /** Whether the group `request` names (port 0: the one chosen for it) is lent to `holder` already. */
  holds(holder: Holder, request: SlotRequest): boolean {
    const port = request.port === 0 ? this.chosenPorts.get(`${request.address}|0|${request.ipv6Only}`) : request.port;
    return this.groups.get(`${request.address}|${port}|${request.ipv6Only}`)?.holders.has(holder) ?? false;
  }

  /** The socket for `slot` on the requested address; the first request opens every slot's. */
  get(slot: number, request: SlotRequest, holder?: Holder): SlotSocket {
    const wildcardKey = groupKey(request.address, request.port, request.ipv6Only);
    const port = request.port === 0 ? (this.chosenPorts.get(wildcardKey) ?? 0) : request.port;
    const key = groupKey(request.address, port, request.ipv6Only);
    let group = this.groups.get(key);
    if (!group) {
      group = this.#open(request, port);
      this.groups.set(groupKey(request.address, group.port, request.ipv6Only), group);
      if (request.port === 0) this.chosenPorts.set(wildcardKey, group.port);
    }
    group.used = true;
    // Attach (again, when this slot is new to the group) before the worker is told of the steering:
    // the reason it gets then says what the kernel did (a refused attach, ENOPROTOOPT under qemu or a
    // seccomp profile, says "no steering").
    group.wanted.add(slot);
    this.#attach(group, this.#steered ?? Array.from({ length: this.slotCount }, (_, index) => index));
    this.#givenBack.delete(group.port);
    if (holder) group.holders.add(holder);
    const known = group.sockets[slot];
    if (known) return known;
    // A slot whose socket was closed: a new one joins at the end of the kernel's group.
    const [reopened] = this.bindAll(request, group.port, 1);
    if (!reopened) throw new Error('reuseport: no socket was opened');
    const socket = this.wrap(reopened, request.ipv6Only, true);
    group.sockets[slot] = socket;
    return socket;
  }

  // Binds `count` sockets (not listening yet), registers them and checks the port's other holders.
  protected bindAll(request: SlotRequest, port: number, count: number, alsoOurs: string[] = []): { socket: NativeSocket; unregister: () => void }[] {
    const bound: { socket: NativeSocket; unregister: () => void }[] = [];
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
          socket = this.binding.openListener({ address: request.address, port: bound[0]?.socket.port ?? port, ipv6Only: request.ipv6Only, listen: false });
        } catch (error) {
          throw explainListenError(error as Error);
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

  // Listens (if asked) and wraps a bound socket in the handle that is sent to workers.
  protected wrap({ socket, unregister }: { socket: NativeSocket; unregister: () => void }, ipv6Only: boolean, listen: boolean): SlotSocket {
    try {
      if (listen) this.binding.listenSocket(socket.fd, BACKLOG);
      const handle = tcpHandleFromFd(socket.fd, socket.address, socket.port);
      const inode = String(fs.fstatSync(socket.fd).ino);
      return { handle, fd: socket.fd, inode, address: socket.address, port: socket.port, ipv6Only, unregister };
    } catch (error) {
      unregister();
      fs.closeSync(socket.fd);
      throw error;
    }
  }

  #open(request: SlotRequest, port: number): SocketGroup {
    const bound = this.bindAll(request, port, this.slotCount);
    const first = bound[0]?.socket as NativeSocket;
    // Steering needs each slot's index in the kernel's group: the group must be ours alone, joined in
    // slot order. Where another listener (even of our app) is there first, the indexes are unknown.
    const others = listeningSocketsOn(first.port).filter((socket) => overlaps(socket.address, first.address));
    const steerable = process.platform === 'linux' && others.length === 0;
    const sockets: SlotSocket[] = [];
    try {
      for (const entry of bound) sockets.push(this.wrap(entry, request.ipv6Only, true));
    } catch (error) {
      for (const socket of sockets) {
        socket.handle.close();
        socket.unregister();
      }
      for (const entry of bound.slice(sockets.length + 1)) {
        entry.unregister();
        fs.closeSync(entry.socket.fd);
      }
      throw error;
    }
    const reason = steeringReason(steerable, others.length, this.kind);
    const group: SocketGroup = {
      address: first.address,
      port: first.port,
      ipv6Only: request.ipv6Only,
      sockets,
      steering: { address: first.address, port: first.port, enabled: steerable, sticky: false, reason },
      attached: undefined,
      requested: { address: request.address, port: request.port },
      sharing: request.group,
      used: false,
      holders: new Set(),
      wanted: new Set(),
    };
    try {
      this.stickNow(group, steerable ? undefined : reason.replace(/^no steering: /, ''));
    } catch (error) {
      for (const socket of sockets) {
        socket.handle.close();
        socket.unregister();
      }
      throw error;
    }
    return group;
  }

  /**
   * A worker's app closed its server on the group asked for as address:port (its own close, not a
   * drain). Once no live worker holds the group, its sockets close and the port is free, as Node
   * frees it: a port probe (get-port, detect-port: listen, then close) leaves nothing behind that
   * would queue connections no one accepts. Returns whether the group was closed.
   */
  giveBack(request: { address: string; port: number; ipv6Only: boolean }, holder: Holder): boolean {
    const key = groupKey(request.address, request.port, request.ipv6Only);
    const group = this.groups.get(key);
    if (!group) return false;
    group.holders.delete(holder);
    for (const other of group.holders) if (other.isDead()) group.holders.delete(other);
    if (group.holders.size > 0) return false;
    for (const socket of group.sockets) {
      socket?.handle.close();
      socket?.unregister();
    }
    this.groups.delete(key);
    for (const [wildcard, port] of this.chosenPorts) {
      if (port === group.port && [false, true].some((v6) => wildcard === groupKey(request.address, 0, v6))) this.chosenPorts.delete(wildcard);
    }
    if (![...this.groups.values()].some((other) => other.port === group.port)) this.#givenBack.add(group.port);
    return true;
  }

  /** Whether every socket on `port` was given back (no worker listens there now; a UDP port is never ours to tell). */
  gaveBack(port: number): boolean {
    return this.#givenBack.has(port);
  }

  /** Points every steerable group at `slots`; a no-op when unchanged. A sticky group keeps the program it got when it opened. */
  steer(slots: number[]): void {
    this.#steered = slots;
    for (const group of this.groups.values()) this.#attach(group, slots);
  }

  // Attaches the program for those of `slots` whose workers listen on the group to a steerable group;
  // a refusal ends its steering, with the reason. With none yet (a group adopted from a predecessor),
  // the program it has stays. A sticky group's program was attached when it opened (stickNow) and
  // never changes.
  #attach(group: SocketGroup, slots: number[]): void {
    if (!group.steering.enabled || group.steering.sticky) return;
    const allowed = slots.filter((slot) => group.sockets[slot] !== undefined && group.wanted.has(slot));
    const key = allowed.join(',');
    if (allowed.length === 0 || key === group.attached) return;
    const any = group.sockets.find((socket) => socket !== undefined);
    if (!any) return;
    try {
      this.binding.attachReusePortProgram(any.fd, flatten(this.#program(allowed)));
      group.attached = key;
    } catch (error) {
      group.steering = { ...group.steering, enabled: false, reason: `no steering: attaching the program failed (${(error as Error).message})` };
    }
  }

  // The program for the allowed slots: sticky by the client's address, CPU-local when asked (each CPU
  // to its slots, a CPU with no slot hashed over all), else a hash over them.
  #program(allowed: number[]): Instruction[] {
    if (this.sticky) return stickyProgram(allowed, this.sticky);
    return this.cpuOfSlot ? cpuLocalProgram(slotsByCpu(this.cpuOfSlot, allowed), allowed) : steeringProgram(allowed);
  }

  /** Steering on each address, for reasons and stats. */
  steering(): SteeringState[] {
    return [...this.groups.values()].map((group) => group.steering);
  }

  /** Listening sockets on our ports that are not ours (a process that set SO_REUSEPORT itself). */
  strangers(): ListeningSocket[] {
    const found: ListeningSocket[] = [];
    // Every group's sockets are ours: 127.0.0.1:P and 0.0.0.0:P of one app overlap, and are not strangers to each other.
    const ours = new Set([...this.groups.values()].flatMap((group) => group.sockets.flatMap((socket) => (socket ? [socket.inode] : []))));
    for (const group of this.groups.values()) {
      for (const socket of listeningSocketsOn(group.port)) {
        if (!ours.has(socket.inode) && overlaps(socket.address, group.address)) found.push(socket);
      }
    }
    return found;
  }

  /** Connections waiting in a slot's accept queue now (summed over its addresses; 0 where unknown). */
  queued(slot: number): number {
    let queued = 0;
    for (const group of this.groups.values()) {
      const socket = group.sockets[slot];
      if (socket) queued += this.queueDepth(group, socket) ?? 0;
    }
    return queued;
  }

  /** Where accept queues are read from; undefined until a read told (see chooseQueueSource). */
  queueSource(): QueueSource | undefined {
    if (this.#queueSource === undefined) {
      for (const group of this.groups.values()) {
        const socket = group.sockets.find((entry) => entry !== undefined);
        if (socket) this.queueDepth(group, socket);
        if (this.#queueSource !== undefined) break;
      }
    }
    return this.#queueSource;
  }

  // One socket's accept queue from the source chosen (TCP_INFO, one getsockopt; else the port's
  // listener table, which costs a sock_diag dump or a /proc/net/tcp read); undefined where unknown.
  protected queueDepth(group: SocketGroup, socket: SlotSocket): number | undefined {
    if (this.#queueSource === undefined || this.#queueSource === 'tcp-info') {
      try {
        const { queued } = this.binding.acceptQueue(socket.fd);
        this.#queueSource = 'tcp-info';
        return queued;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? 'UNKNOWN';
        if (this.#queueSource === 'tcp-info' || code !== 'ENOTSUP') return undefined; // not listening yet, or closed
        const listed = this.#listed(group, socket);
        this.#queueSource = chooseQueueSource(code, listed !== undefined);
        return listed;
      }
    }
    return this.#queueSource === 'listeners' ? this.#listed(group, socket) : undefined;
  }

  // The port's listener table is read once per check, not once per slot: a read is reused for 5 ms.
  #listed(group: SocketGroup, socket: SlotSocket): number | undefined {
    const now = performance.now();
    let table = this.#tables.get(group.port);
    if (!table || now - table.at > 5) {
      try {
        table = { at: now, sockets: listeningSocketsOn(group.port) };
      } catch {
        return undefined;
      }
      this.#tables.set(group.port, table);
    }
    return table.sockets.find((entry) => entry.inode === socket.inode)?.queued;
  }

  /** A slot's sockets (one per address it serves). */
  socketsOf(slot: number): SlotSocket[] {
    return [...this.groups.values()].flatMap((group) => (group.sockets[slot] ? [group.sockets[slot] as SlotSocket] : []));
  }

  /** Whether a slot holds any socket. */
  has(slot: number): boolean {
    return this.socketsOf(slot).length > 0;
  }

  /** Closes a slot's sockets (with net.ipv4.tcp_migrate_req=1 the kernel moves their queues). */
  close(slot: number): void {
    for (const group of this.groups.values()) {
      const socket = group.sockets[slot];
      if (!socket) continue;
      // Closing moves another socket into this one's place in the kernel's group: stop steering first.
      // (With sticky only closeAll() gets here: a slot keeps its socket while it has no worker.)
      if (group.steering.enabled) {
        try {
          this.binding.attachReusePortProgram(socket.fd, NO_STEERING);
        } catch {
          // the close below is what matters
        }
        group.steering = { ...group.steering, enabled: false, reason: `no steering: slot ${slot}'s socket was closed, which reorders the kernel's group` };
      }
      socket.handle.close();
      socket.unregister();
      group.sockets[slot] = undefined;
    }
  }

  /** Closes every slot's sockets. */
  closeAll(): void {
    const last = Math.max(this.slotCount, ...[...this.groups.values()].map((group) => group.sockets.length));
    for (let slot = last - 1; slot >= 0; slot--) this.close(slot);
    this.groups.clear();
  }
}
