// Bad input never crashes and never leaks: each call fails with a code, and the fd count stays put.
import dgram from 'node:dgram';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bindReusePort, listenReusePort } from '../lib/index';
import { openFdCount } from './helpers/proc-net';

const listening = net.createServer();
const aborted = AbortSignal.abort();
// A plain UDP socket (no SO_REUSEPORT) holding a port, and a closed one.
const plainUdp = dgram.createSocket('udp4');
const closedUdp = dgram.createSocket('udp4');
closedUdp.close();
beforeAll(() => new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve)));
beforeAll(() => new Promise<void>((resolve) => plainUdp.bind(0, '127.0.0.1', resolve)));
afterAll(() => new Promise((resolve) => listening.close(resolve)));
afterAll(() => new Promise<void>((resolve) => plainUdp.close(resolve)));

type Call = () => Promise<unknown>;
const fresh = () => net.createServer();

const badCalls: [string, Call, string][] = [
  ['port -1', () => listenReusePort(fresh(), -1), 'ERR_SOCKET_BAD_PORT'],
  ['port 65536', () => listenReusePort(fresh(), 65536), 'ERR_SOCKET_BAD_PORT'],
  ['port 1.5', () => listenReusePort(fresh(), 1.5), 'ERR_SOCKET_BAD_PORT'],
  ['port NaN', () => listenReusePort(fresh(), Number.NaN), 'ERR_SOCKET_BAD_PORT'],
  ["port '80abc'", () => listenReusePort(fresh(), '80abc'), 'ERR_SOCKET_BAD_PORT'],
  ['port null', () => listenReusePort(fresh(), null as never), 'ERR_SOCKET_BAD_PORT'],
  ['port Infinity', () => listenReusePort(fresh(), Number.POSITIVE_INFINITY), 'ERR_SOCKET_BAD_PORT'],
  ['an empty options object (server.listen({}) throws)', () => listenReusePort(fresh(), {}), 'ERR_INVALID_ARG_VALUE'],
  ['an array (server.listen([]) throws)', () => listenReusePort(fresh(), [] as never), 'ERR_INVALID_ARG_VALUE'],
  ['options with a host and no port', () => listenReusePort(fresh(), { host: '127.0.0.1' }), 'ERR_INVALID_ARG_VALUE'],
  ['port in an options object, -1', () => listenReusePort(fresh(), { port: -1 }), 'ERR_SOCKET_BAD_PORT'],
  ["host ''", () => listenReusePort(fresh(), 0, { host: '' }), 'ERR_INVALID_ARG_VALUE'],
  ["host 'no.such.host.invalid'", () => listenReusePort(fresh(), 0, { host: 'no.such.host.invalid' }), 'ENOTFOUND'],
  ["host '999.1.1.1'", () => listenReusePort(fresh(), 0, { host: '999.1.1.1' }), 'ERR_INVALID_ARG_VALUE'],
  ["host '::zz'", () => listenReusePort(fresh(), 0, { host: '::zz' }), 'ERR_INVALID_ARG_VALUE'],
  ['host 42', () => listenReusePort(fresh(), 0, { host: 42 as never }), 'ERR_INVALID_ARG_TYPE'],
  ['host not on this machine', () => listenReusePort(fresh(), 0, { host: '192.0.2.7' }), 'EADDRNOTAVAIL'],
  ['backlog -1', () => listenReusePort(fresh(), 0, { backlog: -1 }), 'ERR_OUT_OF_RANGE'],
  ["backlog 'x'", () => listenReusePort(fresh(), 0, { backlog: 'x' as never }), 'ERR_INVALID_ARG_TYPE'],
  ['backlog 2^31', () => listenReusePort(fresh(), 0, { backlog: 2 ** 31 }), 'ERR_OUT_OF_RANGE'],
  ["ipv6Only 'yes'", () => listenReusePort(fresh(), 0, { ipv6Only: 'yes' as never }), 'ERR_INVALID_ARG_TYPE'],
  ['server null', () => listenReusePort(null as never, 0), 'ERR_INVALID_ARG_TYPE'],
  ['server {}', () => listenReusePort({} as never, 0), 'ERR_INVALID_ARG_TYPE'],
  ['server an http.Agent', () => listenReusePort(new (require('node:http').Agent)() as never, 0), 'ERR_INVALID_ARG_TYPE'],
  ['a server already listening', () => listenReusePort(listening, 0), 'ERR_SERVER_ALREADY_LISTEN'],
  ["mode 'fast'", () => listenReusePort(fresh(), 0, { mode: 'fast' as never }), 'ERR_INVALID_ARG_VALUE'],
  ['mode 42', () => listenReusePort(fresh(), 0, { mode: 42 as never }), 'ERR_INVALID_ARG_VALUE'],
  ["mode 'round-robin' outside a cluster", () => listenReusePort(fresh(), 0, { mode: 'round-robin' }), 'ERR_REUSEPORT_MODE_UNSUPPORTED'],
  ['an aborted signal', () => listenReusePort(fresh(), 0, { signal: aborted }), 'ABORT_ERR'],
  ['a signal that is not one', () => listenReusePort(fresh(), 0, { signal: {} as never }), 'ERR_INVALID_ARG_TYPE'],
  ['options a string', () => listenReusePort(fresh(), 0, 'x' as never), 'ERR_INVALID_ARG_TYPE'],
  ['the port held by a plain listener', () => listenReusePort(fresh(), (listening.address() as net.AddressInfo).port, { host: '127.0.0.1' }), 'EADDRINUSE'],
];

