// The addon's contract: what openListener and socketInfo return, the errors they throw, and that
// they never leak an fd.
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import util from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { type NativeListenSpec, type NativeSocket, loadBinding } from '../lib/binding';
import { canConnect } from './helpers/http';
import { openFdCount } from './helpers/proc-net';

const loaded = loadBinding();
if (!loaded.binding) throw loaded.error;
const binding = loaded.binding;

const opened: NativeSocket[] = [];
function open(spec: Parameters<typeof binding.openListener>[0]): NativeSocket {
  const socket = binding.openListener(spec);
  opened.push(socket);
  return socket;
}
afterEach(() => {
  for (const socket of opened.splice(0)) fs.closeSync(socket.fd);
});


describe('openListener', () => {
  it.each([
    ['IPv4', '127.0.0.1', 4],
    ['IPv6', '::1', 6],
    ['dual-stack', '::', 6],
    ['IPv4 any', '0.0.0.0', 4],
  ])('opens an %s listener and reports the real port', async (_name, address, family) => {
    const socket = open({ address, port: 0 });
    expect(socket).toMatchObject({ family, address });
    expect(socket.fd).toBeGreaterThan(2);
    expect(socket.port).toBeGreaterThan(0);
    expect(await canConnect(socket.port, family === 4 ? '127.0.0.1' : '::1')).toBe(true);
  });

  it('lets a second socket bind the same port (SO_REUSEPORT)', () => {
    const first = open({ address: '127.0.0.1', port: 0 });
    const second = open({ address: '127.0.0.1', port: first.port });
    expect(second.port).toBe(first.port);
  });

  it('makes the socket close-on-exec and non-blocking', () => {
    const socket = open({ address: '127.0.0.1', port: 0 });
    const flags = fs.readFileSync(`/proc/self/fdinfo/${socket.fd}`, 'utf8');
    const octal = /flags:\s+(\d+)/.exec(flags)?.[1] ?? '0';
    const value = Number.parseInt(octal, 8);
    expect(value & 0o2000000).not.toBe(0); // O_CLOEXEC
    expect(value & 0o4000).not.toBe(0); // O_NONBLOCK
  });

  it('with ipv6Only accepts IPv6 but not IPv4', async () => {
    const socket = open({ address: '::', port: 0, ipv6Only: true });
    expect(await canConnect(socket.port, '::1')).toBe(true);
    expect(await canConnect(socket.port, '127.0.0.1')).toBe(false);
  });

  it('with listen: false binds without listening', async () => {
    const socket = open({ address: '127.0.0.1', port: 0, listen: false });
    expect(socket.port).toBeGreaterThan(0);
    expect(await canConnect(socket.port, '127.0.0.1')).toBe(false);
  });
});

