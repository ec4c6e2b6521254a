// The sticky comparison (`npm run build:ts && node bench/sticky.mjs`; not part of npm test):
//  1. CPU per request, side by side, of 2 hello-world workers as startCluster with hash steering
//     ("plain reuseport"), startCluster({ sticky: 'ip' }), and node:cluster with @socket.io/sticky
//     (its primary reads every connection's first bytes and passes the connection on). CPU is the
//     user+system time of the primary and the workers (/proc/<pid>/stat) per request answered; the
//     load comes from another process (bench/sticky-client.mjs): 32 lanes, each new connection from
//     the next of 1024 source addresses. Workloads: a new connection per request, and keep-alive
//     (100 requests a connection; not for @socket.io/sticky, whose workers send `Connection: close`
//     on every response so that no connection carries two sessions).
//  2. The share of client addresses that move to another slot when the worker count changes (an
//     upgrade to another count), measured on the kernel: a group with the sticky program for N
//     slots, 1024 client addresses (127.1.0.0-127.1.3.255), then the program for M slots.
// Writes bench/results/<date>-<host>-sticky.{json,md} and prints the tables.
import { execFileSync, fork } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { freePort, killPids, track, untrack, waitForMessage } from './servers.mjs';
import { median } from './stats.mjs';

const require = createRequire(import.meta.url);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVER = path.join(HERE, 'sticky-server.cjs');
const CLIENT = path.join(HERE, 'sticky-client.mjs');
const TICK_MICROS = 1e6 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

export const STICKY_CONFIGURATIONS = [
  { id: 'reuseport', label: 'plain reuseport (startCluster, hash steering)', workloads: ['close', 'keepalive'] },
  { id: 'sticky', label: "startCluster({ sticky: 'ip' })", workloads: ['close', 'keepalive'] },
  { id: 'socketio-sticky', label: 'node:cluster + @socket.io/sticky', workloads: ['close'] },
];

/** A process's user+system CPU so far, in microseconds (/proc/<pid>/stat fields 14 and 15). */
function cpuMicros(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MICROS;
}

