// The health server on a non-loopback address, run inside a network namespace the test made (ADDRESS
// added to its lo, see test/health-control.test.ts): `reuseport start --health-host
// 0.0.0.0`, then what a client on the network gets from ADDRESS:<health port>, and what the CLI gets
// through the runner's loopback control listener (status by pid and by health port, upgrade, stop).
// Prints one JSON line; every process it started is killed at the end.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { killSeen, see, sleep } = require('./processes');

const { address } = JSON.parse(process.argv[2]);
const cli = path.join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const app = path.join(__dirname, '..', 'fixtures', 'runner-app.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-health-split-'));
const pidFile = path.join(dir, 'app.pid');

function get(host, port, pathname) {
  return new Promise((resolve) => {
    const request = http.get({ host, port, path: pathname, agent: false, timeout: 5_000 }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode, body }));
    });
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', (error) => resolve({ status: 0, body: error.message }));
  });
}

function runCli(args) {
  const result = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function main() {
  const health = 18_700;
  const runner = spawn(
    process.execPath,
    [cli, 'start', app, '-i', '1', '--health-host', '0.0.0.0', '--health-port', String(health), '--pid-file', pidFile, '--json'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PORT: '18080' },
    },
  );
  see(runner.pid);
  let out = '';
  runner.stdout.setEncoding('utf8').on('data', (chunk) => (out += chunk));
  runner.stderr.setEncoding('utf8').on('data', (chunk) => (out += chunk));
  const deadline = Date.now() + 20_000;
  while (!out.includes('"event":"ready"') && Date.now() < deadline) await sleep(20);
  if (!out.includes('"event":"ready"')) throw new Error(`the runner is not ready: ${out}`);
  const report = { network: {}, loopbackPublic: {} };
  for (const pathname of ['/live', '/ready', '/metrics', '/status', '/exit']) {
    const { status, body } = await get(address, health, pathname);
    report.network[pathname] = { status, pid: /"pid":(\d+)/.test(body) };
    report.loopbackPublic[pathname] = (await get('127.0.0.1', health, pathname)).status;
  }
  const byPid = runCli(['status', '--pid-file', pidFile, '--json']);
  report.statusByPid = { code: byPid.code, pid: byPid.code === 0 ? JSON.parse(byPid.stdout).pid : byPid.stderr };
  const byPort = runCli(['status', '--health-port', String(health), '--json']);
  report.statusByPort = { code: byPort.code, pid: byPort.code === 0 ? JSON.parse(byPort.stdout).pid : byPort.stderr };
  report.runner = runner.pid;
  const upgrade = runCli(['upgrade', '--pid-file', pidFile, '--json']);
  const upgraded = upgrade.code === 0 ? JSON.parse(upgrade.stdout) : undefined;
  if (upgraded) see(upgraded.to);
  report.upgrade = { code: upgrade.code, from: upgraded?.from, to: upgraded?.to, error: upgrade.code === 0 ? undefined : upgrade.stdout + upgrade.stderr };
  report.afterUpgrade = { status: (await get(address, health, '/status')).status, live: (await get(address, health, '/live')).status };
  const stop = runCli(['stop', '--pid-file', pidFile, '--json']);
  report.stop = { code: stop.code, stopped: stop.code === 0 ? JSON.parse(stop.stdout).pid : stop.stdout + stop.stderr };
  return report;
}

main().then(
  (report) => {
    killSeen();
    fs.rmSync(dir, { recursive: true, force: true });
    console.log(JSON.stringify(report));
  },
  (error) => {
    killSeen();
    fs.rmSync(dir, { recursive: true, force: true });
    console.error(error.stack);
    process.exit(1);
  },
);
