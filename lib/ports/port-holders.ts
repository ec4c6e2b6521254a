// Who listens on a TCP port (or holds a UDP one), on Linux: the sockets (from the kernel's sock_diag
// through the addon, else from /proc/net/{tcp,udp}{,6}), their addresses and their owners' pids (from /proc/<pid>/fd).
import fs from 'node:fs';
import path from 'node:path';
import { loadBinding } from '../binding';

/** One listening socket on the port and the processes that hold it open. */
export interface PortHolder {
  address: string;
  port: number;
  family: 4 | 6;
  /** The socket's owner (uid), as the kernel records it. */
  uid: number;
  inode: string;
  /** Processes with the socket open (those this user may inspect). */
  processes: { pid: number; command: string }[];
}

/** A listening socket from /proc/net/tcp{,6}, before its owners are looked up. */
export type ListeningSocket = Omit<PortHolder, 'processes'> & {
  /** Connections waiting in its accept queue now (rx_queue of a listening row). */
  queued: number;
};

/** Which sockets hold a port: TCP listeners, or unconnected UDP sockets bound to it. */
export type PortProtocol = 'tcp' | 'udp';

// The state column of /proc/net/tcp for a listener; of /proc/net/udp for an unconnected socket (TCP_CLOSE).
const holderState: Record<PortProtocol, string> = { tcp: '0A', udp: '07' };

// /proc prints addresses as the kernel stores them: 32-bit words in host (little-endian on x86/arm) order.
function decodeAddress(hex: string, family: 4 | 6): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((word) => (word.match(/../g) ?? []).reverse().map((pair) => Number.parseInt(pair, 16)));
  if (family === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  // Compress the longest run of zero groups, as inet_ntop does.
  let best = { start: -1, length: 0 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i += 1;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j += 1;
    if (j - i > best.length && j - i > 1) best = { start: i, length: j - i };
    i = j;
  }
  if (best.start < 0) return groups.join(':');
  const head = groups.slice(0, best.start).join(':');
  const tail = groups.slice(best.start + best.length).join(':');
  const text = `${head}::${tail}`;
  // IPv4-mapped addresses read better in their usual form.
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(text);
  if (mapped?.[1] && mapped[2]) {
    const high = Number.parseInt(mapped[1], 16);
    const low = Number.parseInt(mapped[2], 16);
    return `::ffff:${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  return text;
}

/** Parses a /proc/net/tcp{,6} (or, for 'udp', /proc/net/udp{,6}) table; returns the sockets that hold `port` (every port: undefined). */
export function parseListeningSockets(table: string, family: 4 | 6, port: number | undefined, protocol: PortProtocol = 'tcp'): ListeningSocket[] {
  const sockets: ListeningSocket[] = [];
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const [local, state, queues, uid, inode] = [fields[1], fields[3], fields[4], fields[7], fields[9]];
    if (!local || state !== holderState[protocol] || uid === undefined || inode === undefined) continue;
    const [hexAddress = '', hexPort = ''] = local.split(':');
    const bound = Number.parseInt(hexPort, 16);
    if (port !== undefined && bound !== port) continue;
    const queued = Number.parseInt(queues?.split(':')[1] ?? '0', 16) || 0;
    sockets.push({ address: decodeAddress(hexAddress, family), port: bound, family, uid: Number(uid), inode, queued });
  }
  return sockets;
}

/** The socket inodes a process holds (empty when it is gone or not this user's to read). */
export function socketInodesOf(pid: number, procRoot = '/proc'): Set<string> {
  const inodes = new Set<string>();
  let fds: string[] = [];
  try {
    fds = fs.readdirSync(path.join(procRoot, String(pid), 'fd'));
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(path.join(procRoot, String(pid), 'fd', fd)))?.[1];
      if (inode) inodes.add(inode);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

function readOrEmpty(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Maps socket inodes to the processes holding them, by reading every visible /proc/<pid>/fd. */
export function processesByInode(inodes: Set<string>, procRoot = '/proc'): Map<string, { pid: number; command: string }[]> {
  const found = new Map<string, { pid: number; command: string }[]>();
  if (inodes.size === 0) return found;
  for (const entry of fs.readdirSync(procRoot)) {
    if (!/^\d+$/.test(entry)) continue;
    for (const inode of socketInodesOf(Number(entry), procRoot)) {
      if (!inodes.has(inode)) continue;
      const command = readOrEmpty(path.join(procRoot, entry, 'cmdline'))
        .split('\0')
        .filter(Boolean)
        .join(' ');
      const list = found.get(inode) ?? [];
      if (!list.some((p) => p.pid === Number(entry))) list.push({ pid: Number(entry), command });
      found.set(inode, list);
    }
  }
  return found;
}

/**
 * Every socket listening on `port` (IPv4 and IPv6), without its owners; empty where /proc is
 * missing. The addon asks the kernel for listeners only (sock_diag), so the cost does not grow with
 * the machine's connections; /proc/net/tcp lists every socket, TIME_WAIT included, and is read
 * only without the addon (or for another `procRoot`, as tests give).
 */
export function listeningSocketsOn(port: number, procRoot = '/proc', protocol: PortProtocol = 'tcp'): ListeningSocket[] {
  const { binding } = procRoot === '/proc' && process.platform === 'linux' ? loadBinding() : { binding: undefined };
  if (binding) {
    try {
      return protocol === 'tcp' ? binding.listeningSockets(port) : binding.datagramSockets(port);
    } catch {
      // no sock_diag in this kernel or sandbox: /proc below
    }
  }
  return listeningSocketsFromProc(port, procRoot, protocol);
}

/** The same from /proc/net/tcp{,6} (or udp{,6}) alone. */
export function listeningSocketsFromProc(port: number, procRoot = '/proc', protocol: PortProtocol = 'tcp'): ListeningSocket[] {
  return [
    ...parseListeningSockets(readOrEmpty(path.join(procRoot, 'net', protocol)), 4, port, protocol),
    ...parseListeningSockets(readOrEmpty(path.join(procRoot, 'net', `${protocol}6`)), 6, port, protocol),
  ];
}

/** Every socket listening on `port` (for 'udp': bound to it), IPv4 and IPv6, and who holds it; empty where /proc is missing. */
export function findPortHolders(port: number, procRoot = '/proc', protocol: PortProtocol = 'tcp'): PortHolder[] {
  const sockets = listeningSocketsOn(port, procRoot, protocol);
  const owners = processesByInode(new Set(sockets.map((s) => s.inode)), procRoot);
  return sockets.map((socket) => ({ ...socket, processes: owners.get(socket.inode) ?? [] }));
}
