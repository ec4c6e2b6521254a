// The drain of a supervised worker's server (lib/worker/drain.ts): what is in flight is answered with
// `Connection: close`, idle keep-alive connections are closed, silent ones are cut at the bound, and no
// per-request or per-connection listener or record is needed for it (the connections are found when it starts).
// The same over TLS (https, an Http2SecureServer's HTTP/1 connections), and a GOAWAY for every http2 session.
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { Client, Pool } from 'undici';
import { WebSocket, WebSocketServer } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { connectionsListOf, connectionsOf, drainServer, tlsHttpSocketsOf, trackConnections } from '../lib/worker/drain';
import { fixtures } from './helpers/processes';

const servers: http.Server[] = [];
const clients: net.Socket[] = [];
const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const socket of clients.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) server.closeAllConnections?.();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
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

// 20 s: what is waited for comes in milliseconds, but a slow machine (the sanitizer build, files side by side) may take seconds.
async function until(condition: () => boolean, ms = 20_000): Promise<void> {
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

const credentials = { key: fs.readFileSync(path.join(fixtures, 'tls', 'key.pem')), cert: fs.readFileSync(path.join(fixtures, 'tls', 'cert.pem')) };
// Generous: a busy machine may be slow, but a drain that waits out its timeout is far slower.
const TIMEOUT_MS = 20_000;

// An application whose `/slow` requests wait until the test answers them; anything else is answered at once.
function slowApp() {
  const waiting: (() => void)[] = [];
  let arrivals = 0;
  const handler = (request: { url?: string }, response: { end(body: string): unknown }) => {
    if (request.url !== '/slow') {
      response.end('ok');
      return;
    }
    arrivals += 1;
    waiting.push(() => response.end('slow'));
  };
  return {
    handler,
    arrived: (count: number) => until(() => arrivals >= count),
    answerAll: () => {
      for (const answer of waiting.splice(0)) answer();
    },
  };
}

async function listen(server: net.Server): Promise<number> {
  trackConnections(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    (server as Partial<http.Server>).closeAllConnections?.();
    if (server.listening) server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

interface Answer {
  status: number | undefined;
  headers: http.IncomingHttpHeaders;
  body: string;
  socket: net.Socket;
}

// One HTTP/1.1 GET over TLS (no ALPN: an Http2SecureServer with allowHTTP1 answers it in HTTP/1).
function get(port: number, requestPath: string, agent: https.Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = https.get({ host: '127.0.0.1', port, path: requestPath, agent, rejectUnauthorized: false }, (response) => {
      const socket = response.socket;
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => {
        body += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode, headers: response.headers, body, socket }));
      response.on('error', reject);
    });
    request.on('error', reject);
  });
}

// How a client's keep-alive socket ends: cleanly (the server's close_notify and FIN; Node 20's
// client emits 'end', 22 and later only 'close') or with an error (a reset: ECONNRESET).
function watchEnd(socket: net.Socket): { errors: string[]; closed: Promise<boolean> } {
  const errors: string[] = [];
  socket.on('error', (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message));
  return { errors, closed: new Promise((resolve) => socket.once('close', (hadError: boolean) => resolve(hadError))) };
}

// An http2 client session and what happened to it.
function h2connect(authority: string, options: http2.SecureClientSessionOptions = {}) {
  const session = http2.connect(authority, { rejectUnauthorized: false, ...options });
  cleanups.push(() => session.destroy());
  const goaways: number[] = [];
  session.on('goaway', (code: number) => goaways.push(code));
  session.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
  return { session, goaways, closed };
}

function h2get(session: http2.ClientHttp2Session, requestPath: string): Promise<{ status: number | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': requestPath });
    let status: number | undefined;
    let body = '';
    stream.setEncoding('utf8');
    stream.on('response', (headers) => {
      status = headers[':status'];
    });
    stream.on('data', (chunk) => {
      body += chunk;
    });
    stream.on('end', () => resolve({ status, body }));
    stream.on('error', reject);
  });
}

