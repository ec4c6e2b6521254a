// Worker app for the long-lived-traffic scenarios (test/scenarios/streams.js), one per SCENARIO_APP:
//   'h2' / 'h2c':         HTTP/2 over TLS (test/fixtures/tls) / cleartext, node:http2's compatibility API;
//                         '/?ms=N' answers after N ms, so that some streams are in flight at a GOAWAY.
//   'ws-close':           websockets (ws), echoing; on drainSignal() every one is closed with 1001.
//   'ws-ignore':          the same app, but it ignores the drain signal (the drain cuts them at its timeout).
//   'sse':                '/events?n=N&every=M': N events M ms apart, then an 'end' event and the end of the
//                         response; with '&endOnDrain=1' the stream runs on until drainSignal(), which ends it
//                         with a 'bye' event (one that arrives during the drain ends at once). Event ids go on from a Last-Event-ID header (a resumed stream).
// It listens with listenReusePort, as any supervised app does, and prints one JSON line when the drain
// signal aborts: { app: 'drain', pid, at (epoch ms), held (websockets or SSE streams open then) }.
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const http2 = require('node:http2');
const path = require('node:path');
const { drainSignal, listenReusePort } = require('../..');

const app = process.env.SCENARIO_APP ?? 'sse';
const say = (event) => process.stdout.write(`${JSON.stringify({ pid: process.pid, ...event })}\n`);
const tlsDir = path.join(__dirname, '..', 'fixtures', 'tls');
const credentials = () => ({ key: fs.readFileSync(path.join(tlsDir, 'key.pem')), cert: fs.readFileSync(path.join(tlsDir, 'cert.pem')) });

let server;
// What the app holds open that a drain cannot end by itself (counted at the drain).
let held = () => 0;
// Listed first, so `held` counts what was open when the drain began (before the app closes anything).
drainSignal().addEventListener('abort', () => say({ app: 'drain', at: Date.now(), held: held() }));

if (app === 'h2' || app === 'h2c') {
  const handler = (request, response) => {
    const ms = Number(new URL(request.url, 'http://x').searchParams.get('ms') ?? 0);
    setTimeout(() => response.end(String(process.pid)), ms);
  };
  server = app === 'h2' ? http2.createSecureServer(credentials(), handler) : http2.createServer(handler);
  // A session cut at the drain's timeout says so here; nothing else may reach it.
  server.on('sessionError', () => undefined);
} else if (app === 'ws-close' || app === 'ws-ignore') {
  const { WebSocketServer } = require('ws');
  server = http.createServer((request, response) => response.end(String(process.pid)));
  const wss = new WebSocketServer({ server });
  const closing = app === 'ws-close';
  wss.on('connection', (socket) => {
    socket.on('error', () => undefined);
    // One whose upgrade arrived after the drain began: going away at once.
    if (closing && drainSignal().aborted) return socket.close(1001, 'server going away');
    socket.on('message', (data, binary) => socket.send(data, { binary }));
  });
  held = () => wss.clients.size;
  if (closing) {
    drainSignal().addEventListener('abort', () => {
      for (const client of wss.clients) client.close(1001, 'server going away');
    });
  }
} else if (app === 'sse') {
  const endOnDrain = new Set();
  const streams = new Set();
  server = http.createServer((request, response) => {
    const url = new URL(request.url, 'http://x');
    if (url.pathname !== '/events') return response.end(String(process.pid));
    const n = Number(url.searchParams.get('n') ?? 10);
    const every = Number(url.searchParams.get('every') ?? 200);
    const last = Number(request.headers['last-event-id'] ?? -1);
    let id = Number.isInteger(last) ? last + 1 : 0;
    let sent = 0;
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    streams.add(response);
    const onDrain = url.searchParams.get('endOnDrain') === '1';
    const finish = (tail) => {
      clearInterval(timer);
      streams.delete(response);
      endOnDrain.delete(finish);
      if (!response.writableEnded) response.end(tail);
    };
    const timer = setInterval(() => {
      response.write(`id: ${id}\ndata: ${process.pid}\n\n`);
      id += 1;
      sent += 1;
      if (!onDrain && sent >= n) finish('event: end\ndata: done\n\n');
    }, every);
    response.on('close', () => finish());
    if (!onDrain) return;
    // One that arrives after the drain began (a keep-alive connection reused for the reconnect): the
    // signal has fired already, so it ends at once; a drain gives it `Connection: close`.
    if (drainSignal().aborted) finish('event: bye\ndata: reconnect\n\n');
    else endOnDrain.add(finish);
  });
  held = () => streams.size;
  drainSignal().addEventListener('abort', () => {
    for (const finish of [...endOnDrain]) finish('event: bye\ndata: reconnect\n\n');
  });
} else {
  throw new Error(`unknown SCENARIO_APP ${app}`);
}

listenReusePort(server, Number(process.env.SCENARIO_PORT ?? 0), { host: '127.0.0.1' }).catch((error) => {
  console.error(error);
  process.exit(1);
});
