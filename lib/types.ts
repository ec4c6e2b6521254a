// Public result types of listenReusePort.
import type { AddressInfo } from 'node:net';

/** How the port is shared: kernel balancing, cluster round-robin, cluster shared handle, or alone. */
export type ListenMode = 'reuseport' | 'round-robin' | 'shared' | 'exclusive';

/** Who made the listening socket: this package's addon, Node itself, or the cluster primary. */
export type ListenBackend = 'addon' | 'node' | 'cluster';

/** What listenReusePort did and why. */
export interface ListenResult {
  mode: ListenMode;
  backend: ListenBackend;
  /** `server.address()` once listening (the real port when 0 was asked). */
  address: AddressInfo;
  /** Sentences a person can read: why this mode, how the socket was made. */
  reasons: string[];
}

/** How a UDP port is shared: kernel balancing, the cluster primary's one socket, or alone. */
export type DatagramMode = 'reuseport' | 'shared' | 'exclusive';

/** What bindReusePort did and why. */
export interface BindResult {
  mode: DatagramMode;
  backend: ListenBackend;
  /** `socket.address()` once bound (the real port when 0 was asked). */
  address: AddressInfo;
  /** Sentences a person can read: why this mode, how the socket was made. */
  reasons: string[];
}
