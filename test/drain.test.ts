// The drain of a supervised worker's server (lib/worker/drain.ts): what is in flight is answered with
// `Connection: close`, idle keep-alive connections are closed, silent ones are cut at the bound, and no
// per-request or per-connection listener is needed for it.
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { drainServer, trackConnections } from '../lib/worker/drain';

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

  it('forgets closed connections without a listener on each, and counts each accepted one', async () => {
    let accepted = 0;
    const { server, port } = await serve(
      (_req, res) => res.end('ok'),
      () => {
        accepted += 1;
      },
    );
    for (let i = 0; i < 150; i++) {
      const client = await connect(port);
      client.socket.write('GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n');
      await client.closed;
    }
    expect(accepted).toBe(150);
    await connect(port);
    await until(() => accepted === 151);
    // The one left open is idle and silent: cut at the bound; the 150 closed ones are not counted.
    expect(await drainServer(server, 100)).toBe(1);
  });
});
