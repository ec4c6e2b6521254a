// Taking over and handing over slot sockets: the sockets a predecessor (an upgrade) or systemd (its fd
// store, a socket unit) passed are adopted in their slots, every socket is described for the next
// hand-over, and the surplus of a successor with fewer workers is drained and closed.
import fs from 'node:fs';
import type { NativeBinding, NativeSocket } from '../../binding';
import type { Plan } from '../../plan/plan';
import { overlaps, registerSocket } from '../../ports/ownership';
import { listeningSocketsOn } from '../../ports/port-holders';
import { type HandedSocket, type Handover, checkHandedSockets, closeHandedFds, handoverError } from './handover';
import { type SocketGroup, SlotSockets, groupKey, steeringReason } from '../slots/slot-sockets';
import { closeSockets, newGroup } from '../slots/socket-group';

/**
 * The hand-over of one supervisor's slot sockets: it works on their groups (SocketGroups, shared with
 * the slot sockets), adopting whole groups from a predecessor or systemd, describing them for the next
 * hand-over, and closing those nobody asked for and a smaller successor's surplus. Everything else
 * (lending, steering, queues) is the slot sockets' own.
 */
export class SlotHandover {
  /** The slot sockets whose groups this hands over. */
  readonly sockets: SlotSockets;

  constructor(sockets: SlotSockets) {
    this.sockets = sockets;
  }

  /**
   * Takes over the slot sockets a predecessor handed over (inherited fds, already checked): the same
   * sockets in the same slots, so their queues and places in the kernel's group stay. Slots of this
   * supervisor that were not handed over get new sockets at once, in slot order (they join the end of
   * the group, where their indexes are). Returns a reason per address for the plan.
   */
  adopt(handed: HandedSocket[], source: string): string[] {
    const byKey = new Map<string, HandedSocket[]>();
    for (const socket of handed) {
      const key = groupKey(socket.requestedAddress, socket.port, socket.ipv6Only);
      byKey.set(key, [...(byKey.get(key) ?? []), socket]);
    }
    const reasons: string[] = [];
    // Every inherited fd is owned from here: wrapped in a slot socket (closed by close()), or closed.
    const pending = new Set(handed.map((socket) => socket.fd));
    try {
      for (const [key, sockets] of byKey) reasons.push(this.#adoptGroup(key, sockets, source, pending));
    } catch (error) {
      for (const fd of pending) fs.closeSync(fd);
      throw error;
    }
    return reasons;
  }

  #adoptGroup(key: string, sockets: HandedSocket[], source: string, pending: Set<number>): string {
    const [first] = sockets as [HandedSocket];
    const at = { address: first.address, port: first.port, ipv6Only: first.ipv6Only };
    const group = newGroup(at, { address: first.requestedAddress, port: first.requestedPort }, first.group, { enabled: false, reason: '' });
    const slots = this.sockets;
    slots.groups.set(key, group);
    if (first.requestedPort === 0) slots.groups.chosenPorts.set(groupKey(first.requestedAddress, 0, first.ipv6Only), first.port);
    const { order, known, slotOf } = handedLayout(sockets);
    const slotHere = (socket: HandedSocket) => slotOf.get(socket.slot) ?? socket.slot;
    for (const socket of sockets) {
      pending.delete(socket.fd);
      let unregister: () => void;
      try {
        unregister = socket.group === false ? () => undefined : registerSocket(socket.fd, socket.group);
      } catch (error) {
        fs.closeSync(socket.fd);
        throw error;
      }
      const native: NativeSocket = { fd: socket.fd, family: socket.address.includes(':') ? 6 : 4, address: socket.address, port: socket.port };
      group.sockets[slotHere(socket)] = slots.wrap({ socket: native, unregister }, socket.ipv6Only, false);
    }
    group.order = order;
    // And nothing else on the port: the group is these sockets alone.
    const others = listeningSocketsOn(first.port).filter(
      (socket) => overlaps(socket.address, first.address) && !group.sockets.some((own) => own?.inode === socket.inode),
    );
    // A sticky program maps every slot, in slot order: the slots not handed over join now, at the end.
    const missing = slots.kind === 'sticky' ? Array.from({ length: Math.max(0, slots.slotCount - order.length) }, (_, i) => order.length + i) : [];
    const inOrder = order.every((slot, index) => slot === index);
    const steerable = known && others.length === 0 && (slots.kind !== 'sticky' || inOrder);
    if (missing.length > 0) {
      const request = { address: first.requestedAddress, port: first.port, ipv6Only: first.ipv6Only, group: first.group };
      const ours = group.sockets.flatMap((socket) => (socket ? [socket.inode] : []));
      const bound = slots.bindAll(request, first.port, missing.length, ours);
      bound.forEach((entry, i) => {
        group.sockets[missing[i] as number] = slots.wrap(entry, first.ipv6Only, true);
        group.order.push(missing[i] as number);
      });
    }
    const reason = steerable
      ? steeringReason(true, 0, slots.kind)
      : others.length > 0
        ? steeringReason(false, others.length, slots.kind)
        : "no steering: the predecessor did not steer these sockets, or did not hand over every slot's, so the slots' places in the kernel's group are unknown";
    const later = slots.kind === 'sticky' ? [] : Array.from({ length: slots.slotCount }, (_, slot) => slot).filter((slot) => !group.sockets[slot]);
    group.steering = { ...group.steering, enabled: steerable, reason };
    // With sticky, the program over this supervisor's slots goes on now: a surplus slot (the
    // predecessor had more workers) gets no new connection from here, so its clients move to their
    // next choice before it is closed; a group that cannot be steered fails the upgrade.
    slots.stickNow(group, steerable ? undefined : reason.replace(/^no steering: /, ''));
    const surplus = sockets.filter((socket) => slotHere(socket) >= slots.slotCount).length;
    return (
      `adopted ${sockets.length} slot socket(s) on ${first.address}:${first.port} handed over by ${source} (the same sockets, so nothing queued was reset)` +
      (missing.length > 0 ? `; opened ${missing.length} more for slots ${missing.join(', ')}` : '') +
      (later.length === 1 ? `; slot ${later[0]} gets its socket when its worker listens there` : '') +
      (later.length > 1 ? `; slots ${later.join(', ')} get theirs when their workers listen there` : '') +
      (surplus > 0 ? `; ${surplus} beyond this supervisor's ${slots.slotCount} slots are lent to its workers and get no new connection` : '')
    );
  }

