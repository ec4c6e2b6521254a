// Stall-scenario (and CPU-local comparison) server for one configuration: a cluster primary and its hello-world workers, one of which can be told to
// block its event loop. Driven over IPC by bench/stall.mjs through bench/servers.mjs (same protocol as bench/server.cjs,
// plus 'block' -> 'block-done').
'use strict';
const { fail } = require('./ipc.cjs');
const cluster = require('node:cluster');
const http = require('node:http');
const { parseArgs } = require('node:util');

const MODES = ['cluster-rr', 'cluster-shared', 'reuseport-plain', 'reuseport-supervised', 'reuseport-pinned', 'reuseport-cpu-local'];
const SUPERVISED = ['reuseport-supervised', 'reuseport-pinned', 'reuseport-cpu-local'];
const BODY = 'Hello, world!\n';

function cpuMicros(base) {
  const cpu = process.cpuUsage(base);
  return cpu.user + cpu.system;
}

// ---- worker ------------------------------------------------------------------------------------

function runWorker({ mode, port, host }) {
  let requests = 0;
  let connections = 0;
  let cpuBase = process.cpuUsage();
  // CPU burnt by the ordered busy-wait: not a cost of the mode, so the report subtracts it.
  let blockedCpuMicros = 0;
  const server = http.createServer((req, res) => {
    requests++;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length });
    res.end(BODY);
  });
  server.on('connection', () => connections++);

  const listen = async () => {
    if (mode === 'reuseport-plain' || SUPERVISED.includes(mode)) {
      // The same call in both: supervised workers are recognised by the library (startCluster forked them).
      const { listenReusePort } = require('..');
      const info = await listenReusePort(server, port, { host, mode: 'reuseport' });
      return { mode: info.mode, backend: info.backend, address: info.address };
    }
    // cluster-rr, cluster-shared: plain listen, the primary owns the socket.
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    return { mode, backend: 'node', address: server.address() };
  };

  listen().then(
    (info) => process.send({ type: 'worker-ready', info }),
    (error) => process.send({ type: 'worker-failed', error: { message: error.message, code: error.code } }),
  );

  process.on('message', (msg) => {
    if (msg?.type === 'block') {
      // A long synchronous task: nothing else runs in this process (no accept, no request, no heartbeat) for msg.ms.
      const cpu0 = process.cpuUsage();
      const startedAt = Date.now();
      const until = performance.now() + msg.ms;
      while (performance.now() < until);
      const endedAt = Date.now();
      blockedCpuMicros += cpuMicros(cpu0);
      process.send({ type: 'worker-block-done', startedAt, endedAt });
    } else if (msg?.type === 'reset') {
      requests = 0;
      connections = 0;
      blockedCpuMicros = 0;
      cpuBase = process.cpuUsage();
      process.send({ type: 'worker-reset-done' });
    } else if (msg?.type === 'report') {
      const cpu = cpuMicros(cpuBase);
      process.send({
        type: 'worker-report',
        report: { pid: process.pid, requests, connections, cpuMicros: Math.max(0, cpu - blockedCpuMicros), blockedCpuMicros },
      });
    }
  });
}

// ---- primary -----------------------------------------------------------------------------------

