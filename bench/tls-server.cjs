// TLS session-resumption scenario's server (bench/tls.mjs): startCluster() with `--workers` https workers on one port,
// TLS session-ticket keys shared by the supervisor (`--ticket-keys true`, the default of startCluster) or left to each
// worker (`false`: every worker has its own random key). Each worker answers `GET /` with a 3-byte body.
//
// The supervisor prints one JSON line on stdout once every worker listens: { type: 'ready', pid, pids, ports, plan },
// and one per unexpected worker exit ({ type: 'exit', ... }): the bench then knows its CPU figures miss a process.
// It is stopped by pid (SIGTERM: startCluster's graceful shutdown, then SIGKILL from the bench). It also stops by
// itself when its stdin closes (the bench is gone) or after `--max-ms`, so it never outlives a bench that crashed.
'use strict';
const cluster = require('node:cluster');
const fs = require('node:fs');
const https = require('node:https');
const path = require('node:path');
const { parseArgs } = require('node:util');

const FIXTURES = path.join(__dirname, '..', 'test', 'fixtures', 'tls');

function options() {
  const { values } = parseArgs({
    options: {
      workers: { type: 'string', default: '4' },
      'ticket-keys': { type: 'string', default: 'true' },
      host: { type: 'string', default: '127.0.0.1' },
      key: { type: 'string', default: path.join(FIXTURES, 'key.pem') },
      cert: { type: 'string', default: path.join(FIXTURES, 'cert.pem') },
      'max-ms': { type: 'string', default: '600000' },
    },
  });
  if (!['true', 'false'].includes(values['ticket-keys'])) throw new Error('--ticket-keys must be true or false');
  return {
    workers: Number(values.workers),
    ticketKeys: values['ticket-keys'] === 'true',
    host: values.host,
    key: values.key,
    cert: values.cert,
    maxMs: Number(values['max-ms']),
  };
}

function runWorker(opts) {
  const { listenReusePort } = require('..');
  const server = https.createServer({ key: fs.readFileSync(opts.key), cert: fs.readFileSync(opts.cert) }, (_request, response) => {
    response.writeHead(200, { 'content-type': 'text/plain', 'content-length': 3 });
    response.end('ok\n');
  });
  // Port 0: the supervisor picks one port for every slot. The ticket key (or none) comes from the supervisor.
  listenReusePort(server, 0, { host: opts.host }).catch((error) => {
    process.stderr.write(`tls-server worker ${process.pid}: ${error.stack ?? error.message}\n`);
    process.exit(1);
  });
}

async function runPrimary(opts) {
  const { startCluster } = require('..');
  const line = (object) => process.stdout.write(`${JSON.stringify(object)}\n`);
  const supervisor = await startCluster({
    exec: __filename,
    args: process.argv.slice(2),
    workers: opts.workers,
    ticketKeys: opts.ticketKeys,
    drainTimeoutMs: 1_000,
    readyTimeoutMs: 20_000,
    shutdownDelayMs: 0,
  });
  supervisor.on('exit', (event) => {
    if (!event.expected) line({ type: 'exit', ...event });
  });
  line({
    type: 'ready',
    pid: process.pid,
    pids: supervisor.pids,
    ports: supervisor.ports,
    plan: { mode: supervisor.plan.mode, backend: supervisor.plan.backend },
    ticketKeys: opts.ticketKeys,
  });

  let stopping = false;
  const stop = (code) => {
    if (stopping) return;
    stopping = true;
    // Bounded: the bench kills every pid still there after a few seconds anyway.
    setTimeout(() => process.exit(code), 3_000).unref();
    supervisor.close().then(
      () => process.exit(code),
      () => process.exit(code),
    );
  };
  process.stdin.on('end', () => stop(0));
  process.stdin.on('close', () => stop(0));
  process.stdin.resume();
  setTimeout(() => stop(1), opts.maxMs).unref();
}

const opts = options();
if (cluster.isWorker) runWorker(opts);
else {
  runPrimary(opts).catch((error) => {
    process.stdout.write(`${JSON.stringify({ type: 'failed', error: { message: error.message, code: error.code } })}\n`);
    process.exit(1);
  });
}
