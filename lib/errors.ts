// Errors shaped like Node's own (`code`, `errno`, `syscall`, `address`, `port`), built in one place.
import { getSystemErrorMap, inspect } from 'node:util';

/** An error from the operating system, as Node reports it: `code`, negative `errno`, `syscall`. */
export interface SystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
  address?: string;
  port?: number;
  hostname?: string;
}

type ErrorClass = new (message: string) => Error;

/** An error printed as Node prints its own ("TypeError [ERR_X]: message"), with `code` set. */
export function nodeError<T extends Error>(Base: ErrorClass, code: string, message: string): T {
  const error = new Base(message);
  const { name } = error;
  error.name = `${name} [${code}]`;
  void error.stack;
  Reflect.deleteProperty(error, 'name');
  (error as Error & { code: string }).code = code;
  return error as T;
}

/** How Node describes a received value in argument errors ("Received type number (5)"). */
export function describeReceived(value: unknown): string {
  if (value === null || value === undefined) return `Received ${value}`;
  if (typeof value === 'function') return `Received function ${value.name || '<anonymous>'}`;
  if (typeof value === 'object') {
    const ctor = (value as object).constructor as { name?: string } | undefined;
    if (ctor?.name) return `Received an instance of ${ctor.name}`;
    return `Received ${inspect(value, { depth: -1 })}`;
  }
  let shown = inspect(value, { colors: false });
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return `Received type ${typeof value} (${shown})`;
}

/** ERR_INVALID_ARG_TYPE, worded as Node words it. */
export function invalidArgType(name: string, expected: string, value: unknown): TypeError {
  const kind = name.includes('.') ? 'property' : 'argument';
  return nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" ${kind} must be ${expected}. ${describeReceived(value)}`);
}

/** ERR_SOCKET_BAD_PORT, worded as Node's `validatePort`. */
export function badPort(name: string, value: unknown): RangeError {
  return nodeError(RangeError, 'ERR_SOCKET_BAD_PORT', `${name} should be >= 0 and < 65536. ${describeReceived(value)}.`);
}

