// listenReusePort in one process: addresses, server kinds, errors, aborts, and no fd leaks.
import { execFileSync } from 'node:child_process';
import dns from 'node:dns';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import type { NativeBinding } from '../lib/binding';
import { loadBinding } from '../lib/binding';
import { listenReusePort } from '../lib/index';
import { listenWith } from '../lib/listen/listen-reuseport';
import { canConnect, fetchOnce } from './helpers/http';
import { fixtures } from './helpers/processes';
import { openFdCount } from './helpers/proc-net';

const tlsOptions = {
  key: fs.readFileSync(path.join(fixtures, 'tls', 'key.pem')),
  cert: fs.readFileSync(path.join(fixtures, 'tls', 'cert.pem')),
};

const servers: net.Server[] = [];
function track<T extends net.Server>(server: T): T {
  servers.push(server);
  return server;
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()))));
});

function plainListen(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
}

const hello = (_request: http.IncomingMessage, response: http.ServerResponse) => response.end('hello');

describe('listenReusePort listens', () => {
  it('on port 0, reporting the real port, and emits listening', async () => {
    const server = track(http.createServer(hello));
    let listeningEvents = 0;
    server.on('listening', () => listeningEvents++);
    const info = await listenReusePort(server, 0, { host: '127.0.0.1' });
    expect(info.mode).toBe('reuseport');
    expect(info.backend).toBe('addon');
    expect(info.reasons.length).toBeGreaterThan(0);
    expect(info.address).toEqual(server.address());
    expect(info.address).toMatchObject({ address: '127.0.0.1', family: 'IPv4' });
    expect(info.address.port).toBeGreaterThan(0);
    expect(listeningEvents).toBe(1);
    expect(await fetchOnce(info.address.port)).toBe('hello');
  });

  it('from the options-object form', async () => {
    const server = track(net.createServer());
    const info = await listenReusePort(server, { port: 0, host: '127.0.0.1' });
    expect(info.address.port).toBeGreaterThan(0);
  });

  it('on IPv4 only for 127.0.0.1', async () => {
    const server = track(net.createServer((s) => s.end()));
    const { address } = await listenReusePort(server, 0, { host: '127.0.0.1' });
    expect(await canConnect(address.port, '127.0.0.1')).toBe(true);
    expect(await canConnect(address.port, '::1')).toBe(false);
  });

  it('on IPv6 only with ipv6Only, leaving IPv4 of the same port free', async () => {
    const server = track(net.createServer((s) => s.end()));
    const { address } = await listenReusePort(server, 0, { host: '::', ipv6Only: true });
    expect(address).toMatchObject({ address: '::', family: 'IPv6' });
    expect(await canConnect(address.port, '::1')).toBe(true);
    expect(await canConnect(address.port, '127.0.0.1')).toBe(false);
    await plainListen(track(net.createServer()), address.port, '0.0.0.0');
  });

  it('dual-stack on "::" by default, for IPv4 and IPv6 clients', async () => {
    const server = track(http.createServer(hello));
    const { address } = await listenReusePort(server, 0);
    expect(address).toMatchObject({ address: '::', family: 'IPv6' });
    expect(await fetchOnce(address.port, '127.0.0.1')).toBe('hello');
    expect(await fetchOnce(address.port, '::1')).toBe('hello');
  });

  it('on the address a host name resolves to, as server.listen does', async () => {
    const server = track(http.createServer(hello));
    const { address } = await listenReusePort(server, 0, { host: 'localhost' });
    const expected = await dns.promises.lookup('localhost');
    expect(address.address).toBe(expected.address);
    expect(await fetchOnce(address.port, expected.address)).toBe('hello');
  });

  it('with the backlog asked for (ss shows it as the listener Send-Q)', async () => {
    const server = track(net.createServer());
    const { address } = await listenReusePort(server, 0, { host: '127.0.0.1', backlog: 37 });
    const line = execFileSync('ss', ['-Hltn', `sport = :${address.port}`], { encoding: 'utf8' }).trim();
    const [, , sendQ] = line.split(/\s+/);
    expect(sendQ).toBe('37');
  });

  it('for https', async () => {
    const server = track(https.createServer(tlsOptions, hello));
    const { address } = await listenReusePort(server, 0, { host: '127.0.0.1' });
    const body = await new Promise<string>((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port: address.port, ca: tlsOptions.cert, servername: 'localhost', agent: false }, (res) => {
          res.setEncoding('utf8');
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve(text));
        })
        .on('error', reject);
    });
    expect(body).toBe('hello');
  });

  it.each([
    ['plain http2', () => http2.createServer(), 'http'],
    ['secure http2', () => http2.createSecureServer(tlsOptions), 'https'],
  ] as const)('for %s', async (_name, create, scheme) => {
    const server = track(create());
    server.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      stream.end('h2');
    });
    const { address } = await listenReusePort(server, 0, { host: '127.0.0.1' });
    const client = http2.connect(`${scheme}://localhost:${address.port}`, { ca: tlsOptions.cert, host: '127.0.0.1' });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const request = client.request({ ':path': '/' });
        let text = '';
        request.setEncoding('utf8');
        request.on('data', (c) => (text += c));
        request.on('end', () => resolve(text));
        request.on('error', reject);
        request.end();
      });
      expect(body).toBe('h2');
    } finally {
      client.close();
    }
  });

  it('for tls', async () => {
    const server = track(tls.createServer(tlsOptions, (socket) => socket.end('tls')));
    const { address } = await listenReusePort(server, 0, { host: '127.0.0.1' });
    const text = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ port: address.port, host: '127.0.0.1', ca: tlsOptions.cert, servername: 'localhost' });
      let data = '';
      socket.setEncoding('utf8');
      socket.on('data', (c) => (data += c));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    expect(text).toBe('tls');
  });

  it('beside another process-local listener on the same port', async () => {
    const first = track(net.createServer());
    const { address } = await listenReusePort(first, 0, { host: '127.0.0.1' });
    const second = track(net.createServer());
    const info = await listenReusePort(second, address.port, { host: '127.0.0.1' });
    expect(info.address.port).toBe(address.port);
  });

  it('until server.close(), which frees the port for a plain listen', async () => {
    const server = net.createServer();
    const { address } = await listenReusePort(server, 0, { host: '127.0.0.1' });
    await new Promise((resolve) => server.close(resolve));
    const plain = track(net.createServer());
    await plainListen(plain, address.port, '127.0.0.1');
  });

  it('inside a worker thread', async () => {
    const worker = new Worker(path.join(fixtures, 'worker-thread.js'));
    try {
      const message = await new Promise<{ port?: number; error?: string }>((resolve) => worker.once('message', resolve));
      expect(message.error).toBeUndefined();
      const text = await new Promise<string>((resolve, reject) => {
        const socket = net.connect({ port: message.port!, host: '127.0.0.1' });
        let data = '';
        socket.setEncoding('utf8');
        socket.on('data', (c) => (data += c));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });
      expect(text).toBe('thread');
      worker.postMessage('stop');
    } finally {
      await worker.terminate();
    }
  });
});

