// Balance behind a proxy's keep-alive pool: nginx (`upstream { keepalive N; }`, HTTP/1.1 upstream)
// and HAProxy (`http-reuse always`) in front of N workers that spend 2 ms of CPU per request, wrk
// through the proxy; in each round, one after the other: node:cluster round-robin, `reuseport start
// --no-balance` (the kernel's hash alone) and `reuseport start` (balanced). Per run: each worker's
// requests, req/s, p50/p99, non-2xx and socket errors at the client, and the upstream errors in
// nginx's log (nginx retries an idempotent request that failed upstream, so the client would not see
// them). A fresh proxy per run: its pool lands anew each time, as after a proxy's restart.
// Usage: node bench/balance.mjs [--rounds 3] [--duration 5] [--workers 2] [--keepalive 4]
//          [--connections 4] [--cpu-ms 2] [--proxies nginx,haproxy] [--configs round-robin,reuseport,balanced]
//          [--out bench/balance-figures.json]
// Needs nginx, haproxy and wrk on the PATH (Debian: apt-get install nginx haproxy wrk).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from './servers.mjs';
import { median } from './stats.mjs';
import { proxyConfig } from './proxies.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const APP = path.join(root, 'bench', 'balance-app.cjs');
const CLI = path.join(root, 'dist', 'cli', 'main.js');
const HOST = '127.0.0.1';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    workers: { type: 'string', default: '2' },
    keepalive: { type: 'string', default: '4' },
    connections: { type: 'string', default: '4' },
    'cpu-ms': { type: 'string', default: '2' },
    proxies: { type: 'string', default: 'nginx,haproxy' },
    configs: { type: 'string', default: 'round-robin,reuseport,balanced' },
    out: { type: 'string', default: path.join(root, 'bench', 'balance-figures.json') },
  },
});
const settings = {
  rounds: Number(values.rounds),
  durationSec: Number(values.duration),
  workers: Number(values.workers),
  keepalive: Number(values.keepalive),
  connections: Number(values.connections),
  cpuMs: Number(values['cpu-ms']),
  proxies: values.proxies.split(','),
  configs: values.configs.split(','),
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function which(name) {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
  if (!found) throw new Error(`${name} is needed (Debian: apt-get install nginx haproxy wrk)`);
  return found;
}

function start(command, args, env = {}) {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  children.add(child);
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  child.once('exit', () => children.delete(child));
  return { child, output: () => output };
}

async function stop({ child }, graceMs = 5_000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

function connects(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, HOST);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function waitFor(what, check, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`${what} not within ${ms} ms`);
}

// Each worker's requests served so far, from the files the app writes (pid -> count).
function readCounts(dir) {
  const counts = new Map();
  for (const name of fs.readdirSync(dir)) if (/^\d+$/.test(name)) counts.set(Number(name), Number(fs.readFileSync(path.join(dir, name), 'utf8')) || 0);
  return counts;
}

async function startApp(config, port, countsDir, pidFile) {
  const env = { BALANCE_PORT: String(port), BALANCE_WORKERS: String(settings.workers), BALANCE_CPU_MS: String(settings.cpuMs), BALANCE_COUNTS: countsDir };
  const app =
    config === 'round-robin'
      ? start(process.execPath, [APP], { ...env, BALANCE_RR: '1' })
      : start(
          process.execPath,
          [CLI, 'start', '--workers', String(settings.workers), '--pid-file', pidFile, ...(config === 'reuseport' ? ['--no-balance'] : []), APP],
          env,
        );
  await waitFor(`${config} on port ${port}`, async () => readCounts(countsDir).size >= settings.workers && (await connects(port)));
  return app;
}

async function startProxy(proxy, dir, listen, upstream) {
  const config = proxyConfig(proxy, { dir, listen, upstream, keepalive: settings.keepalive });
  fs.writeFileSync(config.file, config.text);
  const handle = start(which(proxy), config.args);
  await waitFor(`${proxy} on port ${listen}`, () => connects(listen));
  return handle;
}

/** Reads wrk's report (with --latency): req/s, requests, non-2xx, socket errors, p50/p99 in ms. */
export function parseWrk(text) {
  const ms = (value, unit) => Number(value) * ({ us: 0.001, ms: 1, s: 1000 }[unit] ?? Number.NaN);
  const latency = (p) => {
    const match = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(text);
    return match ? ms(match[1], match[2]) : undefined;
  };
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  return {
    reqPerSec: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? Number.NaN),
    requests: Number(/(\d+) requests in/.exec(text)?.[1] ?? Number.NaN),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0),
    socketErrors: errors ? errors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
    p50Ms: latency(50),
    p99Ms: latency(99),
  };
}

function runnerStatus(pidFile) {
  const result = spawnSync(process.execPath, [CLI, 'status', '--pid-file', pidFile, '--json'], { encoding: 'utf8', timeout: 10_000 });
  try {
    const report = JSON.parse(result.stdout);
    return { balance: report.balance, slots: report.slots.map(({ connections, shed, accepted }) => ({ connections, shed, accepted })) };
  } catch {
    return { error: result.stderr.trim() || result.stdout.trim() };
  }
}