/** ERR_OUT_OF_RANGE, worded as Node words it. */
export function outOfRange(name: string, range: string, value: unknown): RangeError {
  return nodeError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be ${range}. Received ${inspect(value)}`);
}

/** ERR_SERVER_ALREADY_LISTEN, as `server.listen()` throws it. */
export function serverAlreadyListen(): Error {
  return nodeError(Error, 'ERR_SERVER_ALREADY_LISTEN', 'Listen method has been called more than once without closing.');
}

/** The AbortError Node's promise APIs reject with (`code: 'ABORT_ERR'`, `cause`: the reason). */
export function abortError(signal: AbortSignal): Error {
  const error = new Error('The operation was aborted', { cause: signal.reason });
  error.name = 'AbortError';
  (error as Error & { code: string }).code = 'ABORT_ERR';
  return error;
}

/** ERR_INVALID_ARG_VALUE, worded as Node words it. */
export function invalidArgValue(what: string, allowed: string, value: unknown): TypeError {
  return nodeError(TypeError, 'ERR_INVALID_ARG_VALUE', `The ${what} must be one of: ${allowed}. Received ${inspect(value)}`);
}

/** ERR_INVALID_ARG_VALUE with Node's own reason ("The argument 'options' must have the property ..."). */
export function invalidArgReason(name: string, reason: string, value: unknown): TypeError {
  const kind = name.includes('.') ? 'property' : 'argument';
  return nodeError(TypeError, 'ERR_INVALID_ARG_VALUE', `The ${kind} '${name}' ${reason}. Received ${inspect(value)}`);
}

/** A mode asked for explicitly that this system cannot do (no silent fallback). */
export function modeUnsupported(message: string): Error {
  return nodeError(Error, 'ERR_REUSEPORT_MODE_UNSUPPORTED', message);
}

const advice: Record<string, string> = {
  EADDRINUSE:
    'another socket already holds this address and port without SO_REUSEPORT (a plain listen), ' +
    'or it belongs to another user; stop that process, pick another port, or start every process ' +
    'on this port with listenReusePort',
  EACCES: 'ports below 1024 need root or CAP_NET_BIND_SERVICE (see net.ipv4.ip_unprivileged_port_start); ' + 'use a port >= 1024 or grant the capability',
  EADDRNOTAVAIL: 'no local interface has this address; listen on one this host owns, or on "::"',
};

/**
 * Adds what to do to an OS error's message, keeping Node's wording first and every field as is; an
 * EADDRINUSE names `holders` when given (ports/holder-advice.ts's explainTaken finds them).
 */
export function explainListenError<T extends Error>(error: T, holders?: string): T {
  const { code } = error as Partial<SystemError>;
  const hint =
    code === 'EADDRINUSE' && holders
      ? `held by ${holders}, without SO_REUSEPORT (a plain listen) or as another user: stop that process, or pick another port`
      : code
        ? advice[code]
        : undefined;
  if (hint && !error.message.includes(hint)) error.message = `${error.message} (${hint})`;
  return error;
}

/** True for an OS error (from the addon or from Node) rather than a programming error. */
export function isSystemError(error: unknown): error is SystemError {
  return error instanceof Error && typeof (error as Partial<SystemError>).code === 'string' && typeof (error as Partial<SystemError>).syscall === 'string';
}

// name -> libuv errno, from Node's own table: the numbers are libuv's, which are the negated POSIX
// errno on Linux and macOS but libuv's own on Windows (EINVAL is -4071 there, while
// os.constants.errno.EINVAL is the C runtime's 22), so `-(os.constants.errno.X)` is not an errno there.
let errnoByName: Map<string, number> | undefined;

/**
 * The errno Node gives the error `code` on this platform (`uvErrno('EINVAL')`: -22 on Linux, -4071
 * on Windows), from `util.getSystemErrorMap()`; `map` is for tests. Throws for a name libuv does not know.
 */
export function uvErrno(code: string, map?: ReadonlyMap<number, [string, string]>): number {
  const byName = map ? namesOf(map) : (errnoByName ??= namesOf(getSystemErrorMap()));
  const errno = byName.get(code);
  if (errno === undefined) throw new RangeError(`libuv has no error named ${code}`);
  return errno;
}

function namesOf(map: ReadonlyMap<number, [string, string]>): Map<string, number> {
  const byName = new Map<string, number>();
  for (const [errno, [name]] of map) if (!byName.has(name)) byName.set(name, errno);
  return byName;
}

/** An OS error from a negative errno, as Node's `ExceptionWithHostPort` builds it. */
export function systemError(errno: number, syscall: string, address: string, port: number): SystemError {
  const [code, description] = getSystemErrorMap().get(errno) ?? ['UNKNOWN', 'unknown error'];
  const error = new Error(`${syscall} ${code}: ${description} ${address}:${port}`) as SystemError;
  error.errno = errno;
  error.code = code;
  error.syscall = syscall;
  error.address = address;
  error.port = port;
  return error;
}

/**
 * An OS error as Node's `ExceptionWithHostPort` builds it for a cluster worker's failed listen: the
 * code without its description, and the address as the app gave it (null for none: "bind EADDRINUSE null:3000").
 */
export function exceptionWithHostPort(errno: number, syscall: string, address: string | null, port: number): SystemError {
  const code = getSystemErrorMap().get(errno)?.[0] ?? 'UNKNOWN';
  const details = port > 0 ? ` ${address}:${port}` : address ? ` ${address}` : '';
  const error = new Error(`${syscall} ${code}${details}`) as SystemError;
  error.errno = errno;
  error.code = code;
  error.syscall = syscall;
  (error as { address: string | null }).address = address;
  if (port) error.port = port;
  return error;
}

/** ERR_REUSEPORT_TOO_MANY_SOCKETS: a worker asked its primary to hold more sockets than maxSocketsPerWorker allows. */
export function tooManySockets(message: string): Error {
  return nodeError(Error, 'ERR_REUSEPORT_TOO_MANY_SOCKETS', message);
}
