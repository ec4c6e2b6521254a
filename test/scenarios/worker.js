// Scenario worker: serves its pid; '/slow?ms=N' answers after N ms. Supervised or not, it calls
// listenReusePort as any app would; unsupervised it also obeys 'stop' (close, plain or with closeListener).
// SCENARIO_TLS=1: an https server (test/fixtures/tls).
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const path = require('node:path');
const { closeListener, listenReusePort } = require('../..');

const handler = (request, response) => {
  const url = new URL(request.url, 'http://x');
  const ms = Number(url.searchParams.get('ms') ?? 0);
  if (url.pathname === '/slow') setTimeout(() => response.end(String(process.pid)), ms);
  else response.end(String(process.pid));
};
const tlsDir = path.join(__dirname, '..', 'fixtures', 'tls');
const server =
  process.env.SCENARIO_TLS === '1'
    ? https.createServer({ key: fs.readFileSync(path.join(tlsDir, 'key.pem')), cert: fs.readFileSync(path.join(tlsDir, 'cert.pem')) }, handler)
    : http.createServer(handler);
// Connections accepted and not yet closed: what a kill -9 of this worker would cut.
let open = 0;
server.on('connection', (socket) => {
  open += 1;
  socket.once('close', () => {
    open -= 1;
  });
});
const port = Number(process.env.SCENARIO_PORT ?? 0);
listenReusePort(server, port, { host: process.env.SCENARIO_HOST ?? '127.0.0.1' }).then(
  (info) => process.send?.({ type: 'ready', port: info.address.port, mode: info.mode }),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
process.on('message', async (message) => {
  if (message?.type === 'die') {
    // kill -9 from inside, so that what this worker holds at its death is known exactly: written
    // synchronously, then SIGKILL (no handler runs, nothing is closed gracefully).
    require('node:fs').writeFileSync(message.file, String(open));
    process.kill(process.pid, 'SIGKILL');
    return;
  }
  if (message?.type === 'block') {
    // A long synchronous task: the event loop (and so accept) stops for `ms`.
    const until = Date.now() + message.ms;
    while (Date.now() < until);
    return;
  }
  if (message?.type !== 'stop') return;
  if (message.helper) await closeListener(server);
  else server.close();
  // Exit once the connections in flight are answered (bounded).
  const deadline = Date.now() + 5_000;
  const poll = () =>
    server.getConnections((error, count) => {
      if (error || count === 0 || Date.now() > deadline) process.exit(0);
      else setTimeout(poll, 20);
    });
  poll();
});
