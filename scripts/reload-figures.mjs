// Runs every reload, crash and stall scenario several times, each in its own network namespace (root, or
// user namespaces), and writes docs/reloads.md: what a client loses through the supervisor and without it.
// Usage: node scripts/reload-figures.mjs [--runs N] [--out docs/reloads.md]
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

function scenario(config, migrate) {
  const script = `ip link set lo up && echo ${migrate} > /proc/sys/net/ipv4/tcp_migrate_req && exec "$0" "$@"`;
  const run = path.join(root, 'test', 'scenarios', 'run.js');
  const [command, ...prefix] = namespace;
  const result = spawnSync(command, [...prefix, '--', 'sh', '-c', script, process.execPath, run, JSON.stringify(config)], {
    encoding: 'utf8',
    timeout: 120_000,
    killSignal: 'SIGKILL',
  });
  if (result.status !== 0) throw new Error(`scenario ${JSON.stringify(config)} failed: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').at(-1));
}

const cases = [
  ['5 rolling reloads of 3 workers', 'supervisor, reuseport', { scenario: 'reload', way: 'supervised' }, 0],
  ['5 rolling reloads of 3 workers', 'supervisor, round-robin', { scenario: 'reload', way: 'supervised', mode: 'round-robin' }, 0],
  ['5 rolling reloads of 3 workers', 'own sockets, server.close()', { scenario: 'reload', way: 'plain' }, 0],
  ['5 rolling reloads of 3 workers', 'own sockets, server.close()', { scenario: 'reload', way: 'plain' }, 1],
  ['5 rolling reloads of 3 workers', 'own sockets, closeListener()', { scenario: 'reload', way: 'plain-helper' }, 0],
  ['5 rolling reloads of 3 workers', 'own sockets, closeListener()', { scenario: 'reload', way: 'plain-helper' }, 1],
  ['kill -9 of 1 of 3 workers at 2000 new conn/s for 4 s', 'supervisor, reuseport', { scenario: 'crash', way: 'supervised' }, 0],
  ['kill -9 of 1 of 3 workers at 2000 new conn/s for 4 s', 'supervisor, round-robin', { scenario: 'crash', way: 'supervised', mode: 'round-robin' }, 0],
  ['kill -9 of 1 of 3 workers at 2000 new conn/s for 4 s', 'own sockets, replaced by hand', { scenario: 'crash', way: 'plain' }, 0],
  ['kill -9 of 1 of 3 workers at 2000 new conn/s for 4 s', 'own sockets, replaced by hand', { scenario: 'crash', way: 'plain' }, 1],
  ['kill -9 of 1 of 3 workers at 800 new conn/s for 5 s', 'supervisor, reuseport', { scenario: 'crash', way: 'supervised', rate: 800, durationMs: 5000 }, 0],
  ['kill -9 of 1 of 3 workers at 800 new conn/s for 5 s', 'own sockets, replaced by hand', { scenario: 'crash', way: 'plain', rate: 800, durationMs: 5000 }, 0],
  [
    '1 of 3 workers blocked for 2 s at 800 new conn/s for 5 s',
    'supervisor, reuseport',
    { scenario: 'stall', way: 'supervised', rate: 800, durationMs: 5000 },
    0,
  ],
  [
    '1 of 3 workers blocked for 2 s at 800 new conn/s for 5 s',
    'own sockets (plain reuseport)',
    { scenario: 'stall', way: 'plain', rate: 800, durationMs: 5000 },
    0,
  ],
  [
    '1 of 3 workers blocked for 2 s at 800 new conn/s for 5 s',
    'supervisor, round-robin',
    { scenario: 'stall', way: 'supervised', mode: 'round-robin', rate: 800, durationMs: 5000 },
    0,
  ],
  [
    '1 of 3 workers blocked for 2 s at 800 new conn/s for 5 s',
    'supervisor, shared handle',
    { scenario: 'stall', way: 'supervised', mode: 'shared', rate: 800, durationMs: 5000 },
    0,
  ],
];

const rows = [];
for (const [what, how, config, migrate] of cases) {
  const reports = [];
  for (let i = 0; i < runs; i++) {
    process.stderr.write(`${what} / ${how} / tcp_migrate_req=${migrate}: run ${i + 1} of ${runs}\n`);
    reports.push(scenario(config, migrate));
  }
  rows.push({ what, how, migrate, reports });
}

const range = (values) => {
  const min = Math.min(...values);
  const max = Math.max(...values);
  return min === max ? String(min) : `${min}-${max}`;
};
const lines = [
  '# Reloads and crashes: what a client loses',
  '',
  `Measured by \`node scripts/reload-figures.mjs --runs ${runs}\` on ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} cores, Linux ${os.release()}, Node ${process.version}.`,
  'Each run is its own network namespace (so `net.ipv4.tcp_migrate_req` is set for it alone) with 3 workers',
  'serving hello-world HTTP on 127.0.0.1 and a client in another process that opens a new TCP connection for',
  'every request: closed-loop with 64 lanes for the reloads, open-loop at 2000 connections/s for the crashes.',
  'The scenarios are `test/scenarios/run.js`; `npm run test:load` asserts the supervisor rows.',
  '',
  '| scenario | how | tcp_migrate_req | connections | failed (per run) | over 500 ms (per run) | p99 ms | max ms | replaced in ms |',
  '|---|---|---:|---:|---|---|---|---|---|',
];
for (const { what, how, migrate, reports } of rows) {
  const failed = reports.map((r) => r.load.failed).join(', ');
  const errors = [...new Set(reports.flatMap((r) => Object.keys(r.load.errors)))].join(' ');
  lines.push(
    `| ${what} | ${how} | ${migrate} | ${range(reports.map((r) => r.load.sent))} | ${failed}${errors ? ` (${errors})` : ''} | ` +
      `${reports.map((r) => r.load.over500ms).join(', ')} | ${range(reports.map((r) => Math.round(r.load.p99)))} | ${range(reports.map((r) => Math.round(r.load.max)))} | ` +
      `${reports[0].replacedInMs === undefined ? '' : range(reports.map((r) => r.replacedInMs ?? 0))} |`,
  );
}
lines.push(
  '',
  '## What the rows mean',
  '',
  "- **supervisor, reuseport**: `startCluster`; the primary owns each slot's `SO_REUSEPORT` socket and lends it to the",
  "  slot's worker. A reload starts the new worker on the same socket before the old one drains, and a dead",
  "  worker's socket stays open in the primary, so its queue waits for the replacement instead of being reset.",
  '  What a `kill -9` can still lose is what the dead worker had already accepted.',
  '- **own sockets**: every worker binds its own socket (`listenReusePort` without the supervisor). With',
  '  `tcp_migrate_req=0`, closing a socket resets the connections queued in it; `closeListener()` first shrinks',
  '  the queue to nothing and accepts what is left, which loses fewer; with `=1` the kernel moves the queue.',
  '- **round-robin**: the cluster primary accepts every connection and passes it on, so a reload loses nothing,',
  '  at about three times the CPU per connection (see benchmarks.md).',
  '- **blocked worker**: one worker busy-waits for 2 s. With plain `SO_REUSEPORT` the kernel keeps queueing a third of',
  "  the new connections behind it. The supervisor notices the missing heartbeats (80 ms), lends the slot's socket to",
  '  a live worker and steers new connections to the others (Linux cBPF), so the clients never wait for it; round-robin',
  '  and the shared handle give a busy worker nothing by construction.',
  '',
  'On 2 cores the client, the primary and 3 workers share the CPU, so absolute latencies are high; compare rows.',
  '',
);
fs.mkdirSync(path.dirname(values.out), { recursive: true });
// The whole-service section is scripts/deploy-figures.mjs's: kept as it is.
const previous = fs.existsSync(values.out) ? fs.readFileSync(values.out, 'utf8') : '';
const deploys = previous.indexOf('## Whole-service deploys');
fs.writeFileSync(values.out, `${lines.join('\n')}${deploys >= 0 ? `\n${previous.slice(deploys)}` : ''}`);
process.stdout.write(`${lines.join('\n')}\n`);
