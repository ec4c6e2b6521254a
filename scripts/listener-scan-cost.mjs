// What finding the listeners of a port costs, as the TIME_WAIT rows of a busy server pile up:
// /proc/net/tcp{,6} (every socket of the network namespace) against the addon's sock_diag query
// (listeners only). `node scripts/listener-scan-cost.mjs [--connections 20000]`, best inside
// `unshare --net` so that only its own sockets count. Prints one JSON line per step.
import { createRequire } from 'node:module';
import http from 'node:http';
import net from 'node:net';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const { loadBinding } = require('../dist/binding.js');
const { listeningSocketsFromProc } = require('../dist/ports/port-holders.js');

const { values } = parseArgs({ options: { connections: { type: 'string', default: '20000' } } });
const total = Number(values.connections);
if (!Number.isInteger(total) || total < 0) throw new Error('--connections must be an integer >= 0');
const { binding, error } = loadBinding();
if (!binding) throw error;

// The server closes first (Connection: close), so each connection leaves a TIME_WAIT row here.
const server = http.createServer((_request, response) => response.end('ok'));
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();

function oneRequest() {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    socket.on('data', () => undefined);
    socket.on('close', resolve);
    socket.on('error', resolve);
  });
}

function medianMs(fn, runs = 15) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const started = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  times.sort((a, b) => a - b);
  return Math.round(times[Math.floor(runs / 2)] * 1000) / 1000;
}

function rows() {
  const fs = require('node:fs');
  return ['/proc/net/tcp', '/proc/net/tcp6'].reduce((sum, file) => sum + fs.readFileSync(file, 'utf8').split('\n').length - 2, 0);
}

let made = 0;
for (const target of [0, Math.round(total / 4), Math.round(total / 2), total]) {
  // 64 at a time, bounded by `total`.
  while (made < target) {
    const batch = Math.min(64, target - made);
    await Promise.all(Array.from({ length: batch }, oneRequest));
    made += batch;
  }
  const procMs = medianMs(() => listeningSocketsFromProc(port));
  const diagMs = medianMs(() => binding.listeningSockets(port));
  const canonical = (list) =>
    JSON.stringify(list.map(({ family, address, port: p, uid, inode, queued }) => ({ family, address, port: p, uid, inode, queued })));
  const same = canonical(listeningSocketsFromProc(port)) === canonical(binding.listeningSockets(port));
  process.stdout.write(`${JSON.stringify({ connectionsMade: made, tcpRows: rows(), procMs, sockDiagMs: diagMs, sameAnswer: same })}\n`);
}
server.close();
process.exit(0);
