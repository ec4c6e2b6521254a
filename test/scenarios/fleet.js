// A rolling deploy of two hosts behind a real HAProxy (Debian's package), inside a network namespace
// the test made: each host is a supervisor on an address of its own (127.0.0.2, 127.0.0.3); HAProxy
// balances 127.0.0.1:8000 over them with `retries 0` (it retries nothing, as kube-proxy does) and
// checks either GET /ready on the supervisors' health servers or, for comparison, TCP connects to
// the service port. An open-loop client sends `rate` new connections/s through HAProxy while each
// host in turn gets SIGTERM, exits, is started again and is back in HAProxy's pool.
// argv[2]: { check: 'ready' | 'tcp', rate, delayMs }. Prints one JSON line.
'use strict';
const { once } = require('./messages');
const { fork, spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const config = { check: 'ready', rate: 500, delayMs: 1000, ...JSON.parse(process.argv[2] ?? '{}') };
const hosts = [
  { name: 'a', address: '127.0.0.2' },
  { name: 'b', address: '127.0.0.3' },
];
const SERVICE_PORT = 8080;
const HEALTH_PORT = 8081;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-fleet-'));
const stats = path.join(dir, 'haproxy.sock');
const started = [];

function haproxyConfig() {
  const checks =
    config.check === 'ready'
      ? [
          '  option httpchk GET /ready',
          '  http-check expect status 200',
          ...hosts.map((h) => `  server ${h.name} ${h.address}:${SERVICE_PORT} check port ${HEALTH_PORT}`),
        ]
      : hosts.map((h) => `  server ${h.name} ${h.address}:${SERVICE_PORT} check`);
  return [
    'global',
    '  maxconn 4000',
    `  stats socket ${stats} level admin`,
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 10s',
    '  timeout server 10s',
    '  retries 0',
    '  option http-server-close',
    '  http-reuse never',
    'frontend fe',
    '  bind 127.0.0.1:8000',
    '  default_backend be',
    'backend be',
    '  balance roundrobin',
    '  default-server inter 100 fall 1 rise 2',
    ...checks,
    '',
  ].join('\n');
}

// HAProxy's view of each server: UP, DOWN, MAINT..., from `show stat` on its stats socket.
function serverStates() {
  return new Promise((resolve, reject) => {
    const socket = net.connect(stats);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write('show stat\n'));
    socket.on('data', (chunk) => {
      text += chunk;
    });
    socket.on('end', () => {
      const rows = text
        .trim()
        .split('\n')
        .map((line) => line.split(','));
      const header = (rows[0] ?? []).map((field) => field.replace(/^# /, ''));
      const at = (name) => header.indexOf(name);
      const states = {};
      for (const row of rows.slice(1))
        if (row[at('pxname')] === 'be' && hosts.some((h) => h.name === row[at('svname')])) states[row[at('svname')]] = row[at('status')];
      resolve(states);
    });
    socket.on('error', reject);
  });
}

async function until(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(20);
  }
}

function startHost(host) {
  const child = spawn(process.execPath, [path.join(__dirname, 'host.js')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      SCENARIO_HOST: host.address,
      SCENARIO_PORT: String(SERVICE_PORT),
      SCENARIO_HEALTH_PORT: config.check === 'ready' ? String(HEALTH_PORT) : '',
      SCENARIO_DELAY_MS: String(config.check === 'ready' ? config.delayMs : 0),
    },
  });
  started.push(child);
  host.child = child;
  host.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      text += chunk;
      if (!text.includes('\n')) return;
      const line = JSON.parse(text.split('\n')[0]);
      if (!line.ready) return reject(new Error(`host ${host.name}: ${line.error}`));
      for (const pid of line.pids) started.push({ pid, kill: (signal) => process.kill(pid, signal) });
      resolve(line);
    });
    child.once('exit', (code) => reject(new Error(`host ${host.name} exited (${code}) before serving`)));
  });
}

