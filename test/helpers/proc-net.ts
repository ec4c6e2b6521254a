// Reads Linux's /proc to tell which processes own the listening sockets of a port.
import fs from 'node:fs';

const LISTEN = '0A';

/**
 * Inodes of the TCP sockets listening on `port` (IPv4 and IPv6 tables), or only on 127.0.0.1:`port`
 * with `loopbackOnly` (another process may listen on the same port number over IPv6).
 */
export function listeningInodes(port: number, loopbackOnly = false): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes: string[] = [];
  for (const table of loopbackOnly ? ['/proc/net/tcp'] : ['/proc/net/tcp', '/proc/net/tcp6']) {
    const lines = fs.readFileSync(table, 'utf8').trim().split('\n').slice(1);
    for (const line of lines) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1] ?? '';
      const ours = loopbackOnly ? local === `0100007F:${hexPort}` : local.endsWith(`:${hexPort}`);
      if (fields[3] === LISTEN && ours) inodes.push(fields[9] ?? '');
    }
  }
  return inodes;
}

/** Socket inodes held open by a process, from its fd table. */
export function socketInodesOf(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match?.[1]) inodes.add(match[1]);
    } catch {
      // the fd closed while we looked
    }
  }
  return inodes;
}

/** Open fds of this process. */
export function openFdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}