async function runPrimary(opts) {
  const exec = __filename;
  const args = process.argv.slice(2);
  let supervisor = null;
  let stopping = false;
  const ready = new Map(); // pid -> listen info
  let cpuBase = process.cpuUsage();
  let pending = null; // { kind, replies: Map<pid, payload>, want: pids, done }
  const events = [];

  const workersByPid = () => new Map(Object.values(cluster.workers ?? {}).map((w) => [w.process.pid, w]));

  cluster.on('fork', (wk) => process.send({ type: 'worker-pid', pid: wk.process.pid }));
  cluster.on('message', (wk, msg) => {
    const pid = wk.process.pid;
    if (msg?.type === 'worker-ready') {
      ready.set(pid, msg.info);
      maybeReady();
    } else if (msg?.type === 'worker-failed') {
      fail(new Error(`worker ${pid}: ${msg.error.message}`));
    } else if (msg?.type === 'worker-block-done') {
      process.send({ type: 'block-done', pid, startedAt: msg.startedAt, endedAt: msg.endedAt });
    } else if (pending && msg?.type === `worker-${pending.kind}${pending.kind === 'reset' ? '-done' : ''}`) {
      pending.replies.set(pid, msg.report ?? true);
      if (pending.want.every((p) => pending.replies.has(p))) {
        const p = pending;
        pending = null;
        p.done(p.want.map((x) => p.replies.get(x)));
      }
    }
  });
  cluster.on('exit', (wk, code, signal) => {
    if (!stopping && !supervisor) fail(new Error(`worker ${wk.process.pid} exited early (code ${code}, signal ${signal})`));
  });

  let announced = false;
  let expected = null; // pids that must be listening before 'ready'
  function maybeReady() {
    if (announced || !expected) return;
    if (!expected.every((pid) => ready.has(pid))) return;
    announced = true;
    process.send({ type: 'ready', pid: process.pid, plan: planInfo, workers: expected.map((pid) => ({ pid, info: ready.get(pid) })) });
  }

  let planInfo = null;
  if (SUPERVISED.includes(opts.mode)) {
    const { startCluster } = require('..');
    const cpuLocal = opts.mode === 'reuseport-cpu-local';
    supervisor = await startCluster({ exec, args, workers: opts.workers, mode: 'reuseport', drainTimeoutMs: 1000, readyTimeoutMs: 15_000, cpuLocal });
    planInfo = { mode: supervisor.plan.mode, backend: supervisor.plan.backend };
    if (opts.mode === 'reuseport-pinned') {
      // Pinning without CPU steering (the bench's control for CPU-local mode): worker i on CPU i, as cpuLocal pins them.
      const { loadBinding } = require('../dist/binding.js');
      const { pinProcess, slotCpus } = require('../dist/supervisor/slots/affinity.js');
      const { binding } = loadBinding();
      const cpus = slotCpus(opts.workers, binding.getCpuAffinity(0));
      supervisor.pids.forEach((pid, slot) => pinProcess(binding, pid, cpus[slot]));
    }
    for (const name of ['stall', 'recover', 'stall-replace', 'exit']) {
      supervisor.on(name, (e) => events.push({ name, at: Date.now(), ...e }));
    }
    expected = supervisor.pids;
    maybeReady();
  } else {
    if (opts.mode === 'reuseport-plain') {
      // The plan for every worker (and no supervisor): each worker then opens its own SO_REUSEPORT socket.
      const { setupPrimary } = require('..');
      const plan = setupPrimary({ mode: 'reuseport' });
      planInfo = { mode: plan.mode, backend: plan.backend };
    } else {
      // Must be set before the first fork.
      cluster.schedulingPolicy = opts.mode === 'cluster-rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;
      planInfo = { mode: opts.mode, backend: 'node', schedulingPolicy: opts.mode === 'cluster-rr' ? 'SCHED_RR' : 'SCHED_NONE' };
    }
    cluster.setupPrimary({ exec, args, silent: false });
    const forked = [];
    for (let i = 0; i < opts.workers; i++) forked.push(cluster.fork().process.pid);
    expected = forked;
    maybeReady();
  }

  const broadcast = (kind, message) =>
    new Promise((resolve) => {
      const byPid = workersByPid();
      pending = { kind, replies: new Map(), want: [...byPid.keys()], done: resolve };
      for (const wk of byPid.values()) wk.send(message);
    });

  process.on('message', async (msg) => {
    if (msg.type === 'reset') {
      await broadcast('reset', { type: 'reset' });
      cpuBase = process.cpuUsage();
      events.length = 0;
      process.send({ type: 'reset-done' });
    } else if (msg.type === 'report') {
      const reports = await broadcast('report', { type: 'report' });
      process.send({
        type: 'report',
        primary: { pid: process.pid, cpuMicros: cpuMicros(cpuBase) },
        workers: reports,
        supervisor: supervisor ? { stats: supervisor.stats(), events: [...events] } : null,
      });
    } else if (msg.type === 'block') {
      const wk = workersByPid().get(msg.pid);
      if (!wk) process.send({ type: 'failed', error: { message: `no worker with pid ${msg.pid}` } });
      else wk.send({ type: 'block', ms: msg.ms });
    } else if (msg.type === 'stop') {
      stopping = true;
      if (supervisor) {
        // Bounded: bench/servers.mjs kills every pid that is still there after 3 s anyway.
        await Promise.race([supervisor.close().catch(() => undefined), new Promise((r) => setTimeout(r, 2500))]);
        process.exit(0);
      }
      const workers = Object.values(cluster.workers ?? {});
      let left = workers.length;
      if (left === 0) process.exit(0);
      for (const wk of workers) {
        wk.process.once('exit', () => --left === 0 && process.exit(0));
        wk.process.kill('SIGTERM');
      }
    }
  });
}

function main() {
  const { values } = parseArgs({
    options: {
      mode: { type: 'string' },
      workers: { type: 'string', default: '3' },
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
    },
  });
  if (!MODES.includes(values.mode)) throw new Error(`--mode must be one of ${MODES.join(', ')}`);
  const opts = { mode: values.mode, workers: Number(values.workers), port: Number(values.port), host: values.host };
  // Without the bench on the other end of IPC there is nobody to report to: stop rather than linger.
  process.on('disconnect', () => process.exit(0));
  if (cluster.isWorker) runWorker(opts);
  else runPrimary(opts).catch(fail);
}

main();
