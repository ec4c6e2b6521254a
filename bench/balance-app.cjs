// The balance scenario's app (bench/balance.mjs): an HTTP server that spends BALANCE_CPU_MS of CPU per
// request and writes how many requests it served into BALANCE_COUNTS/<pid> every 100 ms, so the bench
// reads each worker's share whoever started it. Under `reuseport start` it is an ordinary app (the
// hook makes its listen a slot's); with BALANCE_RR=1 it is its own node:cluster primary, round-robin.
'use strict';
const cluster = require('node:cluster');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const port = Number(process.env.BALANCE_PORT);
const workers = Number(process.env.BALANCE_WORKERS ?? 2);
const cpuMs = Number(process.env.BALANCE_CPU_MS ?? 2);
const counts = process.env.BALANCE_COUNTS;

if (process.env.BALANCE_RR === '1' && cluster.isPrimary) {
  cluster.schedulingPolicy = cluster.SCHED_RR;
  let listening = 0;
  for (let i = 0; i < workers; i += 1) {
    cluster.fork().on('listening', () => {
      listening += 1;
      if (listening === workers) process.send?.({ type: 'ready' });
    });
  }
  const stop = () => {
    for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGKILL');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('disconnect', stop);
} else {
  let served = 0;
  const file = counts ? path.join(counts, String(process.pid)) : undefined;
  // Written aside and renamed: a reader never sees a file truncated for rewriting (it read as 0).
  const write = () => {
    if (!file) return;
    fs.writeFileSync(`${file}.tmp`, String(served));
    fs.renameSync(`${file}.tmp`, file);
  };
  const timer = setInterval(write, 100);
  timer.unref();
  write();
  http
    .createServer((request, response) => {
      const until = performance.now() + cpuMs;
      while (performance.now() < until);
      served += 1;
      response.end(`${process.pid}\n`);
    })
    .listen(port, '127.0.0.1');
}
