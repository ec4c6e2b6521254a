// Port ownership: SO_REUSEPORT lets any process of the same user join a port and silently take part
// of its connections. Processes of one sharing group register their sockets (by inode) in a private
// per-user directory (registryDir); a listener on the port that is not registered to our group is foreign.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type SystemError, nodeError, uvErrno } from '../errors';
import { type PortHolder, type PortProtocol, listeningSocketsOn, processesByInode } from './port-holders';

/**
 * The sharing group of this process when none is named: the user's app, by its main script's real
 * path. When that script is a package's (a framework's command line, `next start`, `nest start`: the
 * same file for every app of a monorepo), the app's directory (the working directory) is part of it.
 */
export function defaultGroup(main = process.env.pm_exec_path ?? process.argv[1] ?? process.execPath, cwd = process.cwd()): string {
  // pm2 runs every app through its own container script; pm_exec_path is the app's.
  const resolved = realOrAsIs(main);
  if (resolved.split(path.sep).includes('node_modules')) return `app:${resolved} in ${realOrAsIs(cwd)}`;
  return `app:${resolved}`;
}

function realOrAsIs(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    // a script that is gone still names the app
    return file;
  }
}

/** Validates the `group` option: a non-empty name, or false to turn the check off. */
export function normalizeGroup(value: unknown): string | false | undefined {
  if (value === undefined || value === false) return value;
  if (typeof value !== 'string' || value === '' || value.length > 200) {
    throw nodeError(
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      `The "options.group" property must be a non-empty string of at most 200 characters, or false. Received ${typeof value === 'string' ? `'${value.slice(0, 40)}'` : typeof value}`,
    );
  }
  return `name:${value}`;
}

/**
 * Where this uid's registry is, the same for every process of the uid whatever its environment: root's
 * under /run (only root can create there), another user's in $XDG_RUNTIME_DIR (made for that user by
 * the login manager) when set, else <tmp>/reuseport-<uid> (pure).
 */
export function registryPath(uid: number, env: NodeJS.ProcessEnv, tmpdir: string, runExists: boolean): string {
  if (uid === 0 && runExists) return '/run/reuseport';
  const base = env.XDG_RUNTIME_DIR;
  return base && path.isAbsolute(base) ? path.join(base, 'reuseport') : path.join(tmpdir, `reuseport-${uid}`);
}

/** Why the registry directory cannot be trusted (another user made it first, or it is a link), or undefined when it can (pure). */
export function registryProblem(stat: Pick<fs.Stats, 'uid' | 'mode' | 'isDirectory' | 'isSymbolicLink'> | undefined, uid: number): string | undefined {
  if (!stat) return 'it cannot be created';
  if (stat.isSymbolicLink()) return 'it is a symbolic link';
  if (!stat.isDirectory()) return 'it is not a directory';
  if (stat.uid !== uid) return `it is owned by uid ${stat.uid}, not ${uid}`;
  if ((stat.mode & 0o077) !== 0) return `its mode is ${(stat.mode & 0o777).toString(8).padStart(4, '0')}, not 0700`;
  return undefined;
}

let warnedAbout: string | undefined;

/**
 * The registry directory, private to this user, made if missing; undefined when it cannot be trusted
 * (squatted by another user, a link, a file, a wrong mode): the port-ownership check is then off for
 * this process, with a REUSEPORT_REGISTRY_UNSAFE warning (once) naming the directory. A squatter can
 * turn an accident check off, never the service.
 */
export function registryDir(): string | undefined {
  const uid = process.getuid?.() ?? 0;
  const dir = registryPath(uid, process.env, os.tmpdir(), fs.existsSync('/run'));
  let stat: fs.Stats | undefined;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch {
    // another user's file or link in the way: told below
  }
  try {
    stat = fs.lstatSync(dir);
  } catch {
    stat = undefined;
  }
  const problem = registryProblem(stat, uid);
  if (!problem) return dir;
  if (warnedAbout !== dir) {
    warnedAbout = dir;
    process.emitWarning(
      `reuseport: the socket registry ${dir} cannot be trusted (${problem}): listeners of another app on a shared port are not detected in this process. Remove ${dir} (it must be a directory of uid ${uid} with mode 0700).`,
      { code: 'REUSEPORT_REGISTRY_UNSAFE' },
    );
  }
  return undefined;
}