function runWrk(port) {
  const result = spawnSync(which('wrk'), ['-t1', `-c${settings.connections}`, `-d${settings.durationSec}s`, '--latency', `http://${HOST}:${port}/`], {
    encoding: 'utf8',
    timeout: (settings.durationSec + 20) * 1000,
  });
  if (result.status !== 0) throw new Error(`wrk failed: ${result.stderr}`);
  return parseWrk(result.stdout);
}

async function runOnce(proxy, config) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-balance-'));
  const countsDir = path.join(dir, 'counts');
  fs.mkdirSync(countsDir);
  const appPort = await freePort();
  const proxyPort = await freePort();
  const pidFile = path.join(dir, 'runner.pid');
  const app = await startApp(config, appPort, countsDir, pidFile);
  let proxied;
  try {
    proxied = await startProxy(proxy, dir, proxyPort, appPort);
    const before = readCounts(countsDir);
    const wrk = runWrk(proxyPort);
    // The runner's own view (balanced or not): per slot open connections and connections shed.
    const status = config === 'round-robin' ? undefined : runnerStatus(pidFile);
    await sleep(300);
    const after = readCounts(countsDir);
    const perWorker = [...after].map(([pid, count]) => count - (before.get(pid) ?? 0)).sort((a, b) => a - b);
    const log = proxy === 'nginx' && fs.existsSync(path.join(dir, 'error.log')) ? fs.readFileSync(path.join(dir, 'error.log'), 'utf8') : '';
    const upstreamErrors = log.split('\n').filter((line) => /upstream/.test(line)).length;
    const least = perWorker[0] ?? 0;
    return {
      proxy,
      config,
      perWorker,
      ...(status ? { runner: status } : {}),
      maxMin: least > 0 ? Number(((perWorker.at(-1) ?? 0) / least).toFixed(2)) : null,
      ...wrk,
      upstreamErrors,
    };
  } finally {
    if (proxied) await stop(proxied);
    await stop(app, 15_000);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const runs = [];
for (const proxy of settings.proxies) {
  for (let round = 1; round <= settings.rounds; round += 1) {
    for (const config of settings.configs) {
      const run = { round, ...(await runOnce(proxy, config)) };
      runs.push(run);
      console.log(
        `${proxy} round ${round} ${config}: ${run.perWorker.join(' / ')} requests (max/min ${run.maxMin ?? '-'}), ${run.reqPerSec} req/s, ` +
          `p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms, non-2xx ${run.non2xx}, socket errors ${run.socketErrors}, upstream errors ${run.upstreamErrors}` +
          (run.runner ? `; runner: ${JSON.stringify(run.runner)}` : ''),
      );
    }
  }
}

const summary = [];
for (const proxy of settings.proxies) {
  for (const config of settings.configs) {
    const mine = runs.filter((run) => run.proxy === proxy && run.config === config);
    const rr = runs.filter((run) => run.proxy === proxy && run.config === 'round-robin');
    summary.push({
      proxy,
      config,
      medianReqPerSec: median(mine.map((run) => run.reqPerSec)),
      // Per round, against round-robin in the same round.
      vsRoundRobin: rr.length ? mine.map((run) => Number((run.reqPerSec / (rr.find((r) => r.round === run.round)?.reqPerSec ?? Number.NaN)).toFixed(2))) : [],
      worstMaxMin: mine.some((run) => run.maxMin === null) ? null : Math.max(...mine.map((run) => run.maxMin)),
      non2xx: mine.reduce((sum, run) => sum + run.non2xx, 0),
      socketErrors: mine.reduce((sum, run) => sum + run.socketErrors, 0),
      upstreamErrors: mine.reduce((sum, run) => sum + run.upstreamErrors, 0),
    });
  }
}
const figures = { when: new Date().toISOString(), node: process.version, cpus: os.availableParallelism(), settings, runs, summary };
fs.writeFileSync(values.out, `${JSON.stringify(figures, null, 2)}\n`);
console.log(`\n| proxy | config | per round: requests per worker (max/min) | req/s | vs round-robin | non-2xx, socket errors, upstream errors |`);
console.log('|---|---|---|---|---|---|');
for (const row of summary) {
  const mine = runs.filter((run) => run.proxy === row.proxy && run.config === row.config);
  console.log(
    `| ${row.proxy} | ${row.config} | ${mine.map((run) => `${run.perWorker.join('/')} (${run.maxMin ?? '∞'})`).join('; ')} | ${mine.map((run) => Math.round(run.reqPerSec)).join(', ')} | ${row.vsRoundRobin.join(', ')} | ${row.non2xx}, ${row.socketErrors}, ${row.upstreamErrors} |`,
  );
}
console.log(`\nfigures: ${values.out}`);
