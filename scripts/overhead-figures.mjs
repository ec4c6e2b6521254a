// What the supervisor costs: CPU per request of supervised workers (startCluster) against plain
// listenReusePort processes under wrk (new connection per request, keep-alive), and the CPU of each set
// at rest; medians of N rounds, run in a network namespace of its own. In a round every configuration
// runs at once and the load moves between them in slices of --slice seconds (ABBA...), so a drift of
// the machine's speed within the round (this VM's CPU per request moves by 10-20% over minutes) falls on
// all of them alike; --slice 0 runs them one after another instead, each for the whole --duration.
// `--configs plain,supervised,rr` adds node:cluster's round-robin, to compare CPU per new connection;
// `no-balance` and `no-stall` are startCluster workers with balance, or stall protection, off.
// Usage: node scripts/overhead-figures.mjs [--rounds 5] [--workers 2] [--duration 5] [--slice 1] [--connections 32]
//          [--rest 10] [--node-reuseport PATH] [--configs plain,supervised] [--out bench/results] [--no-netns]
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { findWrk, runWrk } from '../bench/load.mjs';
import { freePort, killAllSync, startServer } from '../bench/servers.mjs';
import { median } from '../bench/stats.mjs';

const here = fileURLToPath(import.meta.url);
const root = path.join(path.dirname(here), '..');
const HOST = '127.0.0.1';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    workers: { type: 'string', default: '2' },
    duration: { type: 'string', default: '5' },
    slice: { type: 'string', default: '1' },
    connections: { type: 'string', default: '32' },
    rest: { type: 'string', default: '10' },
    'node-reuseport': { type: 'string' },
    configs: { type: 'string', default: 'plain,supervised' },
    out: { type: 'string', default: path.join(root, 'bench', 'results') },
    'no-netns': { type: 'boolean', default: false },
    'in-netns': { type: 'boolean', default: false },
  },
});

// Re-runs this script in a new network namespace (its own loopback: no other engineer's traffic).
if (!values['no-netns'] && !values['in-netns']) {
  const namespace = process.getuid() === 0 ? ['unshare', '--net'] : ['unshare', '--user', '--map-root-user', '--net'];
  const [command, ...prefix] = namespace;
  const script = 'ip link set lo up && exec "$0" "$@"';
  const result = spawnSync(command, [...prefix, '--', 'sh', '-c', script, process.execPath, here, ...process.argv.slice(2), '--in-netns'], {
    stdio: 'inherit',
  });
  process.exit(result.status ?? 1);
}

const CONFIGS = {
  plain: { mode: 'reuseport-addon', label: 'listenReusePort processes (setupPrimary + cluster.fork)' },
  supervised: { mode: 'reuseport-supervised', label: 'startCluster workers' },
  rr: { mode: 'cluster-rr', label: "node:cluster's round-robin" },
  // What each part of the supervisor costs: startCluster workers with balance, or stall protection, off.
  'no-balance': { mode: 'reuseport-supervised', label: 'startCluster workers, balance: false', env: { BENCH_BALANCE: '0' } },
  'no-stall': { mode: 'reuseport-supervised', label: 'startCluster workers, stallThresholdMs: 0', env: { BENCH_STALL: '0' } },
  node: { mode: 'reuseport-node', label: "Node's own reusePort", node: values['node-reuseport'] },
};
const configs = values.configs.split(',').map((id) => {
  if (!CONFIGS[id]) throw new Error(`--configs: unknown ${id} (${Object.keys(CONFIGS).join(', ')})`);
  if (id === 'node' && !CONFIGS.node.node) throw new Error('--configs node needs --node-reuseport PATH (a Node >= 22.12)');
  return { id, ...CONFIGS[id] };
});
const rounds = Number(values.rounds);
const workers = Number(values.workers);
const durationSec = Number(values.duration);
const sliceSec = Number(values.slice);
if (!(sliceSec >= 0) || (sliceSec > 0 && durationSec % sliceSec !== 0)) throw new Error('--slice: 0, or a number of seconds that divides --duration');
const connections = Number(values.connections);
const restSec = Number(values.rest);
const wrkPath = findWrk();
if (!wrkPath) throw new Error('wrk is not on the PATH (apt-get install wrk)');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
process.on('exit', killAllSync);