function runClient(port, workload, lanes, durationMs) {
  return new Promise((resolve, reject) => {
    const child = fork(CLIENT, [String(port), workload, String(lanes), String(durationMs)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    track(child.pid);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const guard = setTimeout(() => child.kill('SIGKILL'), durationMs + 30_000);
    child.on('exit', (code) => {
      clearTimeout(guard);
      untrack(child.pid);
      if (code !== 0) return reject(new Error(`client exited ${code}`));
      resolve(JSON.parse(out));
    });
  });
}

async function measure(config, workload, { lanes, durationMs, warmupMs }) {
  const port = await freePort();
  const child = fork(SERVER, ['--config', config, '--port', String(port)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], execArgv: ['--no-deprecation'] });
  track(child.pid);
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  let pids = [child.pid];
  try {
    const ready = await waitForMessage(child, 'ready', 20_000, { label: config, failure: 'failed', stderr: () => stderr });
    pids = [child.pid, ...ready.pids];
    for (const pid of ready.pids) track(pid);
    if (warmupMs > 0) await runClient(port, workload, lanes, warmupMs);
    const before = pids.map(cpuMicros);
    const load = await runClient(port, workload, lanes, durationMs);
    const after = pids.map(cpuMicros);
    const primary = after[0] - before[0];
    const workers = after.slice(1).reduce((sum, v, i) => sum + v - before[i + 1], 0);
    return {
      config,
      workload,
      requests: load.requests,
      errors: load.errors,
      requestsPerSecond: load.requests / (durationMs / 1000),
      cpuMicrosPerRequest: (primary + workers) / load.requests,
      primaryMicrosPerRequest: primary / load.requests,
      steering: ready.steering?.map((s) => s.reason),
    };
  } finally {
    child.disconnect?.();
    await killPids(pids);
    for (const pid of pids) untrack(pid);
  }
}

/** Kernel-measured moves: which of `clients` addresses land on another socket when the sticky program goes from `from` to `to` slots. */
async function measureMoves(from, to, clients) {
  const { loadBinding } = require('../dist/binding.js');
  const { stickyProgram, flatten } = require('../dist/supervisor/slots/steering.js');
  const { binding } = loadBinding();
  const count = Math.max(from, to);
  const landed = new Map();
  const servers = [];
  let port = 0;
  const fds = [];
  for (let i = 0; i < count; i++) {
    const socket = binding.openListener({ address: '127.0.0.1', port, listen: false });
    port = socket.port;
    fds.push(socket.fd);
  }
  fds.forEach((fd, index) => {
    binding.listenSocket(fd, 511);
    const server = net.createServer((c) => {
      landed.set(c.remoteAddress, index);
      c.end();
    });
    server.listen({ fd });
    servers.push(server);
  });
  const sources = Array.from({ length: clients }, (_, i) => `127.1.${i >> 8}.${i & 255}`);
  const connectAll = async () => {
    landed.clear();
    for (let i = 0; i < sources.length; i += 64) {
      await Promise.all(
        sources.slice(i, i + 64).map(
          (source) =>
            new Promise((resolve) => {
              const socket = net.connect({ port, host: '127.0.0.1', localAddress: source });
              socket.on('close', resolve);
              socket.on('error', resolve);
              socket.resume();
            }),
        ),
      );
    }
    for (let i = 0; i < 100 && landed.size < sources.length; i++) await new Promise((r) => setTimeout(r, 10));
    return new Map(landed);
  };
  try {
    binding.attachReusePortProgram(fds[0], flatten(stickyProgram(Array.from({ length: from }, (_, s) => s))));
    const before = await connectAll();
    binding.attachReusePortProgram(fds[0], flatten(stickyProgram(Array.from({ length: to }, (_, s) => s))));
    const after = await connectAll();
    const moved = sources.filter((s) => before.get(s) !== after.get(s)).length;
    return {
      from,
      to,
      clients: sources.length,
      seen: Math.min(before.size, after.size),
      moved,
      fraction: moved / sources.length,
      ideal: Math.abs(to - from) / count,
    };
  } finally {
    for (const server of servers) server.close();
  }
}

export function stickyMarkdown(result) {
  const rows = [
    '| configuration | workload | CPU per request (µs, median) | rounds (µs) | of it the primary (µs) | requests/s (median) | errors |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const cfg of STICKY_CONFIGURATIONS) {
    for (const workload of cfg.workloads) {
      const runs = result.measurements.filter((m) => m.config === cfg.id && m.workload === workload);
      if (runs.length === 0) continue;
      rows.push(
        `| ${cfg.label} | ${workload === 'close' ? 'new connection per request' : 'keep-alive'} | ${median(runs.map((m) => m.cpuMicrosPerRequest)).toFixed(1)} | ${runs.map((m) => m.cpuMicrosPerRequest.toFixed(1)).join(', ')} | ${median(runs.map((m) => m.primaryMicrosPerRequest)).toFixed(1)} | ${Math.round(median(runs.map((m) => m.requestsPerSecond)))} | ${runs.reduce((s, m) => s + m.errors, 0)} |`,
      );
    }
  }
  const moves = ['| slots before → after | clients moved (kernel) | ideal \\|Δ\\| / max |', '|---|---|---|'];
  for (const m of result.moves)
    moves.push(`| ${m.from} → ${m.to} | ${m.moved} of ${m.clients} (${(100 * m.fraction).toFixed(1)}%) | ${(100 * m.ideal).toFixed(1)}% |`);
  return `${rows.join('\n')}\n\n${moves.join('\n')}\n`;
}

async function main() {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      lanes: { type: 'string', default: '32' },
      out: { type: 'string' },
    },
  });
  const settings = {
    rounds: Number(values.rounds),
    durationMs: Number(values.duration) * 1000,
    warmupMs: Number(values.warmup) * 1000,
    lanes: Number(values.lanes),
  };
  const startedAt = new Date();
  const measurements = [];
  for (let round = 0; round < settings.rounds; round++) {
    // Alternating order, so that drift of the machine falls on every configuration alike.
    const order = round % 2 === 0 ? STICKY_CONFIGURATIONS : [...STICKY_CONFIGURATIONS].reverse();
    for (const cfg of order) {
      for (const workload of cfg.workloads) {
        const m = await measure(cfg.id, workload, settings);
        measurements.push({ round, ...m });
        process.stderr.write(
          `round ${round} ${cfg.id} ${workload}: ${m.cpuMicrosPerRequest.toFixed(1)} µs/request, ${Math.round(m.requestsPerSecond)}/s, ${m.errors} errors\n`,
        );
      }
    }
  }
  const moves = [];
  for (const [from, to] of [
    [2, 3],
    [3, 4],
    [4, 5],
    [3, 2],
    [4, 3],
    [4, 8],
    [8, 4],
    [2, 8],
  ])
    moves.push(await measureMoves(from, to, 1024));
  const result = {
    command: `node bench/sticky.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    startedAt: startedAt.toISOString(),
    machine: { hostname: os.hostname(), cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version, kernel: os.release() },
    settings,
    measurements,
    moves,
  };
  const outDir = path.resolve(values.out ?? path.join(HERE, 'results'));
  fs.mkdirSync(outDir, { recursive: true });
  const base = path.join(outDir, `${startedAt.toISOString().replace(/[:.]/g, '-').slice(0, 19)}-${os.hostname().replace(/[^\w.-]/g, '_')}-sticky`);
  const table = stickyMarkdown(result);
  fs.writeFileSync(`${base}.json`, `${JSON.stringify(result, null, 2)}\n`);
  fs.writeFileSync(
    `${base}.md`,
    `# Sticky vs plain reuseport vs @socket.io/sticky\n\n\`${result.command}\` on ${result.machine.cpuModel ?? 'this machine'} (${result.machine.cpus} CPUs), Node ${result.machine.node}, ${result.startedAt}.\n\n${table}`,
  );
  process.stdout.write(`${table}\nwrote ${base}.json and .md\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    process.stderr.write(`${error.stack}\n`);
    process.exit(1);
  });
}
