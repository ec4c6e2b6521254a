// One way to bind a UDP socket per plan: the addon's SO_REUSEPORT socket, Node's own reusePort (a UDP
// handle bound with UV_UDP_REUSEPORT), the cluster primary's shared socket, or a plain exclusive bind.
// Each resolves once the socket is bound ('listening').
import dgram from 'node:dgram';
import dns from 'node:dns';
import fs from 'node:fs';
import net from 'node:net';
import type { NativeBinding, NativeSocket } from '../binding';
import { type SystemError, systemError, uvErrno } from '../errors';
import { explainTaken } from '../ports/holder-advice';
import { udpHandleBound } from '../udp-handle';
import { registerSocket } from '../ports/ownership';
import { guardPort } from './guard-port';
import { whenListening } from './adopt';

/** Where to bind: one numeric address of the socket's family. */
export interface DatagramTarget {
  family: 4 | 6;
  address: string;
  port: number;
  ipv6Only: boolean;
}

/** dns.lookup for one family, injectable for tests. */
export type DatagramLookup = (hostname: string, family: 4 | 6) => Promise<{ address: string }>;

const defaultLookup: DatagramLookup = (hostname, family) => dns.promises.lookup(hostname, { family });

/**
 * The address to bind, as socket.bind() finds it: '0.0.0.0' (udp4) or '::' (udp6) by default, a name
 * by dns.lookup in the socket's family; an address of the other family is EINVAL, as Node's bind says.
 */
export async function resolveDatagramTarget(
  family: 4 | 6,
  address: string | undefined,
  port: number,
  ipv6Only: boolean,
  lookup: DatagramLookup = defaultLookup,
): Promise<DatagramTarget> {
  if (address === undefined) return { family, address: family === 4 ? '0.0.0.0' : '::', port, ipv6Only: family === 6 && ipv6Only };
  const literal = net.isIP(address);
  if (literal !== 0) {
    if (literal !== family) throw systemError(uvErrno('EINVAL'), 'bind', address, port);
    return { family, address, port, ipv6Only: family === 6 && ipv6Only };
  }
  try {
    if (/\.invalid\.?$/i.test(address) || address.toLowerCase() === 'invalid') {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${address}`), { errno: -3008, code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname: address });
    }
    const found = await lookup(address, family);
    return { family, address: found.address, port, ipv6Only: family === 6 && ipv6Only };
  } catch (error) {
    Object.assign(error as SystemError, { address, port });
    throw error;
  }
}

// Checks the sharing group on the bound socket; on a foreign holder closes it and throws.
function guardBound(socket: dgram.Socket, group: string | false, bound: { fd: number; address: string; port: number }): void {
  try {
    socket.once('close', guardPort(group, bound, 'udp', 'bindReusePort'));
  } catch (error) {
    socket.close();
    throw error;
  }
}

/**
 * reuseport through the addon: it opens the UDP socket, which is registered to the sharing group
 * before it is bound (a bound UDP socket is visible to the group checks of processes binding beside
 * it at once), binds it, the dgram socket adopts the fd (`bind({ fd, exclusive: true })`: exclusive,
 * so a cluster worker keeps it rather than asking the primary), SO_REUSEADDR that libuv sets on
 * adoption is cleared again, and the port's other UDP sockets are checked.
 */
export async function bindWithAddon(binding: NativeBinding, socket: dgram.Socket, target: DatagramTarget, group: string | false): Promise<NativeSocket> {
  let opened: NativeSocket;
  try {
    opened = binding.openDatagram({ address: target.address, port: target.port, ipv6Only: target.ipv6Only, bind: false });
  } catch (error) {
    throw explainTaken(error as Error, 'udp');
  }
  let unregister = () => undefined as void;
  let bound: NativeSocket;
  try {
    if (group !== false) unregister = registerSocket(opened.fd, group);
    try {
      bound = binding.bindDatagram(opened.fd, target.address, target.port);
    } catch (error) {
      throw explainTaken(error as Error, 'udp');
    }
    await whenListening(socket, () => socket.bind({ fd: opened.fd, exclusive: true }));
  } catch (error) {
    // bind({ fd }) throws before libuv takes the fd (a bound or closed socket, a failed open).
    unregister();
    fs.closeSync(opened.fd);
    throw error;
  }
  try {
    // libuv's uv_udp_open sets SO_REUSEADDR, with which a Linux UDP socket of any user could bind beside ours.
    binding.clearDatagramReuseAddr(bound.fd);
  } catch (error) {
    unregister();
    socket.close();
    throw error;
  }
  guardBound(socket, group, bound);
  return bound;
}

/**
 * reuseport through Node (>= 22.12): a UDP handle bound with UV_UDP_REUSEPORT, adopted by
 * `socket.bind(handle)`. libuv binds as it opens, so the group check can only follow the bind: a
 * sibling binding at the same instant may see this socket before it is registered (the addon's path
 * registers first).
 */
export async function bindWithNode(socket: dgram.Socket, target: DatagramTarget, group: string | false): Promise<void> {
  let handle: ReturnType<typeof udpHandleBound>;
  try {
    handle = udpHandleBound(target.family, target.address, target.port, target.ipv6Only);
  } catch (error) {
    throw explainTaken(error as Error, 'udp');
  }
  try {
    await whenListening(socket, () => socket.bind(handle as unknown as dgram.BindOptions));
  } catch (error) {
    handle.close();
    throw error;
  }
  const { address, port } = socket.address();
  guardBound(socket, group, { fd: handle.fd, address, port });
}

/** A plain bind: through the cluster primary's shared socket (exclusive false), or alone. */
export async function bindPlain(socket: dgram.Socket, target: DatagramTarget, exclusive: boolean, explain: (error: Error) => Error): Promise<void> {
  try {
    await whenListening(socket, () => socket.bind({ port: target.port, address: target.address, exclusive }));
  } catch (error) {
    throw explain(error as Error);
  }
}