  /**
   * Closes adopted sockets that no worker asked for (a port the app no longer listens on), so that
   * no connection waits on them forever. Returns them, for a warning and the fd store.
   */
  closeUnused(): Omit<HandedSocket, 'fd'>[] {
    const unused = this.handedSockets().filter((socket) => !this.#groupOf(socket)?.used);
    for (const [key, group] of this.sockets.groups) {
      if (group.used) continue;
      closeSockets(group.sockets);
      this.sockets.groups.delete(key);
    }
    return unused.map(({ sourceFd: _, ...socket }) => socket);
  }

  #groupOf(socket: { address: string; port: number; ipv6Only: boolean }): SocketGroup | undefined {
    return [...this.sockets.groups.values()].find(
      (group) => group.address === socket.address && group.port === socket.port && group.ipv6Only === socket.ipv6Only,
    );
  }

  /**
   * Every slot socket with its fd here, for a hand-over, in the order of the kernel's group. `index`
   * says where each one is in the group when this supervisor steered it (knew the order); `steerable`
   * keeps its meaning for a successor of 0.2, which takes the slots for the indexes: steered, and the
   * whole group in slot order.
   */
  handedSockets(): (Omit<HandedSocket, 'fd'> & { sourceFd: number })[] {
    return [...this.sockets.groups.values()].flatMap((group) => {
      const inOrder = group.order.length === group.sockets.length && group.order.every((slot, index) => slot === index);
      return group.order.flatMap((slot, index) => {
        const socket = group.sockets[slot];
        if (!socket) return [];
        return [
          {
            sourceFd: socket.fd,
            slot,
            address: group.address,
            port: group.port,
            requestedPort: group.requested.port,
            requestedAddress: group.requested.address,
            ipv6Only: group.ipv6Only,
            steerable: group.steering.enabled && inOrder,
            ...(group.steering.enabled ? { index } : {}),
            group: group.sharing,
          },
        ];
      });
    });
  }

  /** After a hand-over: closes this process's copies of the sockets, leaving their registrations (now the successor's). */
  release(): void {
    for (const group of this.sockets.groups.values()) {
      for (const socket of group.sockets) socket?.handle.close();
    }
    this.sockets.groups.clear();
  }

  /** Slots beyond this supervisor's that hold adopted sockets (a predecessor had more workers), highest first. */
  surplusSlots(): number[] {
    const slots = new Set<number>();
    for (const group of this.sockets.groups.values()) group.sockets.forEach((socket, slot) => socket && slot >= this.sockets.slotCount && slots.add(slot));
    return [...slots].sort((a, b) => b - a);
  }