// How long after SIGTERM the host's /ready first answers 503 (polled as fast as loopback allows).
async function readyFailsAfter(host, signalledAt) {
  if (config.check !== 'ready') return undefined;
  const deadline = signalledAt + 5_000;
  while (Date.now() < deadline) {
    const status = await new Promise((resolve) => {
      const request = http.get({ host: host.address, port: HEALTH_PORT, path: '/ready', agent: false, timeout: 1_000 }, (response) => {
        response.resume();
        resolve(response.statusCode);
      });
      request.on('error', () => resolve(0));
      request.on('timeout', () => request.destroy());
    });
    if (status === 503) return Date.now() - signalledAt;
  }
  return undefined;
}

async function main() {
  for (const host of hosts) spawnSync('ip', ['addr', 'add', `${host.address}/8`, 'dev', 'lo']);
  fs.writeFileSync(path.join(dir, 'haproxy.cfg'), haproxyConfig());
  for (const host of hosts) await startHost(host);
  const haproxy = spawn('haproxy', ['-f', path.join(dir, 'haproxy.cfg'), '-db'], { stdio: ['ignore', 'ignore', 'inherit'] });
  started.push(haproxy);
  await until(
    async () => fs.existsSync(stats) && Object.values(await serverStates()).filter((s) => s === 'UP').length === 2,
    20_000,
    'both hosts UP in HAProxy',
  ).catch(async (error) => {
    throw new Error(`${error.message}: ${fs.existsSync(stats) ? JSON.stringify(await serverStates()) : 'no stats socket'}`);
  });
  const out = { config, before: await serverStates(), hosts: [] };
  const client = fork(path.join(__dirname, 'load-child.js'));
  started.push(client);
  const durationMs = 14_000;
  client.send({ type: 'open', options: { port: 8000, rate: config.rate, durationMs } });
  const result = once(client, 'result', durationMs + 60_000);
  const begun = Date.now();
  await sleep(1_000);
  for (const host of hosts) {
    const signalledAt = Date.now();
    host.child.kill('SIGTERM');
    const readyFailedMs = await readyFailsAfter(host, signalledAt);
    const exit = await host.exited;
    const stoppedMs = Date.now() - signalledAt;
    await startHost(host);
    await until(async () => (await serverStates())[host.name] === 'UP', 20_000, `${host.name} back UP`);
    out.hosts.push({ name: host.name, exit, readyFailedMs, stoppedMs, backUpMs: Date.now() - signalledAt });
    await sleep(500);
  }
  out.deployMs = Date.now() - begun;
  out.load = (await result).result;
  out.after = await serverStates();
  // Both hosts serve after the deploy, each on its own address.
  out.servedAfter = {};
  for (const host of hosts) {
    out.servedAfter[host.name] = await new Promise((resolve) => {
      http
        .get({ host: host.address, port: SERVICE_PORT, path: '/', agent: false, timeout: 2_000 }, (response) => {
          response.resume();
          resolve(response.statusCode === 200);
        })
        .on('error', () => resolve(false));
    });
  }
  return out;
}

// Kills everything this scenario started, by pid, and waits for its children to be reaped (a child
// left unreaped would stay a zombie once this process exits).
async function stopAll() {
  const waits = started.map((child) =>
    typeof child.once === 'function' && child.exitCode === null && child.signalCode === null
      ? new Promise((resolve) => {
          child.once('exit', resolve);
          setTimeout(resolve, 5_000).unref();
        })
      : Promise.resolve(),
  );
  for (const child of started) {
    try {
      child.kill('SIGKILL');
    } catch {
      // gone
    }
  }
  await Promise.all(waits);
  fs.rmSync(dir, { recursive: true, force: true });
}

main().then(
  async (out) => {
    await stopAll();
    process.stdout.write(`${JSON.stringify(out)}\n`);
    process.exit(0);
  },
  async (error) => {
    console.error(error);
    await stopAll();
    process.exit(1);
  },
);
