// Loads the native addon once, at import (node-gyp-build: build/Release, then prebuilds/), and types it.
import path from 'node:path';

/** A socket the addon opened: its fd and the address the kernel bound. */
export interface NativeSocket {
  fd: number;
  family: 4 | 6;
  address: string;
  port: number;
}

/** What to open: a TCP socket with SO_REUSEADDR + SO_REUSEPORT on a numeric address. */
export interface NativeListenSpec {
  address: string;
  port: number;
  ipv6Only?: boolean;
  /** false: bind only, do not listen. */
  listen?: boolean;
  backlog?: number;
}

/** The raw addon: a flat table of primitives; all validation and defaults live in TypeScript. */
export interface NativeBinding {
  /** Opens a socket; throws an Error with code, errno, syscall, address and port on failure. */
  openListener(spec: NativeListenSpec): NativeSocket;
  /** 0 when the kernel accepts SO_REUSEPORT on a TCP socket, else a negative errno. */
  probeReusePort(): number;
  /** listen(2) on an SO_REUSEPORT TCP socket; refuses any other fd (EPROTOTYPE, EINVAL, ENOTSOCK). */
  listenSocket(fd: number, backlog: number): void;
  /** A listening TCP socket's accept queue: waiting connections and the limit (Linux TCP_INFO, one getsockopt); EINVAL for one not listening, the kernel's error for any other fd. */
  acceptQueue(fd: number): { queued: number; limit: number };
  /** Attaches a classic BPF program ([code, jt, jf, k, ...]) to the fd's SO_REUSEPORT group (Linux). */
  attachReusePortProgram(fd: number, program: number[]): void;
  /** Restricts a thread (0: the calling one; a pid: that process's main thread) to `cpus` (Linux sched_setaffinity). */
  setCpuAffinity(pid: number, cpus: number[]): void;
  /** The CPUs a thread may run on, ascending (Linux sched_getaffinity). */
  getCpuAffinity(pid: number): number[];
  /** The listening TCP sockets on `port` (0: all) of this network namespace (Linux sock_diag). */
  listeningSockets(port: number): { family: 4 | 6; address: string; port: number; uid: number; inode: string; queued: number }[];
  /** An IPv4/IPv6 TCP socket (an inherited listener) read without changing it; anything else throws ENOTSOCK, EPROTOTYPE or EBADF with the fd. */
  socketInfo(fd: number): { family: 4 | 6; address: string; port: number; listening: boolean; reusePort: boolean; ipv6Only: boolean };
  /** Sends one sd_notify datagram to the unix socket at `path` ('/...' or '@abstract', as $NOTIFY_SOCKET) with `fds` as SCM_RIGHTS, never blocking (a full queue: EAGAIN); OS errors carry code, errno, syscall and the path as address. */
  notify(path: string, message: string, fds: number[]): void;
  /** Opens a UDP socket with SO_REUSEPORT (never SO_REUSEADDR) bound to a numeric address (left unbound with `bind: false`); errors as openListener's. */
  openDatagram(spec: { address: string; port: number; ipv6Only?: boolean; bind?: boolean }): NativeSocket;
  /** Binds an unbound UDP socket to a numeric address of its family; refuses any other fd (EPROTOTYPE, EINVAL when bound). */
  bindDatagram(fd: number, address: string, port: number): NativeSocket;
  /** SO_REUSEADDR off on a bound SO_REUSEPORT UDP socket (libuv sets it when a dgram socket adopts an fd); refuses any other fd. */
  clearDatagramReuseAddr(fd: number): void;
  /** The pid of an exited child of this process that is still waitable, left so (waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)); 0 when none. */
  peekExitedChild(): number;
  /** Reaps child `pid` if it has exited (waitpid(pid, WNOHANG)): `pid` then, else 0; ECHILD for a pid that is not a child. */
  reapChild(pid: number): number;
  /** Makes this process a child subreaper (Linux prctl(PR_SET_CHILD_SUBREAPER)); ENOSYS elsewhere. */
  setChildSubreaper(on: boolean): void;
  /** The unconnected UDP sockets bound to `port` (0: all) of this network namespace (Linux sock_diag); `queued` in bytes. */
  datagramSockets(port: number): { family: 4 | 6; address: string; port: number; uid: number; inode: string; queued: number }[];
  /** The first `length` bytes (1 B to 1 MiB) of the regular file `fd`, mapped readable, writable and shared (mmap MAP_SHARED), unmapped when collected; EINVAL for a file shorter than that, ENODEV for anything but a regular file. */
  mapShared(fd: number, length: number): ArrayBuffer;
}

/** The addon, or why it could not be loaded. */
export type BindingLoad = { binding: NativeBinding; error: undefined } | { binding: undefined; error: Error };

const packageRoot = path.join(__dirname, '..');

/** Why there is no addon on Windows, for facts and doctor: nothing to build or fix. */
export const noAddonOnWindows =
  'Windows has no SO_REUSEPORT, so reuseport has no native addon there and runs its JavaScript path ' +
  "(Node's own listen; node:cluster's shared handle in a cluster)";

// Loaded while the package is imported, not on first use: a server that imports the library as
// root and then drops privileges (or chroots, or loses the file) must keep the addon it had, not
// silently fall back to another mode because the new user cannot read build/Release.
const loaded: BindingLoad = load();
let warned = false;

function load(): BindingLoad {
  // Not even looked for: the install builds nothing on Windows, and an addon there could only refuse.
  if (process.platform === 'win32') return { binding: undefined, error: new Error(noAddonOnWindows) };
  try {
    const nodeGypBuild = require('node-gyp-build') as (root: string) => NativeBinding;
    return { binding: nodeGypBuild(packageRoot), error: undefined };
  } catch (cause) {
    // Never thrown: importing the library never crashes; every plan made without the addon says why.
    const error = new Error(
      `reuseport: the native addon could not be loaded for ${process.platform}-${process.arch} ` +
        `(tried ${path.join(packageRoot, 'build')} and ${path.join(packageRoot, 'prebuilds')}); ` +
        'run "npm rebuild reuseport" with a C++ toolchain installed',
      { cause },
    );
    return { binding: undefined, error };
  }
}

/** The addon loaded at import, or why it could not be; warns once, on the first call, if it could not. */
export function loadBinding(): BindingLoad {
  // The warning waits for a call, not the import: a process that imports the package without
  // using it (a build step, a CLI's --help, a bundle that picks another path) has nothing to fix.
  if (loaded.error && !warned && process.platform !== 'win32') {
    warned = true;
    process.emitWarning(`${loaded.error.message}. Until then reuseport uses Node's own reusePort where this Node has it, else a cluster mode.`, {
      code: 'REUSEPORT_NO_ADDON',
    });
  }
  return loaded;
}
