// The one use of Node internals: wrapping an fd in libuv's TCP handle so a cluster worker can listen on it.
//
// In a cluster worker, `server.listen({ fd })` is forwarded to the primary (Node ignores `exclusive`
// for fds), so the worker would not accept on its own socket. `server.listen(tcpHandle)` is taken as
// exclusive and listens right in the worker. Node has no public constructor for that handle, hence
// `process.binding('tcp_wrap')`, tested on every Node version the package supports.
import { systemError } from './errors';

/** libuv's TCP handle as Node exposes it internally; only what we use. */
export interface TcpHandle {
  open(fd: number): number;
  close(callback?: () => void): void;
}

interface TcpWrap {
  TCP: new (type: number) => TcpHandle;
  constants: { SERVER: number; UV_TCP_REUSEPORT?: number };
}

/** Node's internal tcp_wrap binding (TCP handle class and its constants). */
export function tcpWrap(): TcpWrap {
  const binding = (process as unknown as { binding(name: string): unknown }).binding;
  return binding('tcp_wrap') as TcpWrap;
}

/** Wraps a listening (or bound) TCP socket fd in a server TCP handle, which then owns the fd. */
export function tcpHandleFromFd(fd: number, address: string, port: number): TcpHandle {
  const { TCP, constants } = tcpWrap();
  const handle = new TCP(constants.SERVER);
  const err = handle.open(fd);
  if (err !== 0) {
    // open() failed before taking the fd: the caller still owns it and closes it.
    handle.close();
    throw systemError(err, 'open', address, port);
  }
  return handle;
}