describe('drainServer over TLS', () => {
  it('https: requests in flight (https.Agent, undici) get connection: close, idle keep-alive connections end with close_notify, nothing is cut, well before the timeout', async () => {
    const app = slowApp();
    const server = https.createServer(credentials, app.handler);
    // The idle connections must still be open when the drain starts, however slowly the requests
    // arrive: by default the server says keep-alive timeout=5 and undici's client closes its idle
    // connection about 3 s in (the agent's at 4 s), which left 5 of the 6 to count.
    server.keepAliveTimeout = 60_000;
    const port = await listen(server);
    // Nothing per connection: https's own listeners only.
    expect(server.listenerCount('secureConnection')).toBe(1);
    const origin = `https://127.0.0.1:${port}`;
    const idleAgent = new https.Agent({ keepAlive: true });
    const busyAgent = new https.Agent({ keepAlive: true });
    const pool = new Pool(origin, { connections: 8, connect: { rejectUnauthorized: false } });
    const idleClient = new Client(origin, { connect: { rejectUnauthorized: false } });
    cleanups.push(
      () => idleAgent.destroy(),
      () => busyAgent.destroy(),
      () => pool.destroy().catch(() => undefined),
      () => idleClient.destroy().catch(() => undefined),
    );

    // Idle: one request each, then the connections wait in the agent and in the client.
    const idle = await get(port, '/', idleAgent);
    expect(idle.headers.connection).toBe('keep-alive');
    const idleEnd = watchEnd(idle.socket);
    expect(await (await idleClient.request({ path: '/', method: 'GET' })).body.text()).toBe('ok');
    const idleClientGone = new Promise<Error | undefined>((resolve) => idleClient.once('disconnect', (_origin, _targets, error) => resolve(error)));
    // In flight: two through the agent, two through the pool.
    const inFlight = [get(port, '/slow', busyAgent), get(port, '/slow', busyAgent)];
    const pooled = [pool.request({ path: '/slow', method: 'GET' }), pool.request({ path: '/slow', method: 'GET' })];
    await app.arrived(4);
    expect(tlsHttpSocketsOf(server).size).toBe(6);

    const started = performance.now();
    const drained = drainServer(server, TIMEOUT_MS);
    // The idle ones end on their own, while the requests are still in flight.
    expect(await idleEnd.closed).toBe(false);
    expect(idleEnd.errors).toEqual([]);
    const gone = await idleClientGone;
    expect((gone as NodeJS.ErrnoException | undefined)?.code).not.toBe('ECONNRESET');
    app.answerAll();
    for (const answer of await Promise.all(inFlight)) {
      expect(answer).toMatchObject({ status: 200, body: 'slow' });
      expect(answer.headers.connection).toBe('close');
    }
    for (const response of await Promise.all(pooled)) {
      expect(response.statusCode).toBe(200);
      expect(response.headers.connection).toBe('close');
      expect(await response.body.text()).toBe('slow');
    }
    expect(await drained).toBe(0);
    expect(performance.now() - started).toBeLessThan(TIMEOUT_MS / 2);
  });

  it('an Http2SecureServer with allowHTTP1: its HTTP/1 connections drain as https ones, its HTTP/2 session gets a GOAWAY, and no Connection header is set on HTTP/2', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    cleanups.push(() => process.off('warning', onWarning));
    const app = slowApp();
    const server = http2.createSecureServer({ ...credentials, allowHTTP1: true }, app.handler);
    const port = await listen(server);
    const idleAgent = new https.Agent({ keepAlive: true });
    const busyAgent = new https.Agent({ keepAlive: true });
    cleanups.push(
      () => idleAgent.destroy(),
      () => busyAgent.destroy(),
    );
    const idle = await get(port, '/', idleAgent);
    expect(idle.headers.connection).toBe('keep-alive');
    const idleEnd = watchEnd(idle.socket);
    const inFlight = get(port, '/slow', busyAgent);
    const h2 = h2connect(`https://127.0.0.1:${port}`);
    const h2InFlight = h2get(h2.session, '/slow');
    await app.arrived(2);

    const started = performance.now();
    const drained = drainServer(server, TIMEOUT_MS);
    expect(await idleEnd.closed).toBe(false);
    expect(idleEnd.errors).toEqual([]);
    await until(() => h2.goaways.length > 0);
    app.answerAll();
    const answer = await inFlight;
    expect(answer).toMatchObject({ status: 200, body: 'slow' });
    expect(answer.headers.connection).toBe('close');
    expect(await h2InFlight).toEqual({ status: 200, body: 'slow' });
    expect(new Set(h2.goaways)).toEqual(new Set([http2.constants.NGHTTP2_NO_ERROR]));
    await h2.closed;
    expect(await drained).toBe(0);
    expect(performance.now() - started).toBeLessThan(TIMEOUT_MS / 2);
    expect(warnings.filter((warning) => /connection/i.test(warning.message))).toEqual([]);
  });

  it('where Node keeps no list of HTTP connections, an https server remembers its TLS sockets as their handshakes end, and drains the same', async () => {
    const app = slowApp();
    const server = https.createServer(credentials, app.handler);
    // The idle connection must still be open when the drain starts (the default keep-alive timeout is 5 s).
    server.keepAliveTimeout = 60_000;
    // Before trackConnections' own look: Node's listener has set the list up, this one takes it away.
    server.on('listening', () => {
      const own = server as unknown as Record<symbol, unknown>;
      for (const symbol of Object.getOwnPropertySymbols(server)) {
        if (symbol.description === 'http.server.connectionsCheckingInterval') clearInterval(own[symbol] as NodeJS.Timeout);
        if (symbol.description === 'http.server.connections') delete own[symbol];
      }
    });
    const port = await listen(server);
    expect(connectionsListOf(server)).toBeUndefined();
    expect(server.listenerCount('secureConnection')).toBe(2);
    const idleAgent = new https.Agent({ keepAlive: true });
    const busyAgent = new https.Agent({ keepAlive: true });
    cleanups.push(
      () => idleAgent.destroy(),
      () => busyAgent.destroy(),
    );
    const idle = await get(port, '/', idleAgent);
    const idleEnd = watchEnd(idle.socket);
    const inFlight = get(port, '/slow', busyAgent);
    await app.arrived(1);
    expect(tlsHttpSocketsOf(server).size).toBe(2);
    const drained = drainServer(server, TIMEOUT_MS);
    expect(await idleEnd.closed).toBe(false);
    expect(idleEnd.errors).toEqual([]);
    app.answerAll();
    expect((await inFlight).headers.connection).toBe('close');
    expect(await drained).toBe(0);
    // The closed ones left.
    expect(tlsHttpSocketsOf(server).size).toBe(0);
  });

  it('cuts, at the bound, a TLS connection that never sent a byte', async () => {
    const server = https.createServer(credentials, (_req, res) => res.end('ok'));
    const port = await listen(server);
    const silent = await connect(port);
    await until(() => connectionsOf(server).length === 1);
    expect(await drainServer(server, 200)).toBe(1);
    await silent.closed;
  });
});