/** A socket's record in the registry: its sharing group and the process that registered it. */
export interface Registration {
  group: string;
  pid: number;
}

/** Records that the socket `fd` belongs to `group`; returns a function that removes the record. */
export function registerSocket(fd: number, group: string): () => void {
  const inode = fs.fstatSync(fd).ino;
  const dir = registryDir();
  if (!dir) return () => undefined;
  const file = path.join(dir, `${inode}.json`);
  const record: Registration = { group, pid: process.pid };
  // Written aside and renamed: a sibling checking the port never reads a half-written record (a UDP
  // socket is registered before its bind and again by the check after it, while it is visible).
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, JSON.stringify(record), { mode: 0o600 });
  fs.renameSync(temporary, file);
  return () => fs.rmSync(file, { force: true });
}

/** The sharing group and pid that registered the socket with this inode, if one of this user's did. */
export function readRegistration(inode: string): Registration | undefined {
  const dir = registryDir();
  if (!dir) return undefined;
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, `${inode}.json`), 'utf8')) as Registration;
  } catch {
    return undefined;
  }
}

/** Whether two listening addresses can receive the same connections: equal, or one a wildcard. */
export function overlaps(a: string, b: string): boolean {
  const plain = (address: string) => (address.startsWith('::ffff:') ? address.slice(7) : address);
  const [x, y] = [plain(a), plain(b)];
  return x === y || ['0.0.0.0', '::'].includes(x) || ['0.0.0.0', '::'].includes(y);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

/**
 * Listeners on address:port that are not of `group`: unregistered, registered to another group, or
 * registered by a process that is gone (for 'udp': UDP sockets bound to it). `except` leaves out sockets of ours (by inode). Only foreign
 * sockets cost a scan of /proc for their owners.
 */
export function foreignHolders(address: string, port: number, group: string, except: Set<string> = new Set(), protocol: PortProtocol = 'tcp'): PortHolder[] {
  // No registry to trust: no listener can be told ours, so none is called foreign (the warning says so).
  if (!registryDir()) return [];
  const foreign = listeningSocketsOn(port, '/proc', protocol).filter((socket) => {
    if (except.has(socket.inode) || !overlaps(socket.address, address)) return false;
    const registration = readRegistration(socket.inode);
    return !registration || registration.group !== group || !alive(registration.pid);
  });
  if (foreign.length === 0) return [];
  const owners = processesByInode(new Set(foreign.map((socket) => socket.inode)), '/proc');
  return foreign.map((socket) => ({ ...socket, processes: owners.get(socket.inode) ?? [] }));
}

/** EADDRINUSE naming who holds the port and how to share it on purpose. */
export function foreignHolderError(holders: PortHolder[], address: string, port: number, group: string): SystemError {
  const who = holders
    .map((holder) => {
      const owners = holder.processes.map((p) => `pid ${p.pid} (${p.command || '?'})`).join(', ');
      return `${holder.address}:${holder.port} by ${owners || `a process of uid ${holder.uid}`}`;
    })
    .join('; ');
  const error = new Error(
    `bind EADDRINUSE: address already in use ${address}:${port} (held by ${who}, which is not of this app's sharing group ` +
      `"${group}": with SO_REUSEPORT the kernel would silently give it part of this port's connections. To share on purpose, ` +
      "give every app the same { group: 'name' } option; { group: false } turns this check off, which is unsafe.)",
  ) as SystemError;
  Object.assign(error, { code: 'EADDRINUSE', errno: uvErrno('EADDRINUSE'), syscall: 'bind', address, port });
  return error;
}
