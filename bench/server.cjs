// Benchmark server for one configuration: the primary (or the single process) and its hello-world workers, driven over IPC by bench/servers.mjs.
'use strict';
const { fail } = require('./ipc.cjs');
const cluster = require('node:cluster');
const http = require('node:http');
const { parseArgs } = require('node:util');

const MODES = ['single', 'cluster-rr', 'cluster-shared', 'reuseport-addon', 'reuseport-supervised', 'reuseport-node'];
const BODY = 'Hello, world!\n';

/** What the running Node can do; asked of the server binary itself, since --node may differ from the bench's. */
function capabilities() {
  let nodeReusePort = false;
  try {
    // Probe, never parse versions: Node 20 accepts `reusePort: true` and silently ignores it.
    // process.binding warns once (DEP0111); the warning is harmless and goes to stderr.
    nodeReusePort = process.binding('tcp_wrap').constants.UV_TCP_REUSEPORT !== undefined;
  } catch {
    nodeReusePort = false;
  }
  return { node: process.version, execPath: process.execPath, nodeReusePort };
}

// ---- worker side: serve, count, report ----------------------------------------------------

function startWorker({ mode, port, host }) {
  let requests = 0;
  let connections = 0;
  let cpuBase = process.cpuUsage();
  const server = http.createServer((req, res) => {
    requests++;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length });
    res.end(BODY);
  });
  // Counted server side so the bench can check that the "close" workload really opens one connection per request.
  server.on('connection', () => connections++);
  // Let a long run of keep-alive clients finish cleanly at the end instead of hanging on close.
  server.keepAliveTimeout = 5000;

  const snapshot = () => {
    const cpu = process.cpuUsage(cpuBase);
    return { pid: process.pid, requests, connections, cpuMicros: cpu.user + cpu.system, cpuUserMicros: cpu.user, cpuSystemMicros: cpu.system };
  };
  const reset = () => {
    requests = 0;
    connections = 0;
    cpuBase = process.cpuUsage();
  };

  const listen = async () => {
    if (mode === 'reuseport-addon' || mode === 'reuseport-supervised') {
      // The same call in both: a worker startCluster forked is recognised, and borrows its slot's socket.
      const { listenReusePort } = require('..');
      return listenReusePort(server, port, { host });
    }
    if (mode === 'reuseport-node') {
      if (!capabilities().nodeReusePort) throw new Error(`${process.version} has no reusePort for TCP; it would silently share the primary's socket`);
      await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port, host, reusePort: true }, resolve);
      });
      return { mode: 'reuseport', backend: 'node', address: server.address() };
    }
    // single, cluster-rr, cluster-shared: plain listen; in a cluster worker the primary owns the socket.
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    return { mode, backend: 'node', address: server.address() };
  };

  return { listen, snapshot, reset, server };
}

// ---- single process: the process is both the "primary" and its only worker -------------------

function runSingle(opts) {
  const w = startWorker(opts);
  w.listen().then(
    (info) => process.send({ type: 'ready', pid: process.pid, workers: [{ pid: process.pid, info }] }),
    (error) => fail(error),
  );
  process.on('message', (msg) => {
    if (msg.type === 'reset') {
      w.reset();
      process.send({ type: 'reset-done' });
    } else if (msg.type === 'report') {
      const s = w.snapshot();
      process.send({ type: 'report', primary: { pid: process.pid, cpuMicros: 0 }, workers: [s] });
    } else if (msg.type === 'stop') {
      w.server.close();
      process.exit(0);
    }
  });
}

// ---- cluster worker ----------------------------------------------------------------------------

function runClusterWorker(opts) {
  const w = startWorker(opts);
  w.listen().then(
    // Workers on their own SO_REUSEPORT socket never trigger the primary's 'listening' event,
    // so every mode reports readiness with its own message.
    (info) => process.send({ type: 'worker-ready', info }),
    (error) => process.send({ type: 'worker-failed', error: { message: error.message, code: error.code } }),
  );
  process.on('message', (msg) => {
    if (msg.type === 'reset') {
      w.reset();
      process.send({ type: 'worker-reset-done' });
    } else if (msg.type === 'report') {
      process.send({ type: 'worker-report', report: w.snapshot() });
    }
  });
}

// ---- cluster primary -------------------------------------------------------------------------