describe('drainServer for HTTP/2', () => {
  it('cleartext: every session gets a GOAWAY and its stream in flight finishes; a session handed in during the drain gets a GOAWAY too', async () => {
    const app = slowApp();
    const server = http2.createServer(app.handler);
    const port = await listen(server);
    // Connections a borrowed slot accepted, handed to the server as 'connection' (as the supervised worker does).
    const held: net.Socket[] = [];
    const handOver = net.createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => handOver.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => handOver.close());
    const first = h2connect(`http://127.0.0.1:${port}`);
    const second = h2connect(`http://127.0.0.1:${port}`);
    const inFlight = h2get(first.session, '/slow');
    await app.arrived(1);
    expect(await h2get(second.session, '/')).toEqual({ status: 200, body: 'ok' });
    const late = h2connect(`http://127.0.0.1:${(handOver.address() as net.AddressInfo).port}`);
    await until(() => held.length === 1);

    const started = performance.now();
    const drained = drainServer(server, TIMEOUT_MS);
    await until(() => first.goaways.length > 0 && second.goaways.length > 0);
    server.emit('connection', held[0]);
    await until(() => late.goaways.length > 0);
    await second.closed;
    app.answerAll();
    expect(await inFlight).toEqual({ status: 200, body: 'slow' });
    await first.closed;
    await late.closed;
    // NO_ERROR; Node sends a second one as a session that was closed ends.
    for (const client of [first, second, late]) expect(new Set(client.goaways)).toEqual(new Set([http2.constants.NGHTTP2_NO_ERROR]));
    expect(await drained).toBe(0);
    expect(performance.now() - started).toBeLessThan(TIMEOUT_MS / 2);
  });

  it('TLS: every session gets a GOAWAY and its stream in flight finishes; a session whose handshake ends during the drain gets a GOAWAY too', async () => {
    const app = slowApp();
    const server = http2.createSecureServer(credentials, app.handler);
    const port = await listen(server);
    const first = h2connect(`https://127.0.0.1:${port}`);
    const inFlight = h2get(first.session, '/slow');
    await app.arrived(1);
    // Accepted before the drain, its TLS handshake not begun.
    const raw = net.connect(port, '127.0.0.1');
    clients.push(raw);
    await until(() => connectionsOf(server).length === 2);

    const started = performance.now();
    const drained = drainServer(server, TIMEOUT_MS);
    await until(() => first.goaways.length > 0);
    const late = h2connect(`https://127.0.0.1:${port}`, {
      createConnection: () => tls.connect({ socket: raw, ALPNProtocols: ['h2'], rejectUnauthorized: false }),
    });
    await until(() => late.goaways.length > 0);
    await late.closed;
    app.answerAll();
    expect(await inFlight).toEqual({ status: 200, body: 'slow' });
    await first.closed;
    for (const client of [first, late]) expect(new Set(client.goaways)).toEqual(new Set([http2.constants.NGHTTP2_NO_ERROR]));
    expect(await drained).toBe(0);
    expect(performance.now() - started).toBeLessThan(TIMEOUT_MS / 2);
  });

  it('over TLS, ends a connection that never sent a byte after the first-request grace, well before the timeout', async () => {
    const server = http2.createSecureServer(credentials, () => undefined);
    const port = await listen(server);
    const silent = await connect(port);
    await until(() => connectionsOf(server).length === 1);
    const started = performance.now();
    expect(await drainServer(server, TIMEOUT_MS)).toBe(0);
    await silent.closed;
    expect(performance.now() - started).toBeLessThan(TIMEOUT_MS / 2);
  });

  it('at the bound, a session whose stream never ends is destroyed with a GOAWAY (CANCEL), its stream fails at the client, and it is counted', async () => {
    const app = slowApp();
    const server = http2.createServer(app.handler);
    const sessionErrors: string[] = [];
    server.on('sessionError', (error: Error) => sessionErrors.push(error.message));
    const port = await listen(server);
    const client = h2connect(`http://127.0.0.1:${port}`);
    const stream = h2get(client.session, '/slow').catch((error: Error) => error);
    await app.arrived(1);
    expect(await drainServer(server, 300)).toBe(1);
    await client.closed;
    expect(client.goaways).toEqual([http2.constants.NGHTTP2_NO_ERROR, http2.constants.NGHTTP2_CANCEL]);
    expect(await stream).toMatchObject({ code: 'ERR_HTTP2_SESSION_ERROR' });
    expect(sessionErrors).toEqual(["the drain's timeout (300 ms) cut this http2 session"]);
  });
});

