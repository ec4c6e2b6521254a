// One whole-service deploy under load, run inside a network namespace the test made (see
// test/helpers/netns.ts): the service (test/scenarios/service.js, supervisor and workers) is replaced
// while an open-loop client sends new connections, or pooled keep-alive clients send requests.
// argv[2] is the JSON config; prints one JSON line with what the clients saw.
//   way 'upgrade':  SIGUSR2, the successor adopts the same sockets (the library's upgrade in place)
//   way 'broken':   SIGUSR2 with a successor that exits at once (the old one must keep serving)
//   way 'restart':  SIGTERM, wait for the exit, start a new service (what a plain restart does)
//   way 'overlap':  start a new service first (new sockets), then SIGTERM the old one
//   way 'systemd':  the service under test/fixtures/systemd-harness.py (systemd's fd-store protocol,
//                   Type=notify, KillMode=mixed): `systemctl restart` = SIGTERM, wait, start with the
//                   stored sockets (LISTEN_FDS)
'use strict';
const { once } = require('./messages');
const { gone, killSeen, lineLog, readLines, see, sleep } = require('./processes');
const { fork, spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const config = {
  way: 'upgrade',
  // A count, or a list for an upgrade chain ([3, 1, 3]: 3 workers, upgraded to 1, then to 3).
  workers: 2,
  deploys: 3,
  rate: 1000,
  port: 8000,
  keepAlive: false,
  // Between deploys (the load runs on).
  pauseMs: 500,
  ...JSON.parse(process.argv[2] ?? '{}'),
};
const migrate = Number(fs.readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim());
// Every generation's lines, and the harness's events as { harness: event }.
const log = lineLog();
const { lines } = log;
const next = log.next;

// Starts a service generation; its lines (and its successors') are collected.
function startService(env = {}) {
  const child = spawn(process.execPath, [path.join(__dirname, 'service.js')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, SCENARIO_PORT: String(config.port), SCENARIO_WORKERS: [config.workers].flat().join(','), ...env },
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

// One deploy; resolves with the new generation's ready line and how long it took.
async function deploy(current) {
  const started = Date.now();
  const since = lines.length;
  if (config.way === 'systemd') {
    harness.stdin.write('restart\n');
    await next(readyNotice, since);
    return { ready: current, ms: Date.now() - started };
  }
  const oldPids = [current.pid, ...current.pids];
  if (config.way === 'upgrade' || config.way === 'broken') {
    process.kill(current.pid, 'SIGUSR2');
    if (config.way === 'broken') {
      await next((line) => line.gen === 'upgrade-failed' && line.pid === current.pid, since);
      return { ready: current, ms: Date.now() - started };
    }
    const upgrade = await next((line) => line.gen === 'upgrade' && line.pid === current.pid);
    const ready = await next((line) => line.gen === 'ready' && line.pid === upgrade.successor);
    await gone(oldPids);
    return { ready, ms: Date.now() - started };
  }
  if (config.way === 'restart') {
    process.kill(current.pid, 'SIGTERM');
    await gone(oldPids);
    const child = startService();
    return { ready: await next((line) => line.gen === 'ready' && line.pid === child.pid), ms: Date.now() - started };
  }
  const child = startService();
  const ready = await next((line) => line.gen === 'ready' && line.pid === child.pid);
  process.kill(current.pid, 'SIGTERM');
  await gone(oldPids);
  return { ready, ms: Date.now() - started };
}

// The service under the fd-store harness: its events (JSON lines) join `lines` as { harness: event }.
let harness;
function startHarnessed() {
  const script = path.join(__dirname, '..', 'fixtures', 'systemd-harness.py');
  harness = spawn('python3', [script, '--fdstore-max', '16', '--', process.execPath, path.join(__dirname, 'service.js')], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, SCENARIO_PORT: String(config.port), SCENARIO_WORKERS: [config.workers].flat().join(',') },
  });
  readLines(harness.stdout, (event) => {
    if (event.event === 'started') see(event.pid);
    log.push({ harness: event });
  });
}
const readyNotice = (line) => line.harness?.event === 'notify' && line.harness.fields.READY === '1';
async function harnessStatus() {
  const since = lines.length;
  harness.stdin.write('status\n');
  return (await next((line) => line.harness?.event === 'status', since)).harness;
}
const listeningInodes = () => {
  const hex = `:${config.port.toString(16).toUpperCase().padStart(4, '0')}`;
  return fs
    .readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .map((row) => row.trim().split(/\s+/))
    .filter((fields) => fields[3] === '0A' && fields[1]?.endsWith(hex))
    .map((fields) => fields[9])
    .sort();
};

async function main() {
  const out = { config, migrate, deployMs: [] };
  let current;
  if (config.way === 'systemd') {
    startHarnessed();
    harness.stdin.write('start\n');
    await next(readyNotice);
    const status = await harnessStatus();
    out.storedInodes = [...status.inodes].sort();
    current = { pids: [] };
  } else {
    const first = startService(config.way === 'broken' ? { SCENARIO_BROKEN_SUCCESSOR: 'exit' } : {});
    current = await next((line) => line.gen === 'ready' && line.pid === first.pid);
  }
  const client = fork(path.join(__dirname, config.keepAlive ? 'pooled-clients.js' : 'load-child.js'));
  try {
    let result;
    if (config.keepAlive) {
      client.send({ type: 'start', port: config.port });
      await once(client, 'started');
      result = once(client, 'result', 120_000);
    } else {
      const durationMs = 1500 + config.deploys * (2000 + config.pauseMs);
      client.send({ type: 'open', options: { port: config.port, rate: config.rate, durationMs } });
      result = once(client, 'result', durationMs + 60_000);
    }
    await sleep(1000);
    for (let i = 0; i < config.deploys; i++) {
      const { ready, ms } = await deploy(current);
      current = ready;
      out.deployMs.push(ms);
      await sleep(config.pauseMs);
    }
    if (config.keepAlive) client.send({ type: 'stop' });
    out.load = (await result).result;
    out.finalPid = current.pid;
    out.reasons = current.reasons;
    if (harness) {
      out.finalInodes = [...(await harnessStatus()).inodes].sort();
      out.listeningInodes = listeningInodes();
    }
  } finally {
    client.kill('SIGKILL');
    if (harness) {
      harness.stdin.write('quit\n');
      await Promise.race([new Promise((resolve) => harness.once('exit', resolve)), sleep(15_000)]);
      harness.kill('SIGKILL');
    }
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