const warmUp = (port, workload) => runWrk({ wrkPath, url: `http://${HOST}:${port}/`, workload, connections, durationSec: 1, threads: 1 });

// One run of wrk against a server, its counters reset first: the requests it served, the CPU its
// workers and primary spent on them, and what the client saw.
async function loadRun(server, port, workload, seconds) {
  await sleep(100);
  await server.reset();
  const client = await runWrk({ wrkPath, url: `http://${HOST}:${port}/`, workload, connections, durationSec: seconds, threads: 1 });
  await sleep(250);
  const report = await server.report();
  const primaryMicros = report.primary.cpuMicros;
  return {
    requests: report.workers.reduce((sum, w) => sum + w.requests, 0),
    cpuMicros: report.workers.reduce((sum, w) => sum + w.cpuMicros, 0) + primaryMicros,
    primaryMicros,
    rps: client.requestsPerSecond,
    errors: client.errors.total,
  };
}

async function measureLoad(server, port, workload) {
  await warmUp(port, workload);
  const run = await loadRun(server, port, workload, durationSec);
  return { ...run, usPerRequest: run.cpuMicros / run.requests };
}

// The same as measureLoad for every configuration of a round at once: the load moves between them in
// slices (the order turned round each slice), each server's CPU and requests counted over its own slices.
async function measureSlices(running, workload) {
  const totals = new Map(running.map(({ config }) => [config.id, { requests: 0, rps: 0, errors: 0, cpuMicros: 0, primaryMicros: 0 }]));
  for (const { port } of running) await warmUp(port, workload);
  const slices = durationSec / sliceSec;
  for (let slice = 0; slice < slices; slice++) {
    for (const { config, server, port } of slice % 2 === 0 ? running : [...running].reverse()) {
      const run = await loadRun(server, port, workload, sliceSec);
      const total = totals.get(config.id);
      for (const key of Object.keys(total)) total[key] += run[key];
    }
  }
  return new Map([...totals].map(([id, t]) => [id, { ...t, rps: t.rps / slices, usPerRequest: t.cpuMicros / t.requests }]));
}

async function measureRest(server) {
  await sleep(1000);
  await server.reset();
  const started = performance.now();
  await sleep(restSec * 1000);
  const report = await server.report();
  const wallMicros = (performance.now() - started) * 1000;
  const percent = (micros) => (100 * micros) / wallMicros;
  return {
    percentOfCore: percent(report.workers.reduce((sum, w) => sum + w.cpuMicros, 0) + report.primary.cpuMicros),
    primaryPercent: percent(report.primary.cpuMicros),
    workersPercent: report.workers.map((w) => percent(w.cpuMicros)),
  };
}

const records = [];
const say = (record) =>
  process.stderr.write(
    `round ${record.round} ${record.config}: close ${record.close.usPerRequest.toFixed(1)} us/req, keep-alive ${record.keepalive.usPerRequest.toFixed(1)} us/req, rest ${record.rest.percentOfCore.toFixed(2)}% of a core\n`,
  );
for (let round = 1; round <= rounds && sliceSec > 0; round++) {
  const order = round % 2 === 1 ? configs : [...configs].reverse();
  const running = [];
  try {
    for (const config of order) {
      const port = await freePort(HOST);
      running.push({
        config,
        port,
        server: await startServer({ mode: config.mode, workers, port, host: HOST, nodePath: config.node ?? process.execPath, env: config.env }),
      });
    }
    const byWorkload = {};
    for (const workload of round % 2 === 1 ? ['close', 'keepalive'] : ['keepalive', 'close']) byWorkload[workload] = await measureSlices(running, workload);
    for (const { config, server } of running) {
      const record = { round, config: config.id, close: byWorkload.close.get(config.id), keepalive: byWorkload.keepalive.get(config.id) };
      // At rest one at a time: the others are at rest too.
      record.rest = await measureRest(server);
      records.push(record);
      say(record);
    }
  } finally {
    for (const { server } of running) await server.stop();
  }
}
for (let round = 1; round <= rounds && sliceSec === 0; round++) {
  const order = round % 2 === 1 ? configs : [...configs].reverse();
  for (const config of order) {
    const port = await freePort(HOST);
    const server = await startServer({ mode: config.mode, workers, port, host: HOST, nodePath: config.node ?? process.execPath, env: config.env });
    try {
      const record = { round, config: config.id };
      for (const workload of round % 2 === 1 ? ['close', 'keepalive'] : ['keepalive', 'close']) record[workload] = await measureLoad(server, port, workload);
      record.rest = await measureRest(server);
      records.push(record);
      say(record);
    } finally {
      await server.stop();
    }
  }
}

