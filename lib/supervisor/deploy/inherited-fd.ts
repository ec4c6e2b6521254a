// Inherited fds are proven before they are used or closed. A hand-over (REUSEPORT_HANDOVER) or
// systemd (LISTEN_FDS) names fds by number; a wrong number names one of Node's own (its epoll fd,
// an eventfd, libuv's signal pipe: none of them a socket), and closing or writing to it breaks the
// event loop (SIGTERM ignored, SIGABRT at exit). Every fd either passes is a socket (TCP listeners,
// and the socket pairs spawn makes for the readiness channel and the key pipe), and Node opens no
// socket before the app's code runs: an fd that is not a socket was not handed over.
import fs from 'node:fs';

/** What an fd is, for an error message: its kind, and what /proc says it is (Linux). */
export interface FdKind {
  kind: 'socket' | 'pipe' | 'file' | 'directory' | 'device' | 'link' | 'other' | 'closed';
  /** /proc/self/fd's link text ("anon_inode:[eventpoll]", "pipe:[123]"), where there is one. */
  link?: string;
}

/** Reads what `fd` is, without changing it. */
export function fdKind(fd: number): FdKind {
  let stat: fs.Stats;
  try {
    stat = fs.fstatSync(fd);
  } catch {
    return { kind: 'closed' };
  }
  let link: string | undefined;
  try {
    link = fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    // no /proc: the kind alone
  }
  const kind: FdKind['kind'] = stat.isSocket()
    ? 'socket'
    : stat.isFIFO()
      ? 'pipe'
      : stat.isFile()
        ? 'file'
        : stat.isDirectory()
          ? 'directory'
          : stat.isCharacterDevice() || stat.isBlockDevice()
            ? 'device'
            : stat.isSymbolicLink()
              ? 'link'
              : 'other';
  return { kind, ...(link === undefined ? {} : { link }) };
}

/** Why an fd said to be inherited cannot be one (pure): undefined for a socket, else what it is. */
export function notInheritedReason(found: FdKind): string | undefined {
  if (found.kind === 'socket') return undefined;
  if (found.kind === 'closed') return 'is not open';
  const what = found.kind === 'other' ? 'not a socket' : `a ${found.kind}, not a socket`;
  return `is ${what}${found.link ? ` (${found.link})` : ''}`;
}

/** The first of `fds` (each with what it is said to be) that is not a socket: its description, else undefined. */
export function firstNotInherited(fds: { fd: number; as: string }[], kindOf: (fd: number) => FdKind = fdKind): string | undefined {
  for (const { fd, as } of fds) {
    const reason = notInheritedReason(kindOf(fd));
    if (reason) return `fd ${fd} (${as}) ${reason}`;
  }
  return undefined;
}