  /**
   * Whether a surplus slot can be closed without losing a connection or the steering: every group it
   * is in is steered (so no new connection goes to it), its socket is the last of the group (closing
   * it moves no other socket), and its queue is empty.
   */
  surplusDrained(slot: number): boolean {
    return [...this.sockets.groups.values()].every((group) => {
      const socket = group.sockets[slot];
      if (!socket) return true;
      if (!group.steering.enabled || group.attached === undefined || group.order.at(-1) !== slot) return false;
      return this.sockets.queueDepth(group, socket) === 0;
    });
  }

  /** Closes a drained surplus slot's sockets (the last of their groups: the steering stays exact). */
  closeSurplus(slot: number): void {
    for (const group of this.sockets.groups.values()) {
      const socket = group.sockets[slot];
      if (!socket) continue;
      socket.handle.close();
      socket.unregister();
      group.sockets[slot] = undefined;
      while (group.sockets.length > 0 && group.sockets.at(-1) === undefined) group.sockets.length -= 1;
      if (group.order.at(-1) === slot) group.order.pop();
      else group.order = group.order.filter((other) => other !== slot);
    }
  }
}

/**
 * Where a handed-over group's sockets go here (pure): `order`, the slots here by the sockets' indexes
 * in the kernel's group; `known`, whether that order is the kernel's; `slotOf`, each handed slot's
 * slot here. A group of every slot's socket (slots 0..n-1) whose order is known is renumbered: each
 * socket takes the slot of its place in the group (the predecessor's sockets joined in the order its
 * workers first asked, which need not be slot order), so the group is in slot order again and a
 * surplus (a successor with fewer workers) is at its end, where a socket can close without another
 * moving into its place. A port only some slots listen on (an admin port, a port per worker) keeps
 * the slots it was handed with: those slots' workers listen there.
 */
export function handedLayout(sockets: readonly Pick<HandedSocket, 'slot' | 'index' | 'steerable'>[]): {
  order: number[];
  known: boolean;
  slotOf: Map<number, number>;
} {
  const { order, known } = handedOrder(sockets);
  const everySlot = [...order].sort((a, b) => a - b).every((slot, position) => slot === position);
  if (!known || !everySlot) return { order, known, slotOf: new Map(order.map((slot) => [slot, slot])) };
  return { order: order.map((_, index) => index), known, slotOf: new Map(order.map((slot, index) => [slot, index])) };
}

/**
 * The kernel's order of a handed-over group (pure): by the sockets' `index` where every one has a
 * distinct one, 0..n-1 (a predecessor that steered the group); else, from a predecessor of 0.2 or
 * systemd's fd store, known only when they are slots 0..n-1 and the predecessor steered them (its
 * groups were opened in slot order), in slot order. `known`: whether the order is the kernel's.
 */
export function handedOrder(sockets: readonly Pick<HandedSocket, 'slot' | 'index' | 'steerable'>[]): { order: number[]; known: boolean } {
  const byIndex = [...sockets].sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
  if (sockets.length > 0 && byIndex.every((socket, position) => socket.index === position)) return { order: byIndex.map((socket) => socket.slot), known: true };
  const bySlot = sockets.map((socket) => socket.slot).sort((a, b) => a - b);
  const contiguous = bySlot.every((slot, position) => slot === position);
  return { order: bySlot, known: contiguous && sockets.every((socket) => socket.steerable) };
}

/**
 * In a successor: the predecessor's slot sockets, checked, taken over by `sockets`; returns the plan's
 * new reasons. Closes every handed fd and throws where this supervisor holds no slot sockets or the
 * check fails; from then on every inherited fd is the slot sockets' (closed by close()).
 */
export function adoptHandedSockets(binding: NativeBinding | undefined, sockets: SlotHandover | undefined, plan: Plan, handover: Handover): string[] {
  if (!sockets || !binding) {
    closeHandedFds(handover.sockets);
    throw handoverError(`this supervisor's plan is ${plan.mode} (${plan.backend}), which holds no slot sockets: ${plan.reasons.join('; ')}`);
  }
  try {
    checkHandedSockets(binding, handover.sockets);
  } catch (error) {
    closeHandedFds(handover.sockets);
    throw error;
  }
  return sockets.adopt(handover.sockets, `pid ${handover.from} (an upgrade)`);
}