// Median over the rounds of this configuration's figure divided by plain's in the same round (null without plain).
function roundRatio(id, figure) {
  const ratios = [];
  for (let round = 1; round <= rounds; round++) {
    const mine = records.find((r) => r.round === round && r.config === id);
    const base = records.find((r) => r.round === round && r.config === 'plain');
    if (mine && base) ratios.push(figure(mine) / figure(base));
  }
  return ratios.length > 0 ? median(ratios) : null;
}

const summary = configs.map((config) => {
  const mine = records.filter((r) => r.config === config.id);
  const pick = (f) => median(mine.map(f));
  return {
    id: config.id,
    label: config.label,
    closeUs: pick((r) => r.close.usPerRequest),
    closePrimaryUs: pick((r) => r.close.primaryMicros / r.close.requests),
    keepaliveUs: pick((r) => r.keepalive.usPerRequest),
    keepalivePrimaryUs: pick((r) => r.keepalive.primaryMicros / r.keepalive.requests),
    restPercent: pick((r) => r.rest.percentOfCore),
    restPrimaryPercent: pick((r) => r.rest.primaryPercent),
    errors: mine.reduce((sum, r) => sum + r.close.errors + r.keepalive.errors, 0),
    // The same configurations ran back to back in each round: the median of each round's own ratio to
    // plain is less moved by the machine's slow drifts than the ratio of the medians.
    closeRoundRatio: roundRatio(config.id, (r) => r.close.usPerRequest),
    keepaliveRoundRatio: roundRatio(config.id, (r) => r.keepalive.usPerRequest),
  };
});
const plain = summary.find((s) => s.id === 'plain');
const fixed = (n, d = 1) => (n === null || n === undefined ? '-' : n.toFixed(d));
const command = `node scripts/overhead-figures.mjs ${process.argv
  .slice(2)
  .filter((a) => a !== '--in-netns')
  .join(' ')}`.trim();
const lines = [
  `\`${command}\` (${os.cpus().length} CPUs, Node ${process.version}, wrk -t1 -c${connections}, ${workers} workers, ${durationSec} s per step${sliceSec > 0 ? ` in ${sliceSec}-s slices, the configurations interleaved` : ''}, medians of ${rounds})`,
  '',
  '| configuration | new connection per request, CPU us/req (primary) | ratio (median of round ratios) | keep-alive, CPU us/req (primary) | ratio (median of round ratios) | at rest, % of a core (primary) | difference | client errors |',
  '|---|---:|---:|---:|---:|---:|---:|---:|',
  ...summary.map((s) =>
    [
      '',
      s.label,
      `${fixed(s.closeUs)} (${fixed(s.closePrimaryUs, 2)})`,
      plain ? `${fixed(s.closeUs / plain.closeUs, 3)} (${fixed(s.closeRoundRatio, 3)})` : '-',
      `${fixed(s.keepaliveUs)} (${fixed(s.keepalivePrimaryUs, 2)})`,
      plain ? `${fixed(s.keepaliveUs / plain.keepaliveUs, 3)} (${fixed(s.keepaliveRoundRatio, 3)})` : '-',
      `${fixed(s.restPercent, 2)} (${fixed(s.restPrimaryPercent, 2)})`,
      plain ? `${s.restPercent - plain.restPercent >= 0 ? '+' : ''}${fixed(s.restPercent - plain.restPercent, 2)}` : '-',
      String(s.errors),
      '',
    ]
      .join(' | ')
      .trim(),
  ),
];
mkdirSync(values.out, { recursive: true });
const file = path.join(values.out, `${new Date().toISOString().slice(0, 19).replace(/:/g, '-')}-overhead.json`);
writeFileSync(
  file,
  `${JSON.stringify({ command, node: process.version, settings: { rounds, workers, durationSec, sliceSec, connections, restSec }, summary, records }, null, 2)}\n`,
);
process.stdout.write(`${lines.join('\n')}\n\nwrote ${file}\n`);
