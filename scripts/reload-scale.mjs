// How long `reuseport reload` takes as the workers grow: an unmodified app (test/fixtures/ordinary-app.js)
// under `reuseport start -w N`, idle and under an open loop of new connections, the reload timed from the
// `reuseport reload` command's start to its exit (it exits once every old worker is gone). Writes the
// figures to bench/reload-scale-figures.json and the table between the reload-scale markers of
// docs/reloads.md.
// Usage: node scripts/reload-scale.mjs [--workers 2,8,16,32,64] [--rate 300] [--runs 1] [--no-write]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'dist', 'cli', 'main.js');
const app = path.join(root, 'test', 'fixtures', 'ordinary-app.js');
const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '2,8,16,32,64' },
    rate: { type: 'string', default: '300' },
    runs: { type: 'string', default: '1' },
    write: { type: 'boolean', default: true },
  },
  allowNegative: true,
});
const counts = values.workers.split(',').map(Number);
const rate = Number(values.rate);
const runs = Number(values.runs);

function freePort() {
  return new Promise((resolve) => {
    const probe = net.createServer().listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

// One request on a new connection; resolves { ok, code }.
function request(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, agent: false, timeout: 5_000 }, (response) => {
      response.resume();
      response.on('end', () => resolve({ ok: response.statusCode === 200, code: `HTTP ${response.statusCode}` }));
      response.on('error', (error) => resolve({ ok: false, code: error.code ?? 'ERESPONSE' }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (error) => resolve({ ok: false, code: error.code ?? error.message }));
  });
}

// An open loop of `rate` new connections per second until stopped (bounded at 120 s).
function openLoop(port) {
  const pending = [];
  const started = performance.now();
  let sent = 0;
  let running = true;
  const loop = (async () => {
    while (running && performance.now() - started < 120_000) {
      const due = Math.floor(((performance.now() - started) / 1000) * rate);
      for (; sent < due; sent++) pending.push(request(port));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  return async () => {
    running = false;
    await loop;
    const results = await Promise.all(pending);
    const errors = {};
    for (const result of results) if (!result.ok) errors[result.code] = (errors[result.code] ?? 0) + 1;
    return { requests: results.length, failed: results.filter((result) => !result.ok).length, errors };
  };
}

// Starts the runner and resolves its pid once its ready line came; rejects after 60 s.
function startRunner(workers, port, pidFile) {
  const child = spawn(process.execPath, [cli, 'start', '-w', String(workers), '--json', '--pid-file', pidFile, app], {
    env: { ...process.env, APP_PORT: String(port), APP_HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`the runner of ${workers} workers was not ready within 60 s`)), 60_000);
    child.stdout.on('data', (chunk) => {
      buffer += chunk;
      for (let end = buffer.indexOf('\n'); end >= 0; end = buffer.indexOf('\n')) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        if (line.includes('"event":"ready"')) {
          clearTimeout(timer);
          resolve();
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`the runner exited (${code}) before it was ready`)));
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return { child, ready, exited };
}

// Runs `reuseport reload` and resolves its wall time and exit code.
function reload(pidFile) {
  const started = performance.now();
  const child = spawn(process.execPath, [cli, 'reload', '--pid-file', pidFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.on('data', (chunk) => {
    output += chunk;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ ms: Math.round(performance.now() - started), code, output: output.trim() });
    }),
  );
}

async function measure(workers, loaded) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-reload-scale-'));
  const pidFile = path.join(dir, 'app.pid');
  const runner = startRunner(workers, port, pidFile);
  try {
    await runner.ready;
    const stopLoad = loaded ? openLoop(port) : undefined;
    // A second of load before the reload, so it starts on a busy service.
    if (stopLoad) await new Promise((resolve) => setTimeout(resolve, 1_000));
    const outcome = await reload(pidFile);
    const load = stopLoad ? await stopLoad() : undefined;
    return { workers, rate: loaded ? rate : 0, reloadMs: outcome.ms, exitCode: outcome.code, ...(load ? { load } : {}) };
  } finally {
    runner.child.kill('SIGTERM');
    const timer = setTimeout(() => runner.child.kill('SIGKILL'), 30_000);
    await runner.exited;
    clearTimeout(timer);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const results = [];
for (const workers of counts) {
  for (const loaded of [false, true]) {
    for (let run = 0; run < runs; run++) {
      const result = await measure(workers, loaded);
      process.stderr.write(`${JSON.stringify(result)}\n`);
      results.push(result);
    }
  }
}

const figures = { date: new Date().toISOString(), node: process.version, cpus: os.availableParallelism(), minUptimeMs: 1000, results };
const cell = (workers, loaded) =>
  results
    .filter((result) => result.workers === workers && result.rate > 0 === loaded)
    .map(
      (result) =>
        `${(result.reloadMs / 1000).toFixed(1)} s${result.exitCode === 0 ? '' : ` (exit ${result.exitCode})`}${result.load ? `, ${result.load.failed} of ${result.load.requests} failed` : ''}`,
    )
    .join('; ');
const table = [
  '<!-- reload-scale: written by scripts/reload-scale.mjs -->',
  `\`reuseport reload\` of an unmodified app (\`test/fixtures/ordinary-app.js\`), timed from the command's start to its exit (every old worker gone), default \`minUptimeMs\` (1 s) and \`maxDraining\` (all), ${figures.cpus} cores, Node ${figures.node}, ${figures.date.slice(0, 10)}; \`node scripts/reload-scale.mjs\`:`,
  '',
  `| workers | idle | under ${rate} new connections/s |`,
  '|---|---|---|',
  ...counts.map((workers) => `| ${workers} | ${cell(workers, false)} | ${cell(workers, true)} |`),
  '<!-- /reload-scale -->',
].join('\n');
console.log(table);
if (values.write) {
  fs.writeFileSync(path.join(root, 'bench', 'reload-scale-figures.json'), `${JSON.stringify(figures, null, 2)}\n`);
  const doc = path.join(root, 'docs', 'reloads.md');
  const text = fs.readFileSync(doc, 'utf8');
  const marked = /<!-- reload-scale[\s\S]*?<!-- \/reload-scale -->/;
  fs.writeFileSync(doc, marked.test(text) ? text.replace(marked, table) : `${text.trimEnd()}\n\n## Reload time by worker count\n\n${table}\n`);
}
