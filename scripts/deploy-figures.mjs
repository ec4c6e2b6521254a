// Runs every whole-service deploy scenario several times, each in its own network namespace (root, or
// user namespaces), and writes the "Whole-service deploys" section of docs/reloads.md: what a client
// loses when the supervisor itself is replaced, by each way of doing it.
// Usage: node scripts/deploy-figures.mjs [--runs N] [--out docs/reloads.md]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, out: { type: 'string', default: path.join(root, 'docs', 'reloads.md') } } });
const runs = Number(values.runs);
const namespace = process.getuid() === 0 ? ['unshare', '--net'] : ['unshare', '--user', '--map-root-user', '--net'];
export const HEADING = '## Whole-service deploys';

// config.scenario: the runner in test/scenarios (deploy.js, or managers.js for PM2 and `reuseport start`).
function scenario({ scenario: file = 'deploy.js', ...config }) {
  const script = 'ip link set lo up && echo 0 > /proc/sys/net/ipv4/tcp_migrate_req && exec "$0" "$@"';
  const run = path.join(root, 'test', 'scenarios', file);
  const [command, ...prefix] = namespace;
  const result = spawnSync(command, [...prefix, '--', 'sh', '-c', script, process.execPath, run, JSON.stringify(config)], {
    encoding: 'utf8',
    timeout: 180_000,
    killSignal: 'SIGKILL',
  });
  if (result.status !== 0) throw new Error(`scenario ${JSON.stringify(config)} failed: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').at(-1));
}

const cases = [
  ['3 deploys, 2 workers, 1000 new conn/s', 'stop, then start (a plain restart)', { way: 'restart' }],
  ['3 deploys, 2 workers, 1000 new conn/s', 'start the new service, then stop the old', { way: 'overlap' }],
  ['3 deploys, 2 workers, 1000 new conn/s', 'upgrade() (SIGUSR2): the same sockets handed over', { way: 'upgrade' }],
  ['2 deploys, 3 -> 1 -> 3 workers, 1000 new conn/s', 'upgrade() (SIGUSR2)', { way: 'upgrade', workers: [3, 1, 3], deploys: 2, pauseMs: 3000 }],
  ['3 deploys, 2 workers, 1000 new conn/s', 'upgrade() to a successor that exits at once', { way: 'broken' }],
  ['3 deploys, 2 workers, 1000 new conn/s', 'systemctl restart with the fd store (harness)', { way: 'systemd' }],
  ['2 deploys, 2 workers, keep-alive: 8 http.Agent + 8 undici lanes', 'upgrade() (SIGUSR2)', { way: 'upgrade', deploys: 2, keepAlive: true }],
  ['3 deploys, 2 workers, 1000 new conn/s', '`reuseport start`, SIGHUP (reload)', { scenario: 'managers.js', manager: 'runner', action: 'reload' }],
  ['3 deploys, 2 workers, 1000 new conn/s', '`reuseport start`, SIGUSR2 (upgrade)', { scenario: 'managers.js', manager: 'runner', action: 'upgrade' }],
  [
    '3 deploys, 2 instances, 800 new conn/s',
    '`pm2 reload`, the app on `server.listen` (PM2 7 cluster mode)',
    { scenario: 'managers.js', manager: 'pm2', listen: 'plain', rate: 800 },
  ],
  [
    '3 deploys, 2 instances, 800 new conn/s',
    '`pm2 reload`, the app on `listenReusePort`',
    { scenario: 'managers.js', manager: 'pm2', listen: 'reuseport', rate: 800 },
  ],
];

const range = (numbers) => {
  const min = Math.min(...numbers);
  const max = Math.max(...numbers);
  return min === max ? String(min) : `${min}-${max}`;
};
const rows = [];
for (const [what, how, config] of cases) {
  const reports = [];
  for (let i = 0; i < runs; i++) {
    process.stderr.write(`${what} / ${how}: run ${i + 1} of ${runs}\n`);
    reports.push(scenario(config));
  }
  rows.push({ what, how, reports });
}

const lines = [
  HEADING,
  '',
  `Measured by \`node scripts/deploy-figures.mjs --runs ${runs}\` on ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} cores, Linux ${os.release()}, Node ${process.version}.`,
  'The whole service (a supervisor and its workers, `test/scenarios/service.js`) is replaced while a client in another',
  'process opens a new TCP connection for every request at a fixed rate (open loop), or keeps pooled keep-alive',
  'connections busy. Each run is its own network namespace with `net.ipv4.tcp_migrate_req=0` (the default). The',
  'scenarios are `test/scenarios/deploy.js` and, for the runner and PM2, `test/scenarios/managers.js`; `npm run test:load`',
  'asserts the upgrade, runner and PM2-with-listenReusePort rows.',
  '',
  '| deploys | how | requests | failed (per run) | over 500 ms (per run) | p99 ms | each deploy, ms |',
  '|---|---|---:|---|---|---|---|',
];
for (const { what, how, reports } of rows) {
  const errors = [...new Set(reports.flatMap((r) => Object.keys(r.load.errors)))].join(' ');
  lines.push(
    `| ${what} | ${how} | ${range(reports.map((r) => r.load.sent))} | ${reports.map((r) => r.load.failed).join(', ')}${errors ? ` (${errors})` : ''} | ` +
      `${reports.map((r) => r.load.over500ms).join(', ')} | ${range(reports.map((r) => Math.round(r.load.p99)))} | ${range(reports.flatMap((r) => r.deployMs))} |`,
  );
}
lines.push(
  '',
  '- **stop, then start**: what `systemctl restart` of a unit without the fd store, or a container restart, does: while',
  "  no process listens, new connections are refused, and the old sockets' queues are reset when they close.",
  '- **start the new service, then stop the old**: new sockets join the port first, so nothing is refused, but the',
  "  old sockets' queues are still reset when the old service closes them.",
  '- **systemctl restart with the fd store**: the service under `test/fixtures/systemd-harness.py`, which follows',
  "  systemd's documented protocol (systemd cannot run as PID 1 here): SIGTERM to the supervisor (KillMode=mixed), which",
  '  drains its workers and exits; the next start gets the stored sockets back with `LISTEN_FDS` and adopts them.',
  '  Connections that arrive while no process runs wait in the queues, which systemd keeps open.',
  '- **upgrade()**: the successor inherits the very same sockets (fds), so their queues are never reset; the old',
  '  workers drain as in a reload. A successor with fewer workers drains the surplus sockets before closing them.',
  '- **`reuseport start`**: the runner (`startCluster` for a script) reloading its workers, or upgrading itself; its',
  "  pid file follows the upgrade. Each deploy is timed from the signal to the `reload` event, or to the old runner's exit.",
  '- **`pm2 reload`**: real PM2 (7, the devDependency) with its own `PM2_HOME`, timed as the whole `pm2 reload app`',
  "  command. With `server.listen` PM2's daemon is the cluster primary in the accept path; with `listenReusePort` each",
  '  instance has its own socket, tells PM2 it listens (else PM2 waits out its listen timeout: 6.5 s per instance), and',
  "  closes its listener with closeListener when PM2's SIGINT comes. See [deploy.md](deploy.md#pm2).",
  '',
);

const doc = fs.existsSync(values.out) ? fs.readFileSync(values.out, 'utf8') : '';
const at = doc.indexOf(HEADING);
const before = at >= 0 ? doc.slice(0, at) : `${doc.trimEnd()}\n\n`;
fs.writeFileSync(values.out, `${before}${lines.join('\n')}`);
process.stdout.write(`${lines.join('\n')}\n`);
