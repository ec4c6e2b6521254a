// The hand-over of slot sockets to a successor supervisor (an upgrade in place): what the old one
// writes in the successor's environment, and how the successor reads and checks it. The sockets
// themselves are inherited as fds (spawn's stdio), so the very same sockets, with their accept
// queues, go on serving: nothing queued is ever reset.
import fs from 'node:fs';
import type { NativeBinding } from '../../binding';
import { nodeError } from '../../errors';
import { groupKey } from '../slots/slot-sockets';
import { fdKind, firstNotInherited } from './inherited-fd';

/** The environment variable that carries the hand-over to the successor (removed once read). */
export const HANDOVER_ENV = 'REUSEPORT_HANDOVER';

/** One handed-over slot socket: the fd the successor finds it on, and what it is. */
export interface HandedSocket {
  fd: number;
  slot: number;
  address: string;
  port: number;
  /** The port the workers asked for (0: "any", so that later requests for port 0 join this one). */
  requestedPort: number;
  /** The address the workers asked for (the group's key, as the worker sends it). */
  requestedAddress: string;
  ipv6Only: boolean;
  /** Whether the predecessor steered this address and its sockets are the whole group in slot order (what a successor of 0.2 reads). */
  steerable: boolean;
  /**
   * The socket's index in the kernel's SO_REUSEPORT group, where the predecessor knew it (it steered
   * the group); a group's sockets need not be in slot order, nor every slot's (a port only some
   * workers listen on). Absent: from a predecessor of 0.2 or systemd's fd store (see adopt).
   */
  index?: number;
  /** The sharing group the sockets are registered to; false: none. */
  group: string | false;
}

/** What the predecessor tells of the service besides its sockets (a predecessor of 0.1 tells none of it). */
export interface HandoverNotes {
  /** How the predecessor's command line is to be read (startCluster's `commandSyntax`), for a runner that reruns it. */
  commandSyntax?: string;
  /** The service's counts so far; the successor goes on from them (and counts this upgrade). */
  counts?: { restarts: number; reloads: number; upgrades: number; cut?: number };
  /** When the service began (ms since the epoch). */
  serviceStartedAt?: number;
}

/** What the successor finds in HANDOVER_ENV. */
export interface Handover extends HandoverNotes {
  /** The predecessor's pid. */
  from: number;
  /** The fd of the readiness channel: the successor writes one JSON line there once every slot listens. */
  ready: number;
  sockets: HandedSocket[];
  /** The fd of the health server's listening socket, if the predecessor had one. */
  health?: number;
  /** The fd of a pipe carrying the TLS ticket key (48 bytes, then end of file), if the predecessor had one. */
  keys?: number;
}

/** ERR_REUSEPORT_HANDOVER: a hand-over that cannot be used; the predecessor keeps serving. */
export function handoverError(message: string): Error {
  return nodeError(Error, 'ERR_REUSEPORT_HANDOVER', `reuseport: the sockets handed over cannot be adopted: ${message}`);
}

const isFd = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 3 && (value as number) < 65_536;
const isPort = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 65_535;

/** Parses and checks the shape of a hand-over (pure); throws ERR_REUSEPORT_HANDOVER saying what is wrong. */
export function parseHandover(text: string): Handover {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw handoverError(`${HANDOVER_ENV} is not JSON (${JSON.stringify(text.slice(0, 60))})`);
  }
  const value = raw as Partial<Handover> | null;
  if (typeof value !== 'object' || value === null) throw handoverError(`${HANDOVER_ENV} is not an object`);
  if (!Number.isInteger(value.from) || (value.from as number) <= 0) throw handoverError(`"from" must be a pid, not ${JSON.stringify(value.from)}`);
  if (!isFd(value.ready)) throw handoverError(`"ready" must be an fd >= 3, not ${JSON.stringify(value.ready)}`);
  if (!Array.isArray(value.sockets) || value.sockets.length === 0) throw handoverError('"sockets" must be a non-empty list');
  const fds = new Set<number>([value.ready as number]);
  for (const field of ['health', 'keys'] as const) {
    const fd = value[field];
    if (fd === undefined) continue;
    if (!isFd(fd) || fds.has(fd)) throw handoverError(`"${field}" must be an unused fd >= 3, not ${JSON.stringify(fd)}`);
    fds.add(fd);
  }
  if (value.commandSyntax !== undefined && (typeof value.commandSyntax !== 'string' || value.commandSyntax.length > 64)) {
    throw handoverError('"commandSyntax" must be a string of at most 64 characters');
  }
  const counts = value.counts as Record<string, unknown> | undefined;
  if (
    counts !== undefined &&
    (typeof counts !== 'object' ||
      counts === null ||
      !['restarts', 'reloads', 'upgrades'].every((key) => Number.isSafeInteger(counts[key]) && (counts[key] as number) >= 0))
  ) {
    throw handoverError('"counts" must hold restarts, reloads and upgrades as counts');
  }
  if (value.serviceStartedAt !== undefined && !(Number.isSafeInteger(value.serviceStartedAt) && (value.serviceStartedAt as number) > 0)) {
    throw handoverError('"serviceStartedAt" must be a time in ms since the epoch');
  }
  const places = new Set<string>();
  const sockets = value.sockets.map((entry: Partial<HandedSocket>, index) => {
    const where = `socket ${index}`;
    if (typeof entry !== 'object' || entry === null) throw handoverError(`${where} is not an object`);
    if (!isFd(entry.fd) || fds.has(entry.fd)) throw handoverError(`${where}: "fd" must be an unused fd >= 3, not ${JSON.stringify(entry.fd)}`);
    fds.add(entry.fd);
    if (!Number.isInteger(entry.slot) || (entry.slot as number) < 0 || (entry.slot as number) > 4095)
      throw handoverError(`${where}: "slot" must be an integer 0..4095`);
    if (typeof entry.address !== 'string' || typeof entry.requestedAddress !== 'string')
      throw handoverError(`${where}: "address" and "requestedAddress" must be strings`);
    if (!isPort(entry.port) || entry.port === 0 || !isPort(entry.requestedPort))
      throw handoverError(`${where}: "port" must be 1..65535 and "requestedPort" 0..65535`);
    if (typeof entry.ipv6Only !== 'boolean' || typeof entry.steerable !== 'boolean')
      throw handoverError(`${where}: "ipv6Only" and "steerable" must be booleans`);
    if (entry.group !== false && (typeof entry.group !== 'string' || entry.group === '')) throw handoverError(`${where}: "group" must be a name or false`);
    if (entry.index !== undefined && (!Number.isInteger(entry.index) || entry.index < 0 || entry.index > 4095))
      throw handoverError(`${where}: "index" must be an integer 0..4095`);
    const place = `${groupKey(entry.address, entry.port, entry.ipv6Only)}|${entry.slot}`;
    if (places.has(place)) throw handoverError(`${where}: slot ${entry.slot} on ${entry.address}:${entry.port} is handed over twice`);
    places.add(place);
    return entry as HandedSocket;
  });
  return {
    from: value.from as number,
    ready: value.ready as number,
    sockets,
    ...(value.health === undefined ? {} : { health: value.health }),
    ...(value.keys === undefined ? {} : { keys: value.keys }),
    ...(value.commandSyntax === undefined ? {} : { commandSyntax: value.commandSyntax }),
    ...(value.counts === undefined
      ? {}
      : {
          counts: {
            restarts: value.counts.restarts,
            reloads: value.counts.reloads,
            upgrades: value.counts.upgrades,
            ...(Number.isSafeInteger(value.counts.cut) && (value.counts.cut as number) >= 0 ? { cut: value.counts.cut } : {}),
          },
        }),
    ...(value.serviceStartedAt === undefined ? {} : { serviceStartedAt: value.serviceStartedAt }),
  };
}