function runPrimary(opts) {
  const supervised = opts.mode === 'reuseport-supervised';
  // Must be set before the first fork; SCHED_NONE lets every worker accept on the primary's socket.
  if (!supervised) cluster.schedulingPolicy = opts.mode === 'cluster-rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;
  cluster.setupPrimary({ exec: __filename, args: process.argv.slice(2), silent: false });

  const workers = [];
  const ready = new Map();
  let cpuBase = process.cpuUsage();
  let pending = null; // { kind, replies, done }
  let stopping = false;

  const collect = (kind, worker, payload) => {
    if (!pending || pending.kind !== kind) return;
    pending.replies.set(worker.id, payload);
    if (pending.replies.size === workers.length) {
      const p = pending;
      pending = null;
      p.done(workers.map((wk) => p.replies.get(wk.id)));
    }
  };
  const broadcast = (kind, message) =>
    new Promise((resolve) => {
      pending = { kind, replies: new Map(), done: resolve };
      for (const wk of workers) wk.send(message);
    });

  let supervisor = null;
  const adopt = (wk) => {
    workers.push(wk);
    // Told at once, so the bench can kill this pid even if startup fails half way.
    process.send({ type: 'worker-pid', pid: wk.process.pid });
    wk.on('message', (msg) => {
      if (msg.type === 'worker-ready') {
        ready.set(wk.id, { pid: wk.process.pid, info: msg.info });
        if (ready.size === opts.workers) {
          process.send({ type: 'ready', pid: process.pid, workers: workers.map((x) => ready.get(x.id)) });
        }
      } else if (msg.type === 'worker-failed') {
        fail(new Error(`worker ${wk.process.pid}: ${msg.error.message}`));
      } else if (msg.type === 'worker-reset-done') {
        collect('reset', wk, true);
      } else if (msg.type === 'worker-report') {
        collect('report', wk, msg.report);
      }
    });
    wk.on('exit', (code, signal) => {
      if (!stopping) fail(new Error(`worker ${wk.process.pid} exited early (code ${code}, signal ${signal})`));
    });
  };
  if (supervised) {
    // startCluster forks the workers itself: each one is taken in as it is forked.
    cluster.on('fork', adopt);
    const { startCluster } = require('..');
    // BENCH_BALANCE=0: the supervisor without balance; BENCH_STALL=0: without stall protection (to measure what each costs).
    const balance = process.env.BENCH_BALANCE === '0' ? { balance: false } : {};
    const stall = process.env.BENCH_STALL === '0' ? { stallThresholdMs: 0 } : {};
    startCluster({
      exec: __filename,
      args: process.argv.slice(2),
      workers: opts.workers,
      mode: 'reuseport',
      readyTimeoutMs: 15_000,
      ...balance,
      ...stall,
    }).then(
      (started) => {
        supervisor = started;
      },
      (error) => fail(error),
    );
  } else {
    for (let i = 0; i < opts.workers; i++) adopt(cluster.fork({ BENCH_WORKER_INDEX: String(i) }));
  }

  process.on('message', async (msg) => {
    if (msg.type === 'reset') {
      await broadcast('reset', { type: 'reset' });
      cpuBase = process.cpuUsage();
      process.send({ type: 'reset-done' });
    } else if (msg.type === 'report') {
      const reports = await broadcast('report', { type: 'report' });
      const cpu = process.cpuUsage(cpuBase);
      process.send({ type: 'report', primary: { pid: process.pid, cpuMicros: cpu.user + cpu.system }, workers: reports });
    } else if (msg.type === 'stop') {
      stopping = true;
      if (supervisor) {
        // Bounded: bench/servers.mjs kills every pid still there after 3 s anyway.
        await Promise.race([supervisor.close().catch(() => undefined), new Promise((r) => setTimeout(r, 2500))]);
        process.exit(0);
      }
      for (const wk of workers) wk.process.kill('SIGTERM');
      // Exit once every worker is gone; bench/servers.mjs still checks each pid and kills what remains.
      let left = workers.filter((wk) => wk.process.exitCode === null && wk.process.signalCode === null).length;
      if (left === 0) process.exit(0);
      for (const wk of workers) wk.process.once('exit', () => --left === 0 && process.exit(0));
    }
  });
}

// ---- entry -----------------------------------------------------------------------------------

function main() {
  const { values } = parseArgs({
    options: {
      mode: { type: 'string' },
      workers: { type: 'string', default: '1' },
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      probe: { type: 'boolean', default: false },
    },
  });
  if (values.probe) {
    process.stdout.write(`${JSON.stringify(capabilities())}\n`);
    return;
  }
  if (!MODES.includes(values.mode)) throw new Error(`--mode must be one of ${MODES.join(', ')}`);
  const opts = { mode: values.mode, workers: Number(values.workers), port: Number(values.port), host: values.host };
  // Without the bench on the other end of IPC there is nobody to report to: stop rather than linger.
  process.on('disconnect', () => process.exit(0));
  if (cluster.isWorker) runClusterWorker(opts);
  else if (opts.mode === 'single') runSingle(opts);
  else runPrimary(opts);
}

main();
