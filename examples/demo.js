// The demo: startCluster runs several workers that serve one port through listenReusePort; a short
// load runs, then a second one while every worker is replaced; it prints the mode chosen, why, how
// the connections spread across workers, and what the reload cost. Exits by itself.
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');
const os = require('node:os');
const { parseArgs } = require('node:util');
const { listenReusePort, startCluster } = require('..');

const { values: flags } = parseArgs({
  options: {
    workers: { type: 'string', default: String(Math.max(3, os.availableParallelism())) },
    requests: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16' },
    port: { type: 'string', default: '0' },
    // How long a request may sit idle before it counts as failed (ms).
    timeout: { type: 'string', default: '5000' },
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

// startCluster picks the mode once for all workers, gives them one port (port 0 included), and
// owns each worker's listening socket so that replacing a worker loses no connection.
async function startWorkers(count, port) {
  const infos = new Map();
  cluster.on('message', (worker, message) => {
    if (message.type === 'ready') infos.set(worker.process.pid, message.info);
  });
  const supervisor = await startCluster({ exec: __filename, workers: count, env: { DEMO_PORT: String(port) } });
  const deadline = Date.now() + 5000;
  while (supervisor.pids.some((pid) => !infos.has(pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const ready = supervisor.pids.map((pid) => ({ pid, info: infos.get(pid) }));
  return { supervisor, port: supervisor.ports[0], ready };
}

// A new TCP connection for every request, the case where how the port is shared matters most.
async function drive(port, total, concurrency) {
  const perWorker = new Map();
  let issued = 0;
  let failed = 0;
  const once = () =>
    new Promise((resolve) => {
      const request = http.get({ host: '127.0.0.1', port, agent: false, timeout: Number(flags.timeout) }, (response) => {
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
  const { supervisor, port, ready } = await startWorkers(workers, Number(flags.port));
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

  // The same load again while every worker is replaced, one slot at a time.
  const during = drive(port, total, Number(flags.concurrency));
  const before = supervisor.pids;
  const started = Date.now();
  await supervisor.reload();
  const reloadMs = Date.now() - started;
  const second = await during;
  const replaced = supervisor.pids.filter((pid) => !before.includes(pid)).length;
  console.log(`\nreload under load: ${replaced} of ${workers} workers replaced in ${reloadMs} ms; ` + `${total} more requests, ${second.failed} failed`);

  await supervisor.close();
  process.exitCode = failed === 0 && second.failed === 0 && counts.every((c) => c > 0) ? 0 : 1;
}
