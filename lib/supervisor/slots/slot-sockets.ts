// The supervisor's slot sockets: for each address the workers listen on, one SO_REUSEPORT socket per
// worker slot that listens there (a port only slot 0 serves has one socket), opened and listened by the
// primary when the slot's worker first asks (each socket's index in the kernel's group is kept, in
// SocketGroup.order; with sticky every slot's, in slot order, when the group opens) and lent to
// whichever worker fills the slot. A worker's exit never closes its
// socket, so connections waiting in its queue wait for the next one; a steering program attached
// to the group sends new connections only to the slots' own sockets (by hash, or in CPU-local mode
// to the slot pinned to the CPU that received the SYN, or with sticky: 'ip' to the slot of the
// client's address; with balance, by weights the balancer sets from the workers' loads: weighted.ts),
// and none to a socket of another app that joins the group later. With sticky,
// the steering cannot end: a group that cannot be steered, or a program that cannot be attached, is
// an error when the group opens, and no slot's socket is closed before the supervisor closes.
// Its parts: socket-group.ts (a group's sockets, its key, binding and wrapping them), queue-reader.ts
// (the accept queues), group-program.ts, steering-reason.ts and steering.ts (which program, what it
// does, and why there is none).
import fs from 'node:fs';
import type { NativeBinding, NativeSocket } from '../../binding';
import { modeUnsupported } from '../../errors';
import { overlaps } from '../../ports/ownership';
import { type ListeningSocket, listeningSocketsOn } from '../../ports/port-holders';
import { groupProgram } from './group-program';
import { type StickyOptions, flatten } from './steering';
import { type QueueSource, QueueReader } from './queue-reader';
import type { BoundSocket, Holder, SlotRequest, SlotSocket, SocketGroup } from './socket-group';
import { SocketGroups, bindSockets, closeSockets, groupKey, newGroup, strangersOf, wrapSocket } from './socket-group';
import type { SteeringState } from '../core/types';
import { type SteeringKind, steeringReason } from './steering-reason';

export { type QueueSource, chooseQueueSource, queueSourceReason } from './queue-reader';
export { type Holder, type SlotRequest, type SlotSocket, type SocketGroup, groupKey } from './socket-group';
export { type SteeringKind, steeringReason } from './steering-reason';

// An index past the end of the group: the kernel then picks by its own hash, as with no program.
const NO_STEERING = [0x06, 0, 0, 0xffffffff];

/** Slot sockets by address; made on a worker's first request, closed on demand. */
export class SlotSockets {
  readonly #binding: NativeBinding;
  /** How many worker slots the supervisor has (adopted sockets may have more). */
  readonly slotCount: number;
  /** The groups by key, and the ports chosen for port 0: shared with the hand-over (deploy/slot-handover.ts). */
  readonly groups = new SocketGroups();

  // Ports whose sockets were all given back (see giveBack), until a worker listens there again.
  readonly #givenBack = new Set<number>();

  // CPU-local mode: each slot's CPU; undefined: steer by hash.
  readonly #cpuOfSlot: readonly number[] | undefined;
  // sticky: 'ip': what the sticky program hashes; undefined: not sticky.
  readonly #sticky: StickyOptions | undefined;
  // The slots steer() was last told of (every slot until then).
  #steered: number[] | undefined;
  // Balance: each slot's weight, when the balancer set them; undefined: by hash.
  #weights: ReadonlyMap<number, number> | undefined;
  // Where accept queues are read from, and the reading.
  readonly #queues: QueueReader;

  constructor(binding: NativeBinding, slots: number, cpuOfSlot?: readonly number[], sticky?: StickyOptions) {
    this.#binding = binding;
    this.#queues = new QueueReader(binding);
    this.slotCount = slots;
    this.#cpuOfSlot = cpuOfSlot;
    this.#sticky = sticky;
  }

  /** Which program the groups get. */
  get kind(): SteeringKind {
    return this.#sticky ? 'sticky' : this.#cpuOfSlot ? 'cpu-local' : 'hash';
  }

