// The addon's contract: what openListener and socketInfo return, what notify delivers, the errors
// they throw, and that they never leak an fd.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import util from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type NativeListenSpec, type NativeSocket, loadBinding } from '../lib/binding';
import { canConnect } from './helpers/http';
import { startNotifyReceiver } from './helpers/notify-receiver';
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
    // An IPv6-only socket leaves the port's IPv4 side free: another process's IPv4 listener may hold
    // the same port number, and would answer on 127.0.0.1. Then take another port (those stay open
    // until afterEach, so the kernel picks a new one).
    let socket = open({ address: '::', port: 0, ipv6Only: true });
    const deadline = Date.now() + 5_000;
    for (let i = 0; i < 20 && Date.now() < deadline && binding.listeningSockets(socket.port).some((s) => s.family === 4); i++) {
      socket = open({ address: '::', port: 0, ipv6Only: true });
    }
    expect(binding.listeningSockets(socket.port).filter((s) => s.family === 4)).toEqual([]);
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
    [
      'a socket bound without listening',
      { address: '127.0.0.1', port: 0, listen: false },
      { family: 4, address: '127.0.0.1', listening: false, ipv6Only: false },
    ],
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

describe('notify', () => {
  // Every filesystem address lives in a fresh directory, and every abstract name has this test's
  // own prefix: a datagram (and the fds in it) can only reach a receiver these tests started.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-notify-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const nowhere = path.join(dir, 'nowhere.sock');
  let names = 0;
  const socketPath = () => path.join(dir, `n${++names}.sock`);
  const abstractName = () => `@reuseport-notify-test-${process.pid}-${Date.now().toString(36)}-${++names}`;

  async function receiver(address: string, count = 1) {
    const started = await startNotifyReceiver(address, { count });
    cleanups.push(() => started.stop());
    return started;
  }

  function openFile(): number {
    const fd = fs.openSync(__filename, 'r');
    cleanups.push(() => fs.closeSync(fd));
    return fd;
  }

  const inode = (fd: number) => String(fs.fstatSync(fd, { bigint: true }).ino);

  it('delivers the message with the fds (a listener from openListener, a file) as SCM_RIGHTS', async () => {
    const listener = open({ address: '127.0.0.1', port: 0 });
    const file = openFile();
    const target = await receiver(socketPath());
    binding.notify(target.address, 'FDSTORE=1\nFDNAME=web', [listener.fd, file]);
    const [datagram, ...rest] = await target.received();
    expect(rest).toEqual([]);
    expect(datagram).toMatchObject({ message: 'FDSTORE=1\nFDNAME=web', truncated: false });
    expect(datagram?.fds.map(({ inode, kind }) => ({ inode, kind }))).toEqual([
      { inode: inode(listener.fd), kind: 'socket' },
      { inode: inode(file), kind: 'file' },
    ]);
    // The sender keeps its own: the listener still accepts.
    expect(await canConnect(listener.port, '127.0.0.1')).toBe(true);
  });

  it('reaches an abstract address (@name), sent with its exact length', async () => {
    const target = await receiver(abstractName());
    binding.notify(target.address, 'READY=1\nMAINPID=123', []);
    expect(await target.received()).toEqual([{ message: 'READY=1\nMAINPID=123', fds: [], truncated: false }]);
  });

  it('reaches the longest addresses sun_path holds: a 107-byte path, an @ and a 107-byte name', async () => {
    const longPath = path.join(dir, 'p'.repeat(107 - dir.length - 1));
    const longName = `@${abstractName().slice(1)}-`.padEnd(108, 'a');
    expect([Buffer.byteLength(longPath), Buffer.byteLength(longName)]).toEqual([107, 108]);
    for (const address of [longPath, longName]) {
      const target = await receiver(address);
      binding.notify(address, 'STATUS=long', []);
      expect(await target.received()).toEqual([{ message: 'STATUS=long', fds: [], truncated: false }]);
    }
  });

  it('carries 253 fds (SCM_MAX_FD), each the file sent', async () => {
    const file = openFile();
    const target = await receiver(abstractName());
    binding.notify(target.address, 'FDSTORE=1\nFDNAME=many', new Array(253).fill(file));
    const [datagram] = await target.received();
    expect(datagram?.truncated).toBe(false);
    expect(datagram?.fds).toHaveLength(253);
    expect(new Set(datagram?.fds.map((received) => received.inode))).toEqual(new Set([inode(file)]));
  });

  it('never blocks: a receiver that does not read fills its queue, then EAGAIN', async () => {
    const address = socketPath();
    // A receiver that binds and never reads (python: Node cannot bind a unix datagram socket).
    const sink = spawn(
      'python3',
      [
        '-c',
        'import socket,sys,time\ns=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("bound", flush=True)\ntime.sleep(30)',
        address,
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    cleanups.push(() => {
      sink.kill('SIGKILL');
    });
    await new Promise<void>((resolve) => sink.stdout?.once('data', () => resolve()));
    let sent = 0;
    let error: NodeJS.ErrnoException | undefined;
    for (; sent < 100_000 && !error; sent++) {
      try {
        binding.notify(address, 'STATUS=waiting', []);
      } catch (caught) {
        error = caught as NodeJS.ErrnoException;
      }
    }
    expect(error).toMatchObject({ code: 'EAGAIN', syscall: 'sendmsg', address });
    expect(sent).toBeGreaterThan(1);
  });

  it('sends each message as its own datagram, in order', async () => {
    const target = await receiver(socketPath(), 3);
    for (const message of ['RELOADING=1', 'READY=1', 'STOPPING=1']) binding.notify(target.address, message, []);
    expect((await target.received()).map((datagram) => datagram.message)).toEqual(['RELOADING=1', 'READY=1', 'STOPPING=1']);
  });

  it.each<[string, string, () => Promise<{ address: string; fds?: number[]; message?: string }>]>([
    ['a path with nothing there', 'ENOENT', async () => ({ address: socketPath() })],
    ['a path in a directory that does not exist', 'ENOENT', async () => ({ address: path.join(dir, 'missing', 'n.sock') })],
    [
      'a socket file whose receiver has gone',
      'ECONNREFUSED',
      async () => {
        const gone = await receiver(socketPath());
        await gone.stop();
        return { address: gone.address };
      },
    ],
    ['an abstract name nobody bound', 'ECONNREFUSED', async () => ({ address: abstractName() })],
    [
      'a regular file',
      'ECONNREFUSED',
      async () => {
        const file = socketPath();
        fs.writeFileSync(file, '');
        return { address: file };
      },
    ],
    ['a stream socket (net.Server on a path)', 'EPROTOTYPE', async () => ({ address: (await plainServer(socketPath())).address() as string })],
    [
      // notify's own socket takes the lowest free number, this one: sent, it would stand in for the fd.
      'a just-closed fd in fds (the number the sending socket gets)',
      'EBADF',
      async () => {
        const { address } = await receiver(abstractName());
        const file = openFile();
        const closed = fs.openSync(__filename, 'r');
        fs.closeSync(closed);
        return { address, fds: [file, closed] };
      },
    ],
    ['an fd in fds that was never opened', 'EBADF', async () => ({ address: (await receiver(abstractName())).address, fds: [openFile(), 2 ** 20] })],
    ['a message longer than the send buffer', 'EMSGSIZE', async () => ({ address: (await receiver(abstractName())).address, message: 'x'.repeat(1 << 20) })],
  ])('fails for %s with %s from sendmsg, naming the address', async (_name, code, make) => {
    const { address, fds = [], message = 'READY=1' } = await make();
    const before = openFdCount();
    let thrown: unknown;
    try {
      binding.notify(address, message, fds);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ code, errno: -os.constants.errno[code as keyof typeof os.constants.errno], syscall: 'sendmsg', address });
    const { errno, message: wording } = thrown as { errno: number; message: string };
    expect(util.getSystemErrorName(errno)).toBe(code);
    expect(wording.startsWith(`sendmsg ${code}: `) && wording.endsWith(` ${address}`)).toBe(true);
    expect(openFdCount()).toBe(before);
  });

  it('words the error as Node does', () => {
    const address = socketPath();
    expect(() => binding.notify(address, 'READY=1', [])).toThrow(`sendmsg ENOENT: no such file or directory ${address}`);
  });

  const tooMany = new Array(254).fill(0);
  it.each<[string, string, string, unknown[]]>([
    ['no arguments', 'TypeError', 'ERR_INVALID_ARG_TYPE', []],
    ['a number for path', 'TypeError', 'ERR_INVALID_ARG_TYPE', [3, 'READY=1', []]],
    ['a Buffer for path', 'TypeError', 'ERR_INVALID_ARG_TYPE', [Buffer.from('/run/notify'), 'READY=1', []]],
    ['an empty path', 'RangeError', 'ERR_OUT_OF_RANGE', ['', 'READY=1', []]],
    ['a relative path', 'RangeError', 'ERR_OUT_OF_RANGE', ['run/notify', 'READY=1', []]],
    ['a path of one @', 'RangeError', 'ERR_OUT_OF_RANGE', ['@', 'READY=1', []]],
    ['a NUL in the path', 'RangeError', 'ERR_OUT_OF_RANGE', [`${nowhere}\0x`, 'READY=1', []]],
    ['a NUL in an abstract name', 'RangeError', 'ERR_OUT_OF_RANGE', ['@no\0tify', 'READY=1', []]],
    ['a 108-byte path (no room for its NUL)', 'RangeError', 'ERR_OUT_OF_RANGE', [`/${'p'.repeat(107)}`, 'READY=1', []]],
    ['an @ and a 108-byte name', 'RangeError', 'ERR_OUT_OF_RANGE', [`@${'a'.repeat(108)}`, 'READY=1', []]],
    ['a path of 108 bytes in 55 characters (bytes count)', 'RangeError', 'ERR_OUT_OF_RANGE', [`/${'é'.repeat(53)}p`, 'READY=1', []]],
    ['no message', 'TypeError', 'ERR_INVALID_ARG_TYPE', [nowhere]],
    ['a Buffer for message', 'TypeError', 'ERR_INVALID_ARG_TYPE', [nowhere, Buffer.from('READY=1'), []]],
    ['an empty message', 'RangeError', 'ERR_OUT_OF_RANGE', [nowhere, '', []]],
    ['a NUL in the message', 'RangeError', 'ERR_OUT_OF_RANGE', [nowhere, 'READY=1\0', []]],
    ['no fds', 'TypeError', 'ERR_INVALID_ARG_TYPE', [nowhere, 'READY=1']],
    ['an fd for fds', 'TypeError', 'ERR_INVALID_ARG_TYPE', [nowhere, 'READY=1', 3]],
    ['a string in fds', 'TypeError', 'ERR_INVALID_ARG_TYPE', [nowhere, 'READY=1', ['3']]],
    ['a negative fd', 'RangeError', 'ERR_OUT_OF_RANGE', [nowhere, 'READY=1', [-1]]],
    ['a fractional fd', 'RangeError', 'ERR_OUT_OF_RANGE', [nowhere, 'READY=1', [1.5]]],
    ['a NaN fd', 'RangeError', 'ERR_OUT_OF_RANGE', [nowhere, 'READY=1', [Number.NaN]]],
    ['an fd past INT_MAX', 'RangeError', 'ERR_OUT_OF_RANGE', [nowhere, 'READY=1', [2 ** 31]]],
    ['254 fds (over SCM_MAX_FD)', 'RangeError', 'ERR_OUT_OF_RANGE', [nowhere, 'READY=1', tooMany]],
  ])('rejects %s with %s %s, sending nothing', (_name, name, code, args) => {
    const before = openFdCount();
    const notify = binding.notify as (...args: unknown[]) => void;
    expect(() => notify(...args)).toThrow(expect.objectContaining({ name, code }));
    expect(openFdCount()).toBe(before);
  });

  it('lets an exception thrown while reading fds through', () => {
    const fds = [0];
    Object.defineProperty(fds, 0, {
      get() {
        throw new Error('getter');
      },
    });
    expect(() => binding.notify(abstractName(), 'READY=1', fds)).toThrow('getter');
  });

  it('leaves the fd count unchanged after 100 deliveries and 500 failures', async () => {
    const listener = open({ address: '127.0.0.1', port: 0 });
    const file = openFile();
    const target = await receiver(socketPath(), 100);
    const closed = fs.openSync(__filename, 'r');
    fs.closeSync(closed);
    const before = openFdCount();
    for (let i = 0; i < 100; i++) {
      // Never blocking: when the receiver's queue is full (net.unix.max_dgram_qlen), EAGAIN; let it
      // read (a receiver process on a loaded machine may take seconds to get to it).
      const deadline = Date.now() + 30_000;
      for (let tries = 0; ; tries++) {
        try {
          binding.notify(target.address, `FDSTORE=1\nFDNAME=n${i}`, [listener.fd, file]);
          break;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' || tries > 6000 || Date.now() > deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }
      expect(() => binding.notify(nowhere, 'READY=1', [file])).toThrow(expect.objectContaining({ code: 'ENOENT' }));
      expect(() => binding.notify(abstractName(), 'READY=1', [listener.fd])).toThrow(expect.objectContaining({ code: 'ECONNREFUSED' }));
      expect(() => binding.notify(target.address, 'READY=1', [file, closed])).toThrow(expect.objectContaining({ code: 'EBADF' }));
      expect(() => binding.notify(target.address, 'READY=1', [-1])).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
      expect(() => binding.notify(target.address, 'x'.repeat(1 << 20), [file])).toThrow(expect.objectContaining({ code: 'EMSGSIZE' }));
    }
    expect(openFdCount()).toBe(before);
    const received = await target.received();
    expect(received.map((datagram) => datagram.message)).toEqual(Array.from({ length: 100 }, (_, i) => `FDSTORE=1\nFDNAME=n${i}`));
    expect(received.every((datagram) => datagram.fds.map((fd) => fd.inode).join() === [inode(listener.fd), inode(file)].join())).toBe(true);
  });
});
