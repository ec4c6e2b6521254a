// Validates and normalises listenReusePort's arguments, before any side effect, with Node's codes.
import net from 'node:net';
import { badPort, invalidArgReason, invalidArgType, invalidArgValue, outOfRange } from '../errors';
import { defaultGroup, normalizeGroup } from '../ports/ownership';
import { type ModeChoice, choiceList, isChoice } from '../plan/plan';

/** Options of `listenReusePort(server, options)` (or its third argument). */
export interface ListenReusePortOptions {
  /**
   * TCP port; 0 lets the kernel choose. Required in an options object, as in `server.listen(options)`
   * (`listenReusePort(server)` alone listens on port 0). A numeric string is accepted, as by Node; null is refused.
   */
  port?: number | string;
  /** Host name or numeric address. Default (undefined or null): `::` (dual-stack), or `0.0.0.0` where IPv6 is unavailable. */
  host?: string | null;
  /** Accept-queue length for listen(2), capped by net.core.somaxconn. Default (and for 0, as in Node) 511. */
  backlog?: number;
  /** With an IPv6 address, accept IPv6 only (IPV6_V6ONLY). Default false: dual-stack on `::`. */
  ipv6Only?: boolean;
  /** Aborting it before listening rejects with an AbortError; after, it closes the server. */
  signal?: AbortSignal;
  /** 'auto' (default: the best this system can do, or REUSEPORT_MODE) or a mode to insist on. */
  mode?: ModeChoice;
  /**
   * Who may share the port: a name (apps that give the same name share), by default this app (its
   * main script's real path). A listener of another group on the port is refused with EADDRINUSE.
   * false turns the check off, which is unsafe: any process of this user could then take connections.
   */
  group?: string | false;
  /**
   * TLS session-ticket key for a tls.Server (https, http2 secure, tls): 48 bytes, the same in every
   * process of the port, so a ticket from one resumes on all (you manage and rotate it). Under
   * startCluster the supervisor gives the workers one by default; this option wins over it.
   */
  ticketKeys?: Buffer;
}

/** listenReusePort's arguments after validation, with every default resolved. */
export interface ListenRequest {
  port: number;
  host: string | undefined;
  backlog: number;
  ipv6Only: boolean;
  signal: AbortSignal | undefined;
  mode: ModeChoice;
  /** The resolved sharing group ("app:<path>" or "name:<name>"), or false for none. */
  group: string | false;
  ticketKeys: Buffer | undefined;
}

export const DEFAULT_BACKLOG = 511;

/**
 * Node's validatePort: a number or numeric string, an integer in 0..65535. Unlike server.listen,
 * an explicit null is refused: it is far more often a failed PORT parse than a wish for any port.
 */
export function validatePort(value: unknown, name: string): number {
  if (value === undefined) return 0;
  const numeric = typeof value === 'number' || (typeof value === 'string' && value.trim() !== '');
  const port = Number(value);
  if (!numeric || port !== port >>> 0 || port > 0xffff) throw badPort(name, value);
  return port;
}

const label = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/**
 * Whether a host can be an address or a name. Refused without asking DNS: the empty string, a
 * dotted quad that is no IPv4 address ("999.1.1.1"), something with a colon that is no IPv6
 * address ("::zz"), and names that break DNS label rules.
 */
export function isHostSyntax(host: string): boolean {
  if (net.isIP(host) !== 0) return true;
  if (host === '' || host.length > 253 || host.includes(':') || /^[\d.]+$/.test(host)) return false;
  const labels = (host.endsWith('.') ? host.slice(0, -1) : host).split('.');
  return labels.every((part) => label.test(part));
}

/** Turns `(port, options)` or `(options)` into a ListenRequest; throws Node-style errors. */
export function normalizeListenArgs(portOrOptions: unknown, extra?: unknown): ListenRequest {
  let options: ListenReusePortOptions;
  let port: number;
  if (typeof portOrOptions === 'object' && portOrOptions !== null) {
    options = portOrOptions as ListenReusePortOptions;
    // As server.listen({}) and server.listen([]): an options object names its port (0 for any).
    if (options.port === undefined) throw invalidArgReason('options', 'must have the property "port"', options);
    port = validatePort(options.port, 'options.port');
  } else {
    port = validatePort(portOrOptions, 'port');
    if (extra !== undefined && (typeof extra !== 'object' || extra === null)) {
      throw invalidArgType('options', 'of type object', extra);
    }
    options = (extra ?? {}) as ListenReusePortOptions;
  }

  const { host, backlog, ipv6Only, signal, mode } = options;
  const group = normalizeGroup(options.group);
  if (host !== undefined && host !== null && typeof host !== 'string') {
    throw invalidArgType('options.host', 'of type string', host);
  }
  if (typeof host === 'string' && !isHostSyntax(host)) {
    throw invalidArgValue("property 'options.host'", 'a host name or an IP address', host);
  }
  if (backlog !== undefined) {
    if (typeof backlog !== 'number') throw invalidArgType('options.backlog', 'of type number', backlog);
    if (!Number.isInteger(backlog) || backlog < 0 || backlog > 0x7fffffff) {
      throw outOfRange('options.backlog', '>= 0 && <= 2147483647', backlog);
    }
  }
  if (ipv6Only !== undefined && typeof ipv6Only !== 'boolean') {
    throw invalidArgType('options.ipv6Only', 'of type boolean', ipv6Only);
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw invalidArgType('options.signal', 'an instance of AbortSignal', signal);
  }
  if (mode !== undefined && !isChoice(mode)) throw invalidArgValue("property 'options.mode'", choiceList, mode);
  const { ticketKeys } = options;
  if (ticketKeys !== undefined) {
    if (!Buffer.isBuffer(ticketKeys)) throw invalidArgType('options.ticketKeys', 'an instance of Buffer', ticketKeys);
    // What tls.Server#setTicketKeys takes (it would throw later, after the socket was made).
    if (ticketKeys.length !== 48) throw outOfRange('options.ticketKeys.length', '48 bytes', ticketKeys.length);
  }
  return {
    port,
    host: host ?? undefined,
    // As in server.listen(), a backlog of 0 means the default.
    backlog: backlog || DEFAULT_BACKLOG,
    ipv6Only: ipv6Only ?? false,
    signal,
    mode: mode ?? 'auto',
    group: group ?? defaultGroup(),
    ticketKeys,
  };
}