describe('listenReusePort rejects', () => {
  it('EADDRINUSE on a port held by a plain listener, saying so, and the server stays reusable', async () => {
    const plain = track(net.createServer());
    await plainListen(plain, 0, '127.0.0.1');
    const { port } = plain.address() as net.AddressInfo;
    const server = track(net.createServer());
    const failure = listenReusePort(server, port, { host: '127.0.0.1' });
    await expect(failure).rejects.toMatchObject({
      code: 'EADDRINUSE',
      errno: -os.constants.errno.EADDRINUSE,
      syscall: 'bind',
      address: '127.0.0.1',
      port,
    });
    await expect(failure).rejects.toThrow(/without SO_REUSEPORT/);
    expect(server.listening).toBe(false);
    const info = await listenReusePort(server, 0, { host: '127.0.0.1' });
    expect(info.address.port).not.toBe(port);
  });

  it('EADDRNOTAVAIL for an address this host does not have', async () => {
    await expect(listenReusePort(track(net.createServer()), 0, { host: '192.0.2.1' })).rejects.toMatchObject({
      code: 'EADDRNOTAVAIL',
      errno: -os.constants.errno.EADDRNOTAVAIL,
      syscall: 'bind',
      address: '192.0.2.1',
      port: 0,
    });
  });

  it('a host name that does not resolve, with the host and port on the error', async () => {
    const notFound = Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.test'), {
      code: 'ENOTFOUND',
      errno: -3008,
      syscall: 'getaddrinfo',
      hostname: 'nowhere.test',
    });
    const lookup = async () => {
      throw notFound;
    };
    await expect(listenWith({ lookup }, track(net.createServer()), 8123, { host: 'nowhere.test' })).rejects.toMatchObject({
      code: 'ENOTFOUND',
      errno: -3008,
      syscall: 'getaddrinfo',
      address: 'nowhere.test',
      port: 8123,
    });
  });

  it.each<[string, unknown, unknown, string]>([
    ['a bad port', 65536, undefined, 'ERR_SOCKET_BAD_PORT'],
    ['a negative port', -5, undefined, 'ERR_SOCKET_BAD_PORT'],
    ['a non-string host', 0, { host: 1 }, 'ERR_INVALID_ARG_TYPE'],
    ['a bad backlog', 0, { backlog: -2 }, 'ERR_OUT_OF_RANGE'],
  ])('%s with %s', async (_name, port, options, code) => {
    await expect(listenReusePort(track(net.createServer()), port as number, options as object)).rejects.toMatchObject({ code });
  });

  it('something that is not a server', async () => {
    await expect(listenReusePort({} as net.Server, 0)).rejects.toMatchObject({
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_TYPE',
    });
  });

  it('a server already listening', async () => {
    const server = track(net.createServer());
    await plainListen(server, 0, '127.0.0.1');
    await expect(listenReusePort(server, 0)).rejects.toMatchObject({ code: 'ERR_SERVER_ALREADY_LISTEN' });
  });

  it('a second call while the first is still under way', async () => {
    const server = track(net.createServer());
    const first = listenReusePort(server, 0, { host: 'localhost' });
    await expect(listenReusePort(server, 0)).rejects.toMatchObject({ code: 'ERR_SERVER_ALREADY_LISTEN' });
    await first;
  });

  it('with an AbortError when the signal is already aborted, without listening', async () => {
    const server = track(net.createServer());
    const controller = new AbortController();
    controller.abort();
    await expect(listenReusePort(server, 0, { signal: controller.signal })).rejects.toMatchObject({
      name: 'AbortError',
      code: 'ABORT_ERR',
    });
    expect(server.listening).toBe(false);
  });

  it('and closes the server when the signal aborts after listening', async () => {
    const server = track(net.createServer());
    const controller = new AbortController();
    await listenReusePort(server, 0, { host: '127.0.0.1', signal: controller.signal });
    const closed = new Promise((resolve) => server.once('close', resolve));
    controller.abort();
    await closed;
    expect(server.listening).toBe(false);
  });
});

