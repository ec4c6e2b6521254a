// How evenly the kernel spreads UDP flows: `node bench/udp.mjs`. Three configurations of 3 processes each answer one
// datagram per flow with their pid (test/fixtures/udp-server.js, started and stopped by pid):
//   - standalone: 3 separate processes, each bindReusePort (its own SO_REUSEPORT socket);
//   - cluster-reuseport: a cluster primary and 3 workers, each bindReusePort (own sockets; the primary holds none);
//   - cluster-shared: the same with { mode: 'shared' }: node:cluster's one socket, bound by the primary, read by all.
// A flow is a fresh client socket (its own source port, all of a batch open at once) sending one datagram and waiting
// for the answer. Reported per configuration: each process's share of the flows (ranked busiest first, medians over the
// runs), Jain's index and busiest/idlest. Figures are not speed: this measures who receives, not how fast.
import dgram from 'node:dgram';
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killAllSync, killPids, track, untrack, waitForMessage } from './servers.mjs';
import { jainIndex, maxMinRatio, median, medianByPosition } from './stats.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FIXTURE = path.join(HERE, '..', 'test', 'fixtures', 'udp-server.js');
const SCHEMA = 'reuseport-bench-udp/1';

export const CONFIGURATIONS = [
  { id: 'standalone', how: '3 processes, each bindReusePort: its own SO_REUSEPORT socket' },
  { id: 'cluster-reuseport', how: 'a cluster primary and 3 workers, each bindReusePort: own sockets, none in the primary' },
  { id: 'cluster-shared', how: "the same with { mode: 'shared' }: node:cluster's one socket, bound by the primary" },
];

const USAGE = `usage: node bench/udp.mjs [--flows N] [--runs N] [--results DIR] [--help]
  --flows N     flows per configuration and run, each from its own source port (default 3000)
  --runs N      runs per configuration; per-position medians are reported (default 3)
  --results DIR where to write <date>-<host>-udp-node<major>.json (default bench/results)`;

function positiveInt(name, value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${value}`);
  return n;
}

function start(args) {
  let stderr = '';
  const child = fork(FIXTURE, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  child.stderr.on('data', (d) => (stderr += d));
  track(child.pid);
  child.once('exit', () => untrack(child.pid));
  return { child, stderr: () => stderr };
}

// Starts a configuration; resolves with the port and the pids that answer (and every pid to stop).
async function startConfiguration(id) {
  const ready = (server) => waitForMessage(server.child, 'ready', 20_000, { label: id, failure: 'failed', stderr: server.stderr });
  if (id === 'standalone') {
    const first = start(['standalone', '0']);
    const { info, pid } = await ready(first);
    const port = info.address.port;
    const others = [1, 2].map(() => start(['standalone', String(port)]));
    const rest = await Promise.all(others.map(ready));
    const pids = [pid, ...rest.map((r) => r.pid)];
    return { port, answering: pids, all: pids };
  }
  const primary = start(['cluster', '3', ...(id === 'cluster-shared' ? ['shared'] : [])]);
  const message = await ready(primary);
  const workers = message.workers.map((w) => w.pid);
  for (const pid of workers) track(pid);
  return { port: message.port, answering: workers, all: [message.pid, ...workers] };
}

// One datagram from each of `count` fresh sockets (200 open at a time); answers counted by pid.
async function spread(port, count) {
  const counts = new Map();
  for (let sent = 0; sent < count; sent += 200) {
    const batch = Array.from({ length: Math.min(200, count - sent) }, () => dgram.createSocket('udp4'));
    try {
      const answers = await Promise.all(batch.map((socket) => ask(socket, port)));
      for (const pid of answers) counts.set(pid, (counts.get(pid) ?? 0) + 1);
    } finally {
      for (const socket of batch) socket.close();
    }
  }
  return counts;
}

// Resends from the same socket (the same flow, so the same receiver) when loopback dropped one; bounded.
async function ask(socket, port) {
  await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve));
  for (let attempt = 0; attempt < 5; attempt++) {
    const answer = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), 1_000);
      socket.once('message', (message) => {
        clearTimeout(timer);
        resolve(message.toString());
      });
      socket.send('who', port, '127.0.0.1');
    });
    if (answer !== undefined) return answer;
  }
  throw new Error(`no answer on udp 127.0.0.1:${port} after 5 tries`);
}

async function main() {
  const { values } = parseArgs({ options: { flows: { type: 'string' }, runs: { type: 'string' }, results: { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help) return console.log(USAGE);
  const flows = positiveInt('flows', values.flows ?? 3000);
  const runs = positiveInt('runs', values.runs ?? 3);
  const results = [];
  for (const configuration of CONFIGURATIONS) {
    const rounds = [];
    const pids = [];
    for (let run = 0; run < runs; run++) {
      const started = await startConfiguration(configuration.id);
      pids.push(...started.all);
      try {
        const counts = await spread(started.port, flows);
        // A process that answered nothing counts as 0.
        rounds.push(started.answering.map((pid) => counts.get(String(pid)) ?? 0).sort((a, b) => b - a));
      } finally {
        await killPids(started.all);
      }
    }
    const shares = medianByPosition(rounds).map((count) => count / flows);
    results.push({
      id: configuration.id,
      how: configuration.how,
      rounds,
      pids,
      shares,
      jain: median(rounds.map(jainIndex)),
      busiestOverIdlest: median(rounds.map(maxMinRatio)),
    });
  }
  const saved = {
    schema: SCHEMA,
    date: new Date().toISOString(),
    host: os.hostname(),
    node: process.version,
    kernel: os.release(),
    cpus: os.cpus().length,
    flows,
    runs,
    results,
  };
  const dir = values.results ?? path.join(HERE, 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${saved.date.slice(0, 10)}-${os.hostname()}-udp-node${process.versions.node.split('.')[0]}.json`);
  writeFileSync(file, `${JSON.stringify(saved, null, 2)}\n`);
  console.log(`UDP flows per process (${flows} flows, medians of ${runs} runs, Node ${process.version}, kernel ${os.release()})`);
  console.log('| configuration | shares, busiest first | Jain | busiest/idlest |\n|---|---|---|---|');
  for (const r of results) {
    const ratio = Number.isFinite(r.busiestOverIdlest) ? r.busiestOverIdlest.toFixed(2) : 'inf';
    console.log(`| ${r.id} | ${r.shares.map((s) => `${(s * 100).toFixed(1)}%`).join(' / ')} | ${r.jain.toFixed(3)} | ${ratio} |`);
  }
  console.log(`saved ${file}`);
}

process.on('SIGTERM', () => {
  killAllSync();
  process.exit(143);
});
main().catch((error) => {
  killAllSync();
  console.error(error);
  process.exit(1);
});
