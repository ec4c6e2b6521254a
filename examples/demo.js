// The demo: several cluster workers serve one port through listenReusePort, a short load runs, and
// the chosen mode and the spread of connections across workers are printed. Exits by itself.
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');
const os = require('node:os');
const { parseArgs } = require('node:util');
const { listenReusePort, setupPrimary } = require('..');

const { values: flags } = parseArgs({
  options: {
    workers: { type: 'string', default: String(Math.max(3, os.availableParallelism())) },
    requests: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16' },
    port: { type: 'string', default: '0' },
  },
});

if (cluster.isWorker) {
  const server = http.createServer((request, response) => {
    response.setHeader('x-worker', String(process.pid));
    response.end('hello\n');
  });
  listenReusePort(server, Number(process.env.DEMO_PORT), { host: '127.0.0.1' }).then(
    (info) => process.send({ type: 'ready', info }),
    (error) => {
      console.error(`worker ${process.pid}: ${error.message}`);
      process.exit(1);
    },
  );
} else {
  main().catch((error) => {
    console.error(error);
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
    process.exit(1);
  });
}

// setupPrimary() picks the mode once for all workers (and, for port 0, one port they all share).
async function startWorkers(count, port) {
  setupPrimary();
  const fork = () =>
    new Promise((resolve, reject) => {
      const worker = cluster.fork({ DEMO_PORT: String(port) });
      worker.once('exit', (code) => reject(new Error(`worker ${worker.process.pid} exited with ${code}`)));
      worker.once('message', (message) => {
        if (message.type === 'ready') resolve({ pid: worker.process.pid, info: message.info });
      });
    });
  const ready = await Promise.all(Array.from({ length: count }, fork));
  return { port: ready[0].info.address.port, ready };
}

// A new TCP connection for every request, the case where how the port is shared matters most.
async function drive(port, total, concurrency) {
  const perWorker = new Map();
  let issued = 0;
  let failed = 0;
  const once = () =>
    new Promise((resolve) => {
      const request = http.get({ host: '127.0.0.1', port, agent: false, timeout: 5000 }, (response) => {
        const pid = response.headers['x-worker'];
        perWorker.set(pid, (perWorker.get(pid) ?? 0) + 1);
        response.resume();
        response.on('end', resolve);
      });
      request.on('timeout', () => request.destroy(new Error('timeout')));
      request.on('error', () => {
        failed += 1;
        resolve();
      });
    });
  const lane = async () => {
    while (issued < total) {
      issued += 1;
      await once();
    }
  };
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, lane));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { perWorker, failed, seconds };
}

// Jain's fairness index: 1 when every worker got the same share, 1/n when one got everything.
function jain(values) {
  const sum = values.reduce((a, b) => a + b, 0);
  const squares = values.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? 0 : (sum * sum) / (values.length * squares);
}

async function main() {
  const workers = Number(flags.workers);
  const total = Number(flags.requests);
  const { port, ready } = await startWorkers(workers, Number(flags.port));
  const { mode, backend, reasons } = ready[0].info;
  console.log(`reuseport demo: ${workers} workers on 127.0.0.1:${port}`);
  console.log(`mode: ${mode} (backend: ${backend})`);
  for (const reason of reasons) console.log(`  why: ${reason}`);

  const { perWorker, failed, seconds } = await drive(port, total, Number(flags.concurrency));
  console.log(`\n${total} requests, each on a new connection, in ${seconds.toFixed(2)} s (${Math.round(total / seconds)} req/s), ${failed} failed`);
  const counts = ready.map(({ pid }) => perWorker.get(String(pid)) ?? 0);
  const widest = Math.max(...counts, 1);
  for (const [index, { pid }] of ready.entries()) {
    const count = counts[index];
    const bar = '#'.repeat(Math.round((count / widest) * 40));
    console.log(`  worker ${String(pid).padEnd(8)} ${String(count).padStart(6)}  ${bar}`);
  }
  const min = Math.min(...counts);
  console.log(`fairness: Jain's index ${jain(counts).toFixed(3)} (1 = perfectly even), max/min ${min ? (Math.max(...counts) / min).toFixed(2) : 'inf'}`);

  for (const worker of Object.values(cluster.workers ?? {})) {
    worker.removeAllListeners('exit');
    worker.process.kill('SIGTERM');
  }
  process.exitCode = failed === 0 && counts.every((c) => c > 0) ? 0 : 1;
}