/** Closes inherited socket fds that will not be adopted (an fd already gone is fine). */
export function closeHandedFds(sockets: HandedSocket[]): void {
  for (const fd of new Set(sockets.map((socket) => socket.fd))) {
    try {
      fs.closeSync(fd);
    } catch {
      // not open
    }
  }
}

/**
 * Checks each inherited fd against what the hand-over says it is: a listening TCP socket with
 * SO_REUSEPORT bound to that address and port. Throws ERR_REUSEPORT_HANDOVER naming the first that is not.
 */
export function checkHandedSockets(binding: NativeBinding, sockets: HandedSocket[]): void {
  for (const socket of sockets) {
    let info: ReturnType<NativeBinding['socketInfo']>;
    try {
      info = binding.socketInfo(socket.fd);
    } catch (error) {
      throw handoverError(`fd ${socket.fd} (slot ${socket.slot}) is not a TCP socket: ${(error as Error).message}`);
    }
    const problem = !info.listening
      ? 'is not listening'
      : !info.reusePort
        ? 'has no SO_REUSEPORT'
        : info.port !== socket.port || info.address !== socket.address
          ? `is bound to ${info.address}:${info.port}`
          : undefined;
    if (problem) throw handoverError(`fd ${socket.fd} (slot ${socket.slot}, said to be ${socket.address}:${socket.port}) ${problem}`);
  }
}

/**
 * The hand-over this process was started with, if any: read once and removed from the environment,
 * so the workers and any later successor do not inherit it. Throws ERR_REUSEPORT_HANDOVER when it is
 * malformed.
 */
export function takeHandover(env: NodeJS.ProcessEnv = process.env, kindOf = fdKind): Handover | undefined {
  const text = env[HANDOVER_ENV];
  if (text === undefined) return undefined;
  delete env[HANDOVER_ENV];
  const handover = parseHandover(text);
  proveHandedFds(handover, kindOf);
  return handover;
}

/**
 * Every fd the hand-over names must be a socket (inherited-fd.ts): else ERR_REUSEPORT_HANDOVER naming
 * the variable and the fd, and no fd it names is written to or closed but the sockets among them
 * (given back: the slot sockets closed, the predecessor told why on the readiness channel).
 */
function proveHandedFds(handover: Handover, kindOf: typeof fdKind): void {
  const named = [
    { fd: handover.ready, as: 'the readiness channel' },
    ...handover.sockets.map((socket) => ({ fd: socket.fd, as: `slot ${socket.slot}'s socket` })),
    ...(handover.health === undefined ? [] : [{ fd: handover.health, as: 'the health socket' }]),
    ...(handover.keys === undefined ? [] : [{ fd: handover.keys, as: 'the ticket key channel' }]),
  ];
  const problem = firstNotInherited(named, kindOf);
  if (!problem) return;
  const error = handoverError(`${HANDOVER_ENV} names ${problem}: it was not handed over to this process, so it is neither used nor closed`);
  const sockets = named.filter(({ fd }) => kindOf(fd).kind === 'socket').map(({ fd }) => fd);
  for (const fd of sockets) {
    try {
      if (fd === handover.ready) fs.writeSync(fd, `${JSON.stringify({ error: error.message, pid: process.pid })}\n`);
    } catch {
      // the predecessor is gone
    }
    try {
      fs.closeSync(fd);
    } catch {
      // not open
    }
  }
  throw error;
}
