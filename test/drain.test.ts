// The drain of a supervised worker's server (lib/worker/drain.ts): what is in flight is answered with
// `Connection: close`, idle keep-alive connections are closed, silent ones are cut at the bound, and no
// per-request or per-connection listener or record is needed for it (the connections are found when it starts).
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectionsOf, drainServer, trackConnections } from '../lib/worker/drain';

const servers: http.Server[] = [];
const clients: net.Socket[] = [];

afterEach(() => {
  for (const socket of clients.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) server.closeAllConnections?.();
});

async function serve(handler: http.RequestListener, onConnection?: (socket: net.Socket) => void): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(handler);
  servers.push(server);
  trackConnections(server, onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port };
}

// A raw client: what the server sends back, and whether the server closed the connection.
function connect(port: number): Promise<{ socket: net.Socket; received: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    clients.push(socket);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      text += chunk;
    });
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.once('error', () => undefined);
    socket.once('connect', () => resolve({ socket, received: () => text, closed }));
    socket.once('error', reject);
  });
}

async function until(condition: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const request = 'GET / HTTP/1.1\r\nHost: test\r\n\r\n';

describe('drainServer', () => {
  it('answers a request in flight with Connection: close, then the connection closes', async () => {
    let answer: (() => void) | undefined;
    const { server, port } = await serve((_req, res) => {
      answer = () => res.end('late');
    });
    const client = await connect(port);
    client.socket.write(request);
    await until(() => answer !== undefined);
    const drained = drainServer(server, 5_000);
    answer?.();
    await client.closed;
    expect(client.received()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(client.received()).toMatch(/\r\nConnection: close\r\n/i);
    expect(await drained).toBe(0);
  });

  it('closes an idle keep-alive connection and answers a request that comes meanwhile with Connection: close', async () => {
    const { server, port } = await serve((_req, res) => res.end('ok'));
    const idle = await connect(port);
    idle.socket.write(request);
    await until(() => idle.received().includes('ok'));
    expect(idle.received()).toMatch(/\r\nConnection: keep-alive\r\n/i);
    const busy = await connect(port);
    busy.socket.write(request);
    await until(() => busy.received().includes('ok'));
    const drained = drainServer(server, 5_000);
    busy.socket.write(request);
    await busy.closed;
    await idle.closed;
    expect(busy.received().split('HTTP/1.1 200').length - 1).toBe(2);
    expect(busy.received()).toMatch(/\r\nConnection: close\r\n/i);
    expect(await drained).toBe(0);
  });

  it('cuts, at the bound, a connection that never sent a request, and says how many it cut', async () => {
    let accepted = 0;
    const { server, port } = await serve(
      (_req, res) => res.end('ok'),
      () => {
        accepted += 1;
      },
    );
    const silent = await connect(port);
    await until(() => accepted === 1);
    expect(await drainServer(server, 200)).toBe(1);
    await silent.closed;
  });

  it('finds the open connections when it starts: none is remembered per connection, closed ones are not counted', async () => {
    let accepted = 0;
    const { server, port } = await serve(
      (_req, res) => res.end('ok'),
      () => {
        accepted += 1;
      },
    );
    // http's own listener and the caller's bookkeeping; nothing else is added per connection.
    expect(server.listenerCount('connection')).toBe(2);
    for (let i = 0; i < 150; i++) {
      const client = await connect(port);
      client.socket.write('GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n');
      await client.closed;
    }
    expect(accepted).toBe(150);
    await connect(port);
    await until(() => accepted === 151);
    const [open] = connectionsOf(server);
    expect(open?.listenerCount('close')).toBe(new net.Socket().listenerCount('close') + 1);
    // The one left open is idle and silent: cut at the bound; the 150 closed ones are not counted.
    expect(await drainServer(server, 100)).toBe(1);
  });

  it('where Node has no handle list, remembers connections as they come and forgets them as they close', async () => {
    const host = process as NodeJS.Process & { _getActiveHandles?: unknown };
    const list = host._getActiveHandles;
    host._getActiveHandles = undefined;
    try {
      const { server, port } = await serve((_req, res) => res.end('ok'));
      for (let i = 0; i < 20; i++) {
        const client = await connect(port);
        client.socket.write('GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n');
        await client.closed;
      }
      const idle = await connect(port);
      idle.socket.write(request);
      await until(() => idle.received().includes('ok'));
      expect(connectionsOf(server)).toHaveLength(1);
      const drained = drainServer(server, 5_000);
      await idle.closed;
      expect(await drained).toBe(0);
    } finally {
      host._getActiveHandles = list;
    }
  });
});

describe('connectionsOf', () => {
  it('keeps the open sockets the server counts, and nothing else the handle list holds', () => {
    const server = new net.Server();
    const other = new net.Server();
    const mine = Object.assign(new net.Socket(), { _server: server });
    const theirs = Object.assign(new net.Socket(), { _server: other });
    const closed = Object.assign(new net.Socket(), { _server: server });
    closed.destroy();
    const timer = setTimeout(() => undefined, 0);
    clearTimeout(timer);
    expect(connectionsOf(server, () => [timer, theirs, closed, mine, null])).toEqual([mine]);
    expect(connectionsOf(server, () => [])).toEqual([]);
  });
});