describe('openListener errors', () => {
  it('EADDRINUSE against a plain listener carries code, errno, syscall, address and port', async () => {
    const plain = net.createServer();
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    const { port } = plain.address() as net.AddressInfo;
    try {
      expect(() => binding.openListener({ address: '127.0.0.1', port })).toThrow(
        expect.objectContaining({
          code: 'EADDRINUSE',
          errno: -os.constants.errno.EADDRINUSE,
          syscall: 'bind',
          address: '127.0.0.1',
          port,
        }),
      );
    } finally {
      plain.close();
    }
  });

  it.each([
    ['EADDRINUSE', 'bind EADDRINUSE: address already in use'],
    ['EADDRNOTAVAIL', 'bind EADDRNOTAVAIL: cannot assign requested address'],
  ])('names %s and words it as Node does', async (code, wording) => {
    const plain = net.createServer();
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    const { port } = plain.address() as net.AddressInfo;
    const address = code === 'EADDRINUSE' ? '127.0.0.1' : '192.0.2.1';
    try {
      binding.openListener({ address, port });
      expect.unreachable();
    } catch (error) {
      const { errno, message } = error as { errno: number; message: string };
      expect(util.getSystemErrorName(errno)).toBe(code);
      expect(message).toBe(`${wording} ${address}:${port}`);
    } finally {
      plain.close();
    }
  });

  it('EADDRNOTAVAIL for an address no interface has', () => {
    expect(() => binding.openListener({ address: '192.0.2.1', port: 0 })).toThrow(
      expect.objectContaining({ code: 'EADDRNOTAVAIL', syscall: 'bind', address: '192.0.2.1', port: 0 }),
    );
  });

  it('EINVAL from getaddrinfo for a string that is not a numeric address', () => {
    expect(() => binding.openListener({ address: 'localhost', port: 0 })).toThrow(
      expect.objectContaining({ code: 'EINVAL', syscall: 'getaddrinfo', address: 'localhost' }),
    );
  });

  it.each<[string, unknown, string, string]>([
    ['no options', undefined, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['a number for options', 5, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['a missing address', { port: 0 }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['an empty address', { address: '', port: 0 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['a NUL in the address', { address: '127.0.0.1\0', port: 0 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['a string port', { address: '127.0.0.1', port: '80' }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['a negative port', { address: '127.0.0.1', port: -1 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['a huge port', { address: '127.0.0.1', port: 2 ** 40 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['a fractional port', { address: '127.0.0.1', port: 1.5 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['a NaN port', { address: '127.0.0.1', port: Number.NaN }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['a string ipv6Only', { address: '::', port: 0, ipv6Only: 'yes' }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['a negative backlog', { address: '::', port: 0, backlog: -1 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
  ])('rejects %s with %s %s', (_name, spec, name, code) => {
    const before = openFdCount();
    expect(() => binding.openListener(spec as never)).toThrow(expect.objectContaining({ name, code }));
    expect(openFdCount()).toBe(before);
  });

  it('leaves the fd count unchanged after 1000 failed opens', () => {
    const holder = open({ address: '127.0.0.1', port: 0, listen: false });
    const before = openFdCount();
    for (let i = 0; i < 1000; i++) {
      expect(() => binding.openListener({ address: '192.0.2.1', port: holder.port })).toThrow();
    }
    expect(openFdCount()).toBe(before);
  });
});

describe('probeReusePort', () => {
  it('says this Linux kernel accepts SO_REUSEPORT on TCP', () => {
    expect(binding.probeReusePort()).toBe(0);
  });
});

// What socketInfo's tests opened besides openListener's sockets, closed after each test.
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function plainServer(listenOn: string | number, host?: string): Promise<net.Server> {
  const server = net.createServer((connection) => connection.destroy());
  await new Promise<void>((resolve) => server.listen(listenOn as number, host, resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return server;
}

function handleFd(owner: net.Server | net.Socket): number {
  return (owner as unknown as { _handle: { fd: number } })._handle.fd;
}

// dgram's `_handle` getter is deprecated (DEP0112); its handle lives under the 'state symbol'.
function udpFd(socket: dgram.Socket): number {
  const state = Object.getOwnPropertySymbols(socket).find((symbol) => symbol.description === 'state symbol');
  return (socket as unknown as Record<symbol, { handle: { fd: number } }>)[state as symbol].handle.fd;
}

describe('socketInfo', () => {
  // Linux sets IPV6_V6ONLY itself when a socket binds a specific IPv6 address (inet6_bind): only
  // the wildcard and IPv4-mapped addresses keep it off, so ::1 reads ipv6Only whatever was asked.
  it.each<[string, NativeListenSpec, { family: 4 | 6; address: string; listening: boolean; ipv6Only: boolean }]>([
    ['an IPv4 listener', { address: '127.0.0.1', port: 0 }, { family: 4, address: '127.0.0.1', listening: true, ipv6Only: false }],
    ['an IPv6 listener', { address: '::1', port: 0 }, { family: 6, address: '::1', listening: true, ipv6Only: true }],
    ['an IPv6-only listener', { address: '::1', port: 0, ipv6Only: true }, { family: 6, address: '::1', listening: true, ipv6Only: true }],
    ['an IPv4-mapped IPv6 listener', { address: '::ffff:127.0.0.1', port: 0 }, { family: 6, address: '::ffff:127.0.0.1', listening: true, ipv6Only: false }],
    ['a socket bound without listening', { address: '127.0.0.1', port: 0, listen: false }, { family: 4, address: '127.0.0.1', listening: false, ipv6Only: false }],
  ])('describes %s from openListener, with its port and SO_REUSEPORT', (_name, spec, expected) => {
    const socket = open(spec);
    expect(socket.port).toBeGreaterThan(0);
    expect(binding.socketInfo(socket.fd)).toEqual({ ...expected, port: socket.port, reusePort: true });
  });

  it('reports the port of a second socket opened on a given port', () => {
    const first = open({ address: '127.0.0.1', port: 0 });
    const second = open({ address: '127.0.0.1', port: first.port });
    expect(binding.socketInfo(second.fd)).toMatchObject({ port: first.port, listening: true, reusePort: true });
  });

  it.each<[string, () => Promise<{ fd: number; port: number }>, { family: 4 | 6; address: string; listening: boolean }]>([
    [
      "a plain net.Server's listener",
      async () => {
        const server = await plainServer(0, '127.0.0.1');
        return { fd: handleFd(server), port: (server.address() as net.AddressInfo).port };
      },
      { family: 4, address: '127.0.0.1', listening: true },
    ],
    [
      'a connected client socket',
      async () => {
        const server = await plainServer(0, '::1');
        const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: '::1' });
        cleanups.push(() => void client.destroy());
        await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject));
        return { fd: handleFd(client), port: client.localPort as number };
      },
      { family: 6, address: '::1', listening: false },
    ],
  ])('describes %s: no SO_REUSEPORT', async (_name, make, expected) => {
    const { fd, port } = await make();
    expect(binding.socketInfo(fd)).toEqual({ ...expected, port, reusePort: false, ipv6Only: false });
  });

  it('changes nothing: afterwards a listener still accepts and a bound socket still does not listen', async () => {
    const listener = open({ address: '127.0.0.1', port: 0 });
    const bound = open({ address: '127.0.0.1', port: 0, listen: false });
    const state = () =>
      [listener, bound].map((socket) => ({
        info: binding.socketInfo(socket.fd),
        flags: /flags:\s+(\d+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${socket.fd}`, 'utf8'))?.[1],
      }));
    const before = state();
    for (let i = 0; i < 100; i++) state();
    expect(state()).toEqual(before);
    expect(await canConnect(listener.port, '127.0.0.1')).toBe(true);
    expect(await canConnect(bound.port, '127.0.0.1')).toBe(false);
  });

  it.each<[string, () => Promise<number>, string, string]>([
    [
      'a UDP socket',
      async () => {
        const socket = dgram.createSocket('udp4');
        cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
        await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
        return udpFd(socket);
      },
      'EPROTOTYPE',
      'getsockopt',
    ],
    [
      'a unix socket',
      async () => handleFd(await plainServer(path.join(os.tmpdir(), `reuseport-info-${process.pid}-${Date.now()}.sock`))),
      'EPROTOTYPE',
      'getsockname',
    ],
    [
      'a file',
      async () => {
        const fd = fs.openSync(__filename, 'r');
        cleanups.push(() => fs.closeSync(fd));
        return fd;
      },
      'ENOTSOCK',
      'getsockopt',
    ],
    [
      'a closed fd',
      async () => {
        const fd = fs.openSync(__filename, 'r');
        fs.closeSync(fd);
        return fd;
      },
      'EBADF',
      'getsockopt',
    ],
  ])('refuses %s with %s from %s, naming the fd', async (_name, make, code, syscall) => {
    const fd = await make();
    const before = openFdCount();
    expect(() => binding.socketInfo(fd)).toThrow(
      expect.objectContaining({ code, errno: -os.constants.errno[code as keyof typeof os.constants.errno], syscall, fd }),
    );
    expect(openFdCount()).toBe(before);
  });

  it.each<[string, unknown, string, string]>([
    ['no fd', undefined, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['a string fd', '3', 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['a negative fd', -1, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['a fractional fd', 1.5, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['a NaN fd', Number.NaN, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['an fd past INT_MAX', 2 ** 31, 'RangeError', 'ERR_OUT_OF_RANGE'],
  ])('rejects %s with %s %s', (_name, fd, name, code) => {
    expect(() => binding.socketInfo(fd as number)).toThrow(expect.objectContaining({ name, code }));
  });
});
