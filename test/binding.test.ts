// The addon's contract: what openListener returns, the errors it throws, and that it never leaks an fd.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import util from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { type NativeSocket, loadBinding } from '../lib/binding';
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
