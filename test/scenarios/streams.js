// Long-lived and encrypted traffic across reloads and upgrades, run inside a network namespace the test
// made (see test/helpers/netns.ts): the service (test/scenarios/stream-service.js: a supervisor and its
// workers) is reloaded (SIGHUP) and upgraded in place (SIGUSR2) while real clients in another process
// keep it busy. argv[2] is the JSON config; prints one JSON line with what the clients saw, each
// reload's result (how long, what its drains cut) and what each old worker's app held at its drain.
//   app 'https':               test/scenarios/worker.js over TLS; pooled-clients.js (undici Pool 8 + https.Agent 8)
//   app 'h2' / 'h2c':          stream-app.js; h2-clients.js (node:http2: new session on GOAWAY, a refused stream retried once)
//   app 'ws-close' / 'ws-ignore': stream-app.js; ws-clients.js (ws, an echo every 100 ms, reconnecting)
//   app 'sse':                 stream-app.js; sse-clients.js (http.Agent + undici: short streams, and long ones the app ends on the drain)
'use strict';
const { once } = require('./messages');
const { gone, killSeen, lineLog, readLines, see, sleep } = require('./processes');
const { fork, spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const config = {
  app: 'https',
  workers: 2,
  reloads: 3,
  upgrades: 0,
  drainTimeoutMs: 5_000,
  port: 8000,
  // Between deploys (the load runs on).
  pauseMs: 300,
  // Given to the client process with 'start' (ws: count, everyMs; h2: sessions, lanes; sse: lanes, longPerClient, n, every).
  client: {},
  ...JSON.parse(process.argv[2] ?? '{}'),
};
const migrate = Number(fs.readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim());
const log = lineLog();
const { lines, next } = log;

const clients = {
  https: 'pooled-clients.js',
  h2: 'h2-clients.js',
  h2c: 'h2-clients.js',
  'ws-close': 'ws-clients.js',
  'ws-ignore': 'ws-clients.js',
  sse: 'sse-clients.js',
};
const websockets = config.app.startsWith('ws-');

function startService() {
  const child = spawn(process.execPath, [path.join(__dirname, 'stream-service.js')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      SCENARIO_EXEC: config.app === 'https' ? 'worker.js' : 'stream-app.js',
      SCENARIO_APP: config.app,
      SCENARIO_TLS: config.app === 'https' ? '1' : '0',
      SCENARIO_PORT: String(config.port),
      SCENARIO_WORKERS: String(config.workers),
      SCENARIO_DRAIN_MS: String(config.drainTimeoutMs),
    },
  });
  see(child.pid);
  readLines(child.stdout, (line) => {
    see(line.pid);
    see(line.successor);
    for (const pid of line.pids ?? []) see(pid);
    log.push(line);
  });
  return child;
}

// Websocket clients: waits (bounded) until all of them are connected again.
async function settled(client) {
  if (!websockets) return undefined;
  const deadline = Date.now() + 15_000;
  for (;;) {
    client.send({ type: 'status' });
    const { open } = await once(client, 'status');
    if (open >= (config.client.count ?? 40) || Date.now() > deadline) return open;
    await sleep(50);
  }
}

// What each old worker's app reported at its drain (stream-app.js), for the pids given.
const drainsOf = (pids, since) => lines.slice(since).filter((line) => line.app === 'drain' && pids.includes(line.pid));

async function reload(current) {
  const since = lines.length;
  const oldPids = current.pids;
  process.kill(current.pid, 'SIGHUP');
  const line = await next((l) => (l.gen === 'reload' || l.gen === 'reload-failed') && l.pid === current.pid, since, 60_000);
  if (line.gen === 'reload-failed') throw new Error(`reload failed: ${line.error}`);
  // Every old worker is gone by the time reload() resolves, so their drain lines were read before it.
  const drains = drainsOf(oldPids, since);
  return { next: { ...current, pids: line.pids }, record: { ms: line.ms, cut: line.cut, killed: line.killed, old: line.old, pids: line.pids, drains } };
}

async function upgrade(current) {
  const started = Date.now();
  const since = lines.length;
  const oldPids = [current.pid, ...current.pids];
  process.kill(current.pid, 'SIGUSR2');
  const announced = await next((line) => (line.gen === 'upgrade' || line.gen === 'upgrade-failed') && line.pid === current.pid, since, 60_000);
  if (announced.gen === 'upgrade-failed') throw new Error(`upgrade failed: ${announced.error}`);
  const ready = await next((line) => line.gen === 'ready' && line.pid === announced.successor, since, 60_000);
  await gone(oldPids, 30_000);
  return { next: ready, record: { ms: Date.now() - started, successor: ready.pid, drains: drainsOf(current.pids, since) } };
}

async function main() {
  const out = { config, migrate, reloads: [], upgrades: [] };
  const first = startService();
  let current = await next((line) => line.gen === 'ready' && line.pid === first.pid, 0, 60_000);
  const client = fork(path.join(__dirname, clients[config.app]));
  try {
    client.send({ type: 'start', port: config.port, tls: config.app === 'https' || config.app === 'h2', ...config.client });
    await once(client, 'started');
    out.openBefore = await settled(client);
    await sleep(500);
    const steps = [...Array.from({ length: config.reloads }, () => reload), ...Array.from({ length: config.upgrades }, () => upgrade)];
    for (const step of steps) {
      const { next: after, record } = await step(current);
      current = after;
      (step === reload ? out.reloads : out.upgrades).push(record);
      record.openAfter = await settled(client);
      await sleep(config.pauseMs);
    }
    client.send({ type: 'stop' });
    out.load = (await once(client, 'result', 30_000)).result;
    // The last generation drains and exits on SIGTERM (startCluster's own shutdown), bounded.
    process.kill(current.pid, 'SIGTERM');
    await gone([current.pid, ...current.pids], config.drainTimeoutMs + 15_000);
  } finally {
    client.kill('SIGKILL');
    killSeen();
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  killSeen();
  process.exit(1);
});
