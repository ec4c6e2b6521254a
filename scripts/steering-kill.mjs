// Does steering by weight cost connections when a worker is killed with SIGKILL under load?
// `node scripts/steering-kill.mjs [--rate 2000] [--runs 17] [--out bench/steering-kill-figures.json]` runs
// test/scenarios/run.js's crash scenario (3 supervised workers, balance on, the open-loop client at
// `rate` new connections/s for 4 s, slot 0's worker killed at 1.5 s) in a network namespace of its own
// with net.ipv4.tcp_migrate_req=0 (needs root, or user namespaces), `runs` times. Per run: connections
// sent and failed, what the dead worker held open when it died (a kill -9 loses those, nothing else
// should), how soon it was replaced, and how often the steering weights changed before and after the
// kill (sampled every 20 ms). Prints one JSON line per run and saves them all.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '2000' },
    runs: { type: 'string', default: '17' },
    out: { type: 'string', default: path.join(root, 'bench', 'steering-kill-figures.json') },
  },
});
const rate = Number(values.rate);
const runs = Number(values.runs);
for (const [name, value] of [
  ['rate', rate],
  ['runs', runs],
]) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
}
const namespace = process.getuid?.() === 0 ? ['unshare', '--net'] : ['unshare', '--user', '--map-root-user', '--net'];

function once(config) {
  const script = 'ip link set lo up && echo 0 > /proc/sys/net/ipv4/tcp_migrate_req && exec "$0" "$@"';
  const run = path.join(root, 'test', 'scenarios', 'run.js');
  const [command, ...prefix] = namespace;
  const child = spawn(command, [...prefix, '--', 'sh', '-c', script, process.execPath, run, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`the scenario exited with ${code}`));
      resolve(JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}'));
    });
  });
}

const results = [];
for (let i = 0; i < runs; i++) {
  const report = await once({ scenario: 'crash', way: 'supervised', rate, durationMs: 4000, killAtMs: 1500 });
  const result = {
    run: i + 1,
    sent: report.load.sent,
    failed: report.load.failed,
    errors: report.load.errors,
    deadWorkerHeld: report.victimOpenAtKill,
    replacedInMs: report.replacedInMs,
    weightChanges: report.weightChanges,
  };
  results.push(result);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
const beyond = results.filter((r) => r.failed > (r.deadWorkerHeld ?? 0)).length;
process.stdout.write(`${runs} runs: ${beyond} lost more than the dead worker held\n`);
fs.writeFileSync(values.out, `${JSON.stringify({ when: new Date().toISOString(), node: process.version, rate, runs: results }, null, 2)}\n`);
process.stdout.write(`figures: ${values.out}\n`);