const udp4 = () => dgram.createSocket('udp4');
const udp6 = () => dgram.createSocket('udp6');

const badBinds: [string, Call, string][] = [
  ['a TCP server', () => bindReusePort(net.createServer() as never, 0), 'ERR_INVALID_ARG_TYPE'],
  ['a TCP socket', () => bindReusePort(new net.Socket() as never, 0), 'ERR_INVALID_ARG_TYPE'],
  ['socket null', () => bindReusePort(null as never, 0), 'ERR_INVALID_ARG_TYPE'],
  ['a socket already bound', () => bindReusePort(plainUdp, 0), 'ERR_SOCKET_ALREADY_BOUND'],
  ['a closed socket', () => bindReusePort(closedUdp, 0), 'ERR_SOCKET_DGRAM_NOT_RUNNING'],
  ['port -1', () => bindReusePort(udp4(), -1), 'ERR_SOCKET_BAD_PORT'],
  ['port 65536', () => bindReusePort(udp4(), 65536), 'ERR_SOCKET_BAD_PORT'],
  ["port '53x'", () => bindReusePort(udp4(), '53x'), 'ERR_SOCKET_BAD_PORT'],
  ['port null', () => bindReusePort(udp4(), null as never), 'ERR_SOCKET_BAD_PORT'],
  ['an options object without a port', () => bindReusePort(udp4(), { address: '127.0.0.1' }), 'ERR_INVALID_ARG_VALUE'],
  ["address ''", () => bindReusePort(udp4(), 0, { address: '' }), 'ERR_INVALID_ARG_VALUE'],
  ["address '999.1.1.1'", () => bindReusePort(udp4(), 0, { address: '999.1.1.1' }), 'ERR_INVALID_ARG_VALUE'],
  ['address 42', () => bindReusePort(udp4(), 0, { address: 42 as never }), 'ERR_INVALID_ARG_TYPE'],
  ["address 'no.such.host.invalid'", () => bindReusePort(udp4(), 0, { address: 'no.such.host.invalid' }), 'ENOTFOUND'],
  ["udp4 on '::1' (Node's bind says EINVAL)", () => bindReusePort(udp4(), 0, { address: '::1' }), 'EINVAL'],
  ["udp6 on '127.0.0.1'", () => bindReusePort(udp6(), 0, { address: '127.0.0.1' }), 'EINVAL'],
  ['an address not on this machine', () => bindReusePort(udp4(), 0, { address: '192.0.2.7' }), 'EADDRNOTAVAIL'],
  ["ipv6Only 'yes'", () => bindReusePort(udp6(), 0, { ipv6Only: 'yes' as never }), 'ERR_INVALID_ARG_TYPE'],
  ["mode 'fast'", () => bindReusePort(udp4(), 0, { mode: 'fast' as never }), 'ERR_INVALID_ARG_VALUE'],
  ["mode 'round-robin' (none for UDP)", () => bindReusePort(udp4(), 0, { mode: 'round-robin' }), 'ERR_REUSEPORT_MODE_UNSUPPORTED'],
  ["mode 'shared' outside a cluster", () => bindReusePort(udp4(), 0, { mode: 'shared' }), 'ERR_REUSEPORT_MODE_UNSUPPORTED'],
  ['group 42', () => bindReusePort(udp4(), 0, { group: 42 as never }), 'ERR_INVALID_ARG_TYPE'],
  ['options a string', () => bindReusePort(udp4(), 0, 'x' as never), 'ERR_INVALID_ARG_TYPE'],
  ['the port held by a plain UDP socket', () => bindReusePort(udp4(), plainUdp.address().port, { address: '127.0.0.1' }), 'EADDRINUSE'],
];

describe('bad input to bindReusePort', () => {
  it.each(badBinds)('%s rejects with %s and leaves the fd count unchanged', async (_name, call, code) => {
    const before = openFdCount();
    await expect(call()).rejects.toMatchObject({ code, message: expect.any(String) });
    expect(openFdCount()).toBe(before);
  });
});

describe('bad input', () => {
  it('the table has at least 25 calls', () => {
    expect(badCalls.length).toBeGreaterThanOrEqual(25);
  });

  it.each(badCalls)('%s rejects with %s and leaves the fd count unchanged', async (_name, call, code) => {
    const before = openFdCount();
    await expect(call()).rejects.toMatchObject({ code, message: expect.any(String) });
    expect(openFdCount()).toBe(before);
  });

  it('a server that was closed is not bad input: it listens again', async () => {
    const server = net.createServer();
    await listenReusePort(server, 0, { host: '127.0.0.1' });
    await new Promise((resolve) => server.close(resolve));
    const second = await listenReusePort(server, 0, { host: '127.0.0.1' });
    expect(second.address.port).toBeGreaterThan(0);
    await new Promise((resolve) => server.close(resolve));
  });
});
