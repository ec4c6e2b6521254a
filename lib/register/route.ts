// Which listens the hook takes and which it leaves to Node: a pure function of what Node's own listen
// path hands on (the arguments of `server._listen2` and of `cluster._getServer`, after Node validated
// and resolved them), so the table of cases is tested without a socket.

/** What Node passes down once `server.listen(...)` has validated its arguments (and looked up a host name). */
export interface ListenCall {
  /** The port: -1 for a unix socket or pipe (and for a handle), 0 for any. */
  port: number | null;
  /** 4 or 6 for TCP, -1 for a pipe, 'udp4' / 'udp6' for a dgram socket in a cluster worker. */
  addressType: number | string | null;
  /** `listen({ fd })`. */
  fd: unknown;
  /** The server already has a handle: `listen(handle)`, or one node:cluster's primary sent. */
  hasHandle: boolean;
  /** `listen({ exclusive: true })`: the app asked for a socket of its own, outside any cluster. */
  exclusive: boolean;
  /** A listen this package makes itself (Node's own reusePort or an exclusive listen). */
  own: boolean;
}

/** Where a listen goes: through the package, or to Node as the app wrote it (and why). */
export type HookRoute = { through: 'package' } | { through: 'node'; why: string };

/** The listens that go through the package: TCP on a fixed port, and nothing else. */
export function routeListen(call: ListenCall): HookRoute {
  if (call.own) return { through: 'node', why: "the package's own listen" };
  if (call.hasHandle) return { through: 'node', why: 'a handle' };
  if (typeof call.fd === 'number' && call.fd >= 0) return { through: 'node', why: 'an fd' };
  if (call.addressType !== 4 && call.addressType !== 6) {
    return { through: 'node', why: typeof call.addressType === 'string' ? 'a UDP socket' : 'a unix socket or pipe' };
  }
  if (call.exclusive) return { through: 'node', why: 'exclusive: true' };
  if (typeof call.port !== 'number' || call.port <= 0) return { through: 'node', why: 'port 0: each process would get a port of its own' };
  return { through: 'package' };
}