describe('listenReusePort without IPv6', () => {
  // A fake addon for a host with no IPv6 stack: "::" fails as socket(AF_INET6) would.
  function ipv4OnlyBinding(calls: string[]): NativeBinding {
    const real = loadBinding().binding!;
    return {
      ...real,
      probeReusePort: () => 0,
      openListener(spec) {
        calls.push(spec.address);
        if (spec.address.includes(':')) {
          throw Object.assign(new Error('socket EAFNOSUPPORT'), {
            code: 'EAFNOSUPPORT',
            errno: -os.constants.errno.EAFNOSUPPORT,
            syscall: 'socket',
          });
        }
        return real.openListener(spec);
      },
    };
  }

  it('falls back from "::" to "0.0.0.0" for the default host', async () => {
    const calls: string[] = [];
    const info = await listenWith({ binding: ipv4OnlyBinding(calls) }, track(net.createServer()), 0);
    expect(calls).toEqual(['::', '0.0.0.0']);
    expect(info.address).toMatchObject({ address: '0.0.0.0', family: 'IPv4' });
  });

  it('does not fall back for an explicit IPv6 host', async () => {
    const calls: string[] = [];
    await expect(listenWith({ binding: ipv4OnlyBinding(calls) }, track(net.createServer()), 0, { host: '::' })).rejects.toMatchObject({ code: 'EAFNOSUPPORT' });
    expect(calls).toEqual(['::']);
  });

  it('does not fall back when "::" is in use', async () => {
    const holder = track(net.createServer());
    await plainListen(holder, 0, '::');
    const { port } = holder.address() as net.AddressInfo;
    await expect(listenReusePort(track(net.createServer()), port)).rejects.toMatchObject({
      code: 'EADDRINUSE',
      address: '::',
    });
  });
});

describe('listenReusePort never leaks an fd', () => {
  it('over 1000 failed listens', async () => {
    const plain = track(net.createServer());
    await plainListen(plain, 0, '127.0.0.1');
    const { port } = plain.address() as net.AddressInfo;
    const server = track(net.createServer());
    const before = openFdCount();
    for (let i = 0; i < 1000; i++) {
      await expect(listenReusePort(server, port, { host: '127.0.0.1' })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    }
    expect(openFdCount()).toBe(before);
  });
});
