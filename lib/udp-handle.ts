// Node's own SO_REUSEPORT for dgram (Node >= 22.12) on a socket the caller already made: libuv's UDP
// handle, bound with UV_UDP_REUSEPORT, which `socket.bind(handle)` adopts.
//
// Node turns reusePort on only in dgram.createSocket({ reusePort: true }), before the socket exists;
// bindReusePort gets the socket made. `socket.bind(handle)` (what node:cluster uses to hand a worker
// the primary's socket) takes a bound UDP handle as it is, in a worker too. Node has no public
// constructor for that handle, hence `process.binding('udp_wrap')`, tested on every Node version.
import { systemError, uvErrno } from './errors';

/** libuv's UDP handle as Node exposes it internally; only what we use. */
export interface UdpHandle {
  bind(address: string, port: number, flags: number): number;
  bind6(address: string, port: number, flags: number): number;
  close(callback?: () => void): void;
  /** The socket's fd (-1 before it is bound). */
  readonly fd: number;
  recvStart(): number;
}

interface UdpWrap {
  UDP: new () => UdpHandle;
  constants: { UV_UDP_IPV6ONLY: number; UV_UDP_REUSEPORT?: number };
}

/** Node's internal udp_wrap binding (UDP handle class and its constants). */
export function udpWrap(): UdpWrap {
  const binding = (process as unknown as { binding(name: string): unknown }).binding;
  return binding('udp_wrap') as UdpWrap;
}

/**
 * A UDP handle bound with SO_REUSEPORT (and IPV6_V6ONLY when asked) to a numeric address; the
 * handle owns its socket, and is closed here when the bind fails. Throws ENOTSUP where this Node
 * has no UV_UDP_REUSEPORT.
 */
export function udpHandleBound(family: 4 | 6, address: string, port: number, ipv6Only: boolean): UdpHandle {
  const { UDP, constants } = udpWrap();
  if (constants.UV_UDP_REUSEPORT === undefined) throw systemError(uvErrno('ENOTSUP'), 'bind', address, port);
  const handle = new UDP();
  const flags = constants.UV_UDP_REUSEPORT | (ipv6Only ? constants.UV_UDP_IPV6ONLY : 0);
  const err = family === 4 ? handle.bind(address, port, flags) : handle.bind6(address, port, flags);
  if (err !== 0) {
    handle.close();
    throw systemError(err, 'bind', address, port);
  }
  return handle;
}
