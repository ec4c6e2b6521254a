// Deploys by a process manager under load, run inside a network namespace the test made (see
// test/helpers/netns.ts): an open-loop client sends new connections while the manager reloads or
// upgrades the app (test/scenarios/managed-app.js, 2 instances). argv[2] is the JSON config; prints
// one JSON line with what the client saw and how long each deploy took.
//   manager 'runner': `reuseport start --workers 2 --json --pid-file F managed-app.js`;
//                     action 'reload' = SIGHUP (workers replaced), 'upgrade' = SIGUSR2 (runner replaced)
//   manager 'pm2':    real PM2 (the devDependency) with its own PM2_HOME: `pm2 start managed-app.js -i 2`,
//                     then `pm2 reload app`; listen 'reuseport' (listenReusePort), 'plain' (server.listen)
//                     or 'hook' (server.listen, with --node-args="--require reuseport/register")
// keepAlive: true sends pooled keep-alive requests (pooled-clients.js: undici Pool 8 + http.Agent 8)
// instead of the open-loop new connections.
// Every process started (the runner and its successors, PM2's daemon and its apps) is killed by pid at
// the end, only while it is still the same process.
'use strict';
const { once } = require('./messages');
const { gone, killSeen, lineLog, readLines, see, sleep } = require('./processes');
const { execFile, fork, spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const config = {
  manager: 'runner',
  action: 'reload',
  listen: 'reuseport',
  deploys: 3,
  rate: 1000,
  port: 8000,
  // The load runs this long per deploy (a deploy that takes longer still ends before the load does).
  perDeployMs: 3000,
  pauseMs: 500,
  ...JSON.parse(process.argv[2] ?? '{}'),
};
const root = path.join(__dirname, '..', '..');
const app = path.join(__dirname, 'managed-app.js');
const migrate = Number(fs.readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim());
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-managers-'));
const appListen = config.listen === 'hook' ? 'plain' : config.listen;
const env = { ...process.env, SCENARIO_PORT: String(config.port), SCENARIO_LISTEN: appListen, PM2_HOME: path.join(scratch, 'pm2') };
const hookArgs = config.listen === 'hook' ? ['--node-args', `--require ${path.join(root, 'dist', 'register', 'index.js')}`] : [];

// Resolves once the port answers (bounded).
async function answering(timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const request = http.get({ host: '127.0.0.1', port: config.port, agent: false, timeout: 1000 }, (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode === 200));
      });
      request.on('error', () => resolve(false));
      request.on('timeout', () => request.destroy());
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${config.port} did not answer within ${timeoutMs} ms`);
    await sleep(50);
  }
}

// ---- reuseport start ----
const log = lineLog();
const events = log.lines;
const next = log.next;
const pidFile = path.join(scratch, 'app.pid');
function startRunner() {
  const cli = path.join(root, 'dist', 'cli', 'main.js');
  const child = spawn(process.execPath, [cli, 'start', '--workers', '2', '--json', '--pid-file', pidFile, app], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  see(child.pid);
  readLines(child.stdout, (event) => {
    for (const pid of [
      event.pid,
      event.to,
      ...String(event.workers ?? '')
        .split(',')
        .map(Number),
    ])
      see(pid);
    log.push(event);
  });
  return child;
}
const runner = {
  async start() {
    const child = startRunner();
    return next((event) => event.event === 'ready' && event.pid === child.pid);
  },
  async deploy(current) {
    const since = events.length;
    if (config.action === 'reload') {
      process.kill(current.pid, 'SIGHUP');
      await next((event) => event.event === 'reload', since);
      return current;
    }
    process.kill(current.pid, 'SIGUSR2');
    const upgrade = await next((event) => event.event === 'upgrade' && event.from === current.pid, since);
    const ready = await next((event) => event.event === 'ready' && event.pid === upgrade.to, since);
    await gone([current.pid, ...String(current.workers).split(',').map(Number)]);
    return ready;
  },
  async stop(current, out) {
    out.pidFileNamed = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8')) : null;
    const since = events.length;
    process.kill(current.pid, 'SIGTERM');
    await next((event) => event.event === 'shutdown', since);
    await gone([current.pid, ...String(current.workers).split(',').map(Number)]);
    out.pidFileAfterExit = fs.existsSync(pidFile);
  },
};

// ---- PM2 ----
const pm2Bin = require.resolve('pm2/bin/pm2');
function pm2(...args) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [pm2Bin, ...args], { env, timeout: 60_000, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      if (error) reject(new Error(`pm2 ${args.join(' ')}: ${error.message} ${stderr}`));
      else resolve(stdout);
    });
  });
}
async function pm2Pids() {
  const list = JSON.parse(await pm2('jlist'));
  const pids = list.map((entry) => entry.pid).filter((pid) => pid > 0);
  pids.forEach(see);
  return pids;
}
function seeDaemon() {
  try {
    see(Number(fs.readFileSync(path.join(env.PM2_HOME, 'pm2.pid'), 'utf8')));
  } catch {
    // not started
  }
}
const pm2Manager = {
  async start() {
    try {
      await pm2('start', app, '-i', '2', '--name', 'app', ...hookArgs);
    } finally {
      seeDaemon();
    }
    await answering();
    return { pids: await pm2Pids() };
  },
  async deploy() {
    await pm2('reload', 'app');
    return { pids: await pm2Pids() };
  },
  async stop() {
    seeDaemon();
    await pm2('kill').catch(() => undefined);
  },
};

async function main() {
  const manager = config.manager === 'pm2' ? pm2Manager : runner;
  const out = { config, migrate, deployMs: [] };
  const client = fork(path.join(__dirname, config.keepAlive ? 'pooled-clients.js' : 'load-child.js'));
  try {
    let current = await manager.start();
    let result;
    if (config.keepAlive) {
      client.send({ type: 'start', port: config.port });
      await once(client, 'started');
      result = once(client, 'result', 120_000);
    } else {
      const durationMs = 1000 + config.deploys * (config.perDeployMs + config.pauseMs);
      client.send({ type: 'open', options: { port: config.port, rate: config.rate, durationMs } });
      result = once(client, 'result', durationMs + 60_000);
    }
    await sleep(1000);
    for (let i = 0; i < config.deploys; i++) {
      const started = Date.now();
      current = await manager.deploy(current);
      out.deployMs.push(Date.now() - started);
      await sleep(config.pauseMs);
    }
    if (config.keepAlive) client.send({ type: 'stop' });
    out.load = (await result).result;
    out.finalPid = current.pid;
    await manager.stop(current, out);
  } finally {
    client.kill('SIGKILL');
    killSeen();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  killSeen();
  fs.rmSync(scratch, { recursive: true, force: true });
  process.exit(1);
});
