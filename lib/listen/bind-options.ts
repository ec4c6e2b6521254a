// Validates and normalises bindReusePort's arguments, before any side effect, with Node's codes.
import { invalidArgReason, invalidArgType, invalidArgValue } from '../errors';
import { defaultGroup, normalizeGroup } from '../ports/ownership';
import { type ModeChoice, choiceList, isChoice } from '../plan/plan';
import { isHostSyntax, validatePort } from './options';

/** Options of `bindReusePort(socket, options)` (or its third argument). */
export interface BindReusePortOptions {
  /** UDP port; 0 lets the kernel choose. Required in an options object, as in `socket.bind(options)` with listenReusePort's rule. */
  port?: number | string;
  /** Host name or numeric address of the socket's family. Default: `0.0.0.0` for udp4, `::` for udp6. */
  address?: string | null;
  /** For a udp6 socket on an IPv6 address, receive IPv6 only (IPV6_V6ONLY). Default false: dual-stack on `::`. */
  ipv6Only?: boolean;
  /** 'auto' (default: the best this system can do, or REUSEPORT_MODE) or a mode to insist on ('round-robin' does not exist for UDP). */
  mode?: ModeChoice;
  /** Who may share the port, as for listenReusePort: by default this app; false turns the check off (unsafe). */
  group?: string | false;
}

/** bindReusePort's arguments after validation, with every default resolved. */
export interface BindRequest {
  port: number;
  address: string | undefined;
  ipv6Only: boolean;
  mode: ModeChoice;
  /** The resolved sharing group ("app:<path>" or "name:<name>"), or false for none. */
  group: string | false;
}

/** Turns `(port, options)` or `(options)` into a BindRequest; throws Node-style errors. */
export function normalizeBindArgs(portOrOptions: unknown, extra?: unknown): BindRequest {
  let options: BindReusePortOptions;
  let port: number;
  if (typeof portOrOptions === 'object' && portOrOptions !== null) {
    options = portOrOptions as BindReusePortOptions;
    if (options.port === undefined) throw invalidArgReason('options', 'must have the property "port"', options);
    port = validatePort(options.port, 'options.port');
  } else {
    port = validatePort(portOrOptions, 'port');
    if (extra !== undefined && (typeof extra !== 'object' || extra === null)) throw invalidArgType('options', 'of type object', extra);
    options = (extra ?? {}) as BindReusePortOptions;
  }
  const { address, ipv6Only, mode } = options;
  const group = normalizeGroup(options.group);
  if (address !== undefined && address !== null && typeof address !== 'string') {
    throw invalidArgType('options.address', 'of type string', address);
  }
  if (typeof address === 'string' && !isHostSyntax(address)) {
    throw invalidArgValue("property 'options.address'", 'a host name or an IP address', address);
  }
  if (ipv6Only !== undefined && typeof ipv6Only !== 'boolean') throw invalidArgType('options.ipv6Only', 'of type boolean', ipv6Only);
  if (mode !== undefined && !isChoice(mode)) throw invalidArgValue("property 'options.mode'", choiceList, mode);
  return {
    port,
    address: address ?? undefined,
    ipv6Only: ipv6Only ?? false,
    mode: mode ?? 'auto',
    group: group ?? defaultGroup(),
  };
}