  /**
   * With sticky: attaches the program over this supervisor's slots to a group now, before any of its
   * sockets is lent, and throws (closing nothing: the caller does) where stickiness cannot be had.
   * The program never changes after that: no slot's socket closes while the supervisor runs.
   */
  stickNow(group: SocketGroup, why: string | undefined): void {
    if (!this.#sticky) return;
    const where = `${group.address}:${group.port}`;
    if (why !== undefined) {
      throw Object.assign(modeUnsupported(`reuseport: sticky: 'ip' cannot be kept on ${where}: ${why}. Stop the other listener, or start without sticky`), {
        address: group.address,
        port: group.port,
      });
    }
    const slots = Array.from({ length: this.slotCount }, (_, slot) => slot);
    const any = group.sockets.find((socket) => socket !== undefined);
    if (!any) throw new Error(`reuseport: no socket on ${where} to attach the sticky program to`);
    try {
      this.#binding.attachReusePortProgram(any.fd, flatten(groupProgram(group, slots, { sticky: this.#sticky }).program()));
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
    const port = request.port === 0 ? this.groups.chosenPorts.get(`${request.address}|0|${request.ipv6Only}`) : request.port;
    return this.groups.get(`${request.address}|${port}|${request.ipv6Only}`)?.holders.has(holder) ?? false;
  }

  /**
   * The socket for `slot` on the requested address: the first request opens the group with this
   * slot's socket (with sticky, every slot's), a slot new to the group gets its own, which joins the
   * end of the kernel's group.
   */
  get(slot: number, request: SlotRequest, holder?: Holder): SlotSocket {
    const wildcardKey = groupKey(request.address, request.port, request.ipv6Only);
    const port = request.port === 0 ? (this.groups.chosenPorts.get(wildcardKey) ?? 0) : request.port;
    const key = groupKey(request.address, port, request.ipv6Only);
    let group = this.groups.get(key);
    if (!group) {
      group = this.#open(request, port, slot);
      this.groups.set(groupKey(request.address, group.port, request.ipv6Only), group);
      if (request.port === 0) this.groups.chosenPorts.set(wildcardKey, group.port);
    }
    group.used = true;
    let socket = group.sockets[slot];
    if (!socket) {
      const ours = group.sockets.flatMap((entry) => (entry ? [entry.inode] : []));
      const [bound] = this.bindAll(request, group.port, 1, ours);
      if (!bound) throw new Error('reuseport: no socket was opened');
      socket = this.wrap(bound, request.ipv6Only, true);
      group.sockets[slot] = socket;
      group.order.push(slot);
    }
    // Attach (again, when this slot is new to the group) before the worker is told of the steering:
    // the reason it gets then says what the kernel did (a refused attach, ENOPROTOOPT under qemu or a
    // seccomp profile, says "no steering").
    group.wanted.add(slot);
    this.#attach(group, this.#steered ?? Array.from({ length: this.slotCount }, (_, index) => index));
    this.#givenBack.delete(group.port);
    if (holder) group.holders.add(holder);
    return socket;
  }

  /** Binds `count` sockets (not listening yet), registers them and checks the port's other holders (`alsoOurs`: inodes that are ours too). */
  bindAll(request: SlotRequest, port: number, count: number, alsoOurs: string[] = []): BoundSocket[] {
    return bindSockets(this.#binding, request, port, count, alsoOurs);
  }

  /** Listens (if asked) and wraps a bound socket in the handle that is sent to workers. */
  wrap(bound: BoundSocket, ipv6Only: boolean, listen: boolean): SlotSocket {
    return wrapSocket(this.#binding, bound, ipv6Only, listen);
  }

  // Opens the group with `slot`'s socket; with sticky, every slot's in slot order (its program maps
  // every slot, and no slot's socket may join later).
  #open(request: SlotRequest, port: number, slot: number): SocketGroup {
    const order = this.#sticky ? Array.from({ length: this.slotCount }, (_, index) => index) : [slot];
    const bound = this.bindAll(request, port, order.length);
    const first = bound[0]?.socket as NativeSocket;
    // Steering needs each slot's index in the kernel's group: the group must be ours alone. Where
    // another listener (even of our app) is there first, the indexes are unknown.
    const others = listeningSocketsOn(first.port).filter((socket) => overlaps(socket.address, first.address));
    const steerable = process.platform === 'linux' && others.length === 0;
    const wrapped: SlotSocket[] = [];
    try {
      for (const entry of bound) wrapped.push(this.wrap(entry, request.ipv6Only, true));
    } catch (error) {
      closeSockets(wrapped);
      for (const entry of bound.slice(wrapped.length + 1)) {
        entry.unregister();
        fs.closeSync(entry.socket.fd);
      }
      throw error;
    }
    const reason = steeringReason(steerable, others.length, this.kind);
    const group = newGroup(
      { address: first.address, port: first.port, ipv6Only: request.ipv6Only },
      { address: request.address, port: request.port },
      request.group,
      {
        enabled: steerable,
        reason,
      },
    );
    group.order = order;
    order.forEach((owner, index) => {
      group.sockets[owner] = wrapped[index];
    });
    try {
      this.stickNow(group, steerable ? undefined : reason.replace(/^no steering: /, ''));
    } catch (error) {
      closeSockets(wrapped);
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
    closeSockets(group.sockets);
    this.groups.delete(key);
    for (const [wildcard, port] of this.groups.chosenPorts) {
      if (port === group.port && [false, true].some((v6) => wildcard === groupKey(request.address, 0, v6))) this.groups.chosenPorts.delete(wildcard);
    }
    if (![...this.groups.values()].some((other) => other.port === group.port)) this.#givenBack.add(group.port);
    return true;
  }

  /** Whether every socket on `port` was given back (no worker listens there now; a UDP port is never ours to tell). */
  gaveBack(port: number): boolean {
    return this.#givenBack.has(port);
  }

  /**
   * Points every steerable group at `slots`; a no-op when unchanged. `weights` (by slot; null: none,
   * undefined: those in force) weigh the slots (a slot without one makes it a hash again). Only the
   * program is replaced: no socket is closed or moved, so connections already queued stay where they are.
   * A sticky group keeps the program it got when it opened.
   */
  steer(slots: number[], weights?: ReadonlyMap<number, number> | null): void {
    this.#steered = slots;
    if (weights !== undefined) this.#weights = weights ?? undefined;
    for (const group of this.groups.values()) this.#attach(group, slots);
  }

  // Attaches the program for those of `slots` whose workers listen on the group to a steerable group;
  // a refusal ends its steering, with the reason. With none yet (a group adopted from a predecessor),
  // the program it has stays. A sticky group's program was attached when it opened (stickNow) and
  // never changes.
  #attach(group: SocketGroup, slots: number[]): void {
    if (!group.steering.enabled || group.steering.sticky) return;
    const allowed = slots.filter((slot) => group.sockets[slot] !== undefined && group.wanted.has(slot));
    if (allowed.length === 0) return;
    const { key, program } = groupProgram(group, allowed, { cpuOfSlot: this.#cpuOfSlot, weights: this.#weights });
    const any = group.sockets.find((socket) => socket !== undefined);
    if (key === group.attached || !any) return;
    try {
      this.#binding.attachReusePortProgram(any.fd, flatten(program()));
      group.attached = key;
    } catch (error) {
      group.steering = { ...group.steering, enabled: false, reason: `no steering: attaching the program failed (${(error as Error).message})` };
    }
  }

  /** Steering on each address, for reasons and stats. */
  steering(): SteeringState[] {
    return [...this.groups.values()].map((group) => group.steering);
  }

  /** Listening sockets on our ports that are not ours (a process that set SO_REUSEPORT itself). */
  strangers(): ListeningSocket[] {
    return strangersOf([...this.groups.values()]);
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
    return this.#queues.source(
      [...this.groups.values()].flatMap((group) => {
        const socket = group.sockets.find((entry) => entry !== undefined);
        return socket ? [{ port: group.port, socket }] : [];
      }),
    );
  }

  /** One socket's accept queue (see QueueReader); undefined where unknown. */
  queueDepth(group: SocketGroup, socket: SlotSocket): number | undefined {
    return this.#queues.depth(group.port, socket);
  }

  /** A slot's sockets (one per address it serves). */
  socketsOf(slot: number): SlotSocket[] {
    return [...this.groups.values()].flatMap((group) => (group.sockets[slot] ? [group.sockets[slot] as SlotSocket] : []));
  }

  /**
   * The sockets of `slot` that the worker of slot `to` can serve: those on an address and port it
   * listens on (asked for). A socket of a port the borrower does not serve is never lent to it: its
   * connections would reach a server of another port.
   */
  lendable(slot: number, to: number): SlotSocket[] {
    return [...this.groups.values()].flatMap((group) => {
      const socket = group.sockets[slot];
      return socket && group.wanted.has(to) ? [socket] : [];
    });
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
          this.#binding.attachReusePortProgram(socket.fd, NO_STEERING);
        } catch {
          // the close below is what matters
        }
        group.steering = { ...group.steering, enabled: false, reason: `no steering: slot ${slot}'s socket was closed, which reorders the kernel's group` };
      }
      socket.handle.close();
      socket.unregister();
      group.sockets[slot] = undefined;
      // As the kernel does once the socket is gone: the group's last socket takes its place.
      const at = group.order.indexOf(slot);
      if (at >= 0) {
        const last = group.order.pop() as number;
        if (at < group.order.length) group.order[at] = last;
      }
    }
  }

  /** Closes every slot's sockets. */
  closeAll(): void {
    const last = Math.max(this.slotCount, ...[...this.groups.values()].map((group) => group.sockets.length));
    for (let slot = last - 1; slot >= 0; slot--) this.close(slot);
    this.groups.clear();
  }
}
