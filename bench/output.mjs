// The cost of relaying the workers' output under `reuseport start` (node bench/output.mjs [--lines N]
// [--rounds R]): one worker writes N lines of 100 bytes (test/fixtures/runner-app.js GET /spam), the
// runner's stdout is a pipe this script reads as fast as it can. For raw (the worker writes to that
// pipe itself), --prefix-output and --json: how long until every line has arrived, the worker's own
// time in its write loop, and the runner's CPU time (utime + stime from /proc) spent on them.
// Writes bench/output-figures.json and prints a Markdown table.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.join(HERE, '..', 'dist', 'cli', 'main.js');
const APP = path.join(HERE, '..', 'test', 'fixtures', 'runner-app.js');
const { values } = parseArgs({ options: { lines: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '5' } } });
const LINES = Number(values.lines);
const ROUNDS = Number(values.rounds);
const TICK_MS = 1000 / 100; // USER_HZ

function freePort() {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function get(port, pathname) {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: pathname, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve(body));
    });
    request.on('error', reject);
  });
}

function cpuMs(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

async function round(mode) {
  const port = await freePort();
  const flags = mode === 'raw' ? [] : mode === 'prefix' ? ['--prefix-output'] : ['--json'];
  const runner = spawn(process.execPath, [CLI, 'start', APP, '-i', '1', ...flags], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, PORT: String(port) },
  });
  let spamLines = 0;
  let text = '';
  let partial = '';
  let ready;
  const readyLine = new Promise((resolve) => (ready = resolve));
  runner.stdout.setEncoding('utf8');
  runner.stdout.on('data', (chunk) => {
    if (text.length < 4096) {
      text += chunk;
      if (/"event":"ready"|^ready /m.test(text)) ready();
    }
    partial += chunk;
    const pieces = partial.split('\n');
    partial = pieces.pop() ?? '';
    for (const line of pieces) if (line.includes('xxxxxxxxxx')) spamLines += 1;
  });
  await readyLine;
  // Let it settle (the listening lines, the first beats).
  await new Promise((resolve) => setTimeout(resolve, 300));
  const cpuBefore = cpuMs(runner.pid);
  const started = performance.now();
  const workerMs = Number(await get(port, `/spam?n=${LINES}`));
  while (spamLines < LINES) await new Promise((resolve) => setTimeout(resolve, 2));
  const allMs = performance.now() - started;
  const cpu = cpuMs(runner.pid) - cpuBefore;
  runner.kill('SIGTERM');
  await new Promise((resolve) => runner.once('exit', resolve));
  return { workerMs, allMs, runnerCpuMs: cpu };
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const results = {};
for (const mode of ['raw', 'prefix', 'json']) {
  const rounds = [];
  for (let i = 0; i < ROUNDS; i++) rounds.push(await round(mode));
  results[mode] = {
    rounds,
    allMs: median(rounds.map((r) => r.allMs)),
    workerMs: median(rounds.map((r) => r.workerMs)),
    runnerCpuMs: median(rounds.map((r) => r.runnerCpuMs)),
  };
}
const figures = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: os.availableParallelism(),
  lines: LINES,
  lineBytes: 100,
  rounds: ROUNDS,
  results,
};
fs.writeFileSync(path.join(HERE, 'output-figures.json'), `${JSON.stringify(figures, null, 2)}\n`);
const mb = (LINES * 100) / 1e6;
console.log(`| output | all ${LINES} lines at the reader (ms) | MB/s | the worker's write loop (ms) | runner CPU (ms) | runner CPU per 1,000 lines (ms) |`);
console.log('|---|---|---|---|---|---|');
for (const [mode, r] of Object.entries(results)) {
  console.log(
    `| ${mode} | ${r.allMs.toFixed(0)} | ${(mb / (r.allMs / 1000)).toFixed(0)} | ${r.workerMs.toFixed(0)} | ${r.runnerCpuMs.toFixed(0)} | ${((r.runnerCpuMs / LINES) * 1000).toFixed(2)} |`,
  );
}