// Upgraded connections (websockets) are not idle keep-alive connections: a drain leaves them to the
// app (which closes them on drainSignal()) and cuts what is still open at its bound, counting it.
describe('drainServer with upgraded connections', () => {
  async function websockets(secure: boolean, onDrain?: (socket: WebSocket) => void) {
    const server = secure ? https.createServer(credentials) : http.createServer();
    const wss = new WebSocketServer({ server });
    const open = new Set<WebSocket>();
    wss.on('connection', (socket) => {
      open.add(socket);
      socket.on('close', () => open.delete(socket));
    });
    const port = await listen(server);
    cleanups.push(
      () => wss.close(),
      () => server.close(),
    );
    const client = new WebSocket(`${secure ? 'wss' : 'ws'}://127.0.0.1:${port}/`, { rejectUnauthorized: false });
    const closed = new Promise<number>((resolve) => client.once('close', (code) => resolve(code)));
    client.on('error', () => undefined);
    await new Promise((resolve) => client.once('open', resolve));
    await until(() => open.size === 1);
    return { server, closed, drainSide: () => onDrain && [...open].forEach(onDrain) };
  }

  it.each([
    ['ws', false],
    ['wss', true],
  ])('%s: a silent websocket the app leaves open is not ended as idle; it is cut at the bound and counted (its client sees 1006)', async (_name, secure) => {
    const { server, closed } = await websockets(secure);
    // Well past IDLE_GRACE_MS: an idle keep-alive connection would have been ended long before.
    const drained = await drainServer(server, 1_500);
    expect(drained).toBe(1);
    expect(await closed).toBe(1006);
  });

  it('a websocket the app closes when the drain begins (1001) is not counted as cut', async () => {
    const { server, closed, drainSide } = await websockets(false, (socket) => socket.close(1001, 'going away'));
    const drained = drainServer(server, 5_000);
    drainSide();
    expect(await closed).toBe(1001);
    expect(await drained).toBe(0);
  });
});
