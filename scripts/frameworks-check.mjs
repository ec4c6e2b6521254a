// Runs an unmodified NestJS app and an unmodified `next start` under `reuseport start --workers 2
// --json` (the workers preload reuseport/register) and checks what test/dropin.test.ts checks for
// Express, Fastify and Koa: `ready` within a bound, one listening socket per slot on the port, both
// workers answer (told apart by the pid each returns), a SIGHUP reload leaves it serving, SIGTERM
// exits 0. The frameworks are installed into a temporary directory, never into this package: npm's
// cache is ~/.cache/reuseport-ci/frameworks/npm (REUSEPORT_FRAMEWORKS_CACHE), so a second run
// reuses the downloads. Needs dist/ and the addon (npm ci, or npm run build).
// Usage: node scripts/frameworks-check.mjs [--only nest|next] [--keep]
// Exits 0 when every check of every app passed; otherwise says which failed and why, and exits 1.
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
const { values } = parseArgs({ options: { only: { type: 'string' }, keep: { type: 'boolean', default: false } } });
const cache = process.env.REUSEPORT_FRAMEWORKS_CACHE ?? path.join(os.homedir(), '.cache', 'reuseport-ci', 'frameworks', 'npm');
const started = Date.now();
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
const log = (line) => process.stdout.write(`${line}\n`);

// Every process this script starts, by pid: stopped (with whatever it started) on the way out.
const ownChildren = new Set();
function childrenOf(pid) {
  const children = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // the fields after the command name (which may hold spaces and parentheses)
      const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(after[1]) === pid) children.push(Number(entry));
    } catch {
      // gone while we looked
    }
  }
  return children;
}
function descendantsOf(pid, found = []) {
  for (const child of childrenOf(pid)) {
    found.push(child);
    descendantsOf(child, found);
  }
  return found;
}
function stopAll() {
  for (const pid of ownChildren) {
    for (const target of [...descendantsOf(pid), pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
process.on('exit', stopAll);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    stopAll();
    process.exit(130);
  });
}

/** Runs a command to its end within `timeoutMs`; resolves with its exit code and output. */
function run(command, args, { cwd, env = process.env, timeoutMs }) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    ownChildren.add(child.pid);
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (output += chunk));
    const timer = setTimeout(() => {
      output += `\n(stopped after ${seconds(timeoutMs)})`;
      for (const pid of [...descendantsOf(child.pid), child.pid]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }, timeoutMs);
    child.on('error', (error) => (output += String(error)));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      ownChildren.delete(child.pid);
      resolve({ code: code ?? signal, output });
    });
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
    probe.on('error', reject);
  });
}

// Inodes of the TCP sockets listening on `port`, from /proc/net/tcp{,6} (as test/helpers/proc-net.ts).
function listeningInodes(port) {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of fs.readFileSync(table, 'utf8').trim().split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[3] === '0A' && (fields[1] ?? '').endsWith(`:${hexPort}`)) inodes.push(fields[9]);
    }
  }
  return inodes;
}

/** GETs a path on a new connection (no agent); resolves with the status and body. */
function get(port, urlPath, timeoutMs = 5_000) {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: timeoutMs }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode, body }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${urlPath} timed out after ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}

/** `count` requests, `concurrency` at a time, each on a new connection: answers counted by the pid in the body. */
async function countByPid(port, urlPath, count, concurrency = 8) {
  const counts = new Map();
  const errors = [];
  let issued = 0;
  const lane = async () => {
    while (issued < count) {
      issued += 1;
      try {
        const { status, body } = await get(port, urlPath);
        const pid = /"pid":(\d+)/.exec(body)?.[1];
        if (status !== 200 || !pid) throw new Error(`status ${status}, body ${body.slice(0, 80)}`);
        counts.set(pid, (counts.get(pid) ?? 0) + 1);
      } catch (error) {
        errors.push(error.message);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return { counts, errors };
}

/** Requests on new connections, one lane after another, until `stop()` says so (or `maxMs`). */
function keepRequesting(port, urlPath, maxMs, lanes = 4) {
  let stopped = false;
  let ok = 0;
  const errors = [];
  const deadline = Date.now() + maxMs;
  const lane = async () => {
    while (!stopped && Date.now() < deadline) {
      try {
        const { status } = await get(port, urlPath);
        if (status === 200) ok += 1;
        else errors.push(`status ${status}`);
      } catch (error) {
        errors.push(error.message);
      }
    }
  };
  const done = Promise.all(Array.from({ length: lanes }, lane));
  return {
    stop: async () => {
      stopped = true;
      await done;
      return { ok, errors };
    },
  };
}

/** `reuseport start --workers 2 --json <script> -- [args]` in `cwd`, its JSON event lines collected. */
function startRunner(script, args, cwd, env) {
  const child = spawn(process.execPath, [cli, 'start', '--workers', '2', '--json', script, '--', ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  ownChildren.add(child.pid);
  const events = [];
  let output = '';
  let other = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => {
    output += chunk;
    for (let end = output.indexOf('\n'); end >= 0; end = output.indexOf('\n')) {
      const line = output.slice(0, end);
      output = output.slice(end + 1);
      try {
        if (line.startsWith('{')) {
          events.push({ ...JSON.parse(line), at: Date.now() });
          continue;
        }
      } catch {
        // a worker's own line that happens to start with {
      }
      other += `${line}\n`;
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk) => (other += chunk));
  let exitCode;
  const exited = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      ownChildren.delete(child.pid);
      exitCode = code ?? signal;
      resolve(exitCode);
    }),
  );
  const next = async (name, after, timeoutMs) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = events.slice(after).find((event) => event.event === name);
      if (found) return found;
      if (exitCode !== undefined) throw new Error(`the runner exited (${exitCode}) before "${name}": ${other.trim().slice(-1500)}`);
      if (Date.now() > deadline)
        throw new Error(`no "${name}" within ${seconds(timeoutMs)}: events ${JSON.stringify(events)}; output ${other.trim().slice(-1500)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return {
    child,
    events,
    next,
    exited,
    output: () => other,
    get exitCode() {
      return exitCode;
    },
  };
}

/** The checks of one app under the runner. Throws with the reason at the first that fails. */
async function checkUnderRunner(name, { script, args, cwd, env, port, urlPath, readyMs }) {
  const figures = { app: name };
  const t0 = Date.now();
  const workerPids = new Set();
  const runner = startRunner(script, args, cwd, env);
  try {
    const ready = await runner.next('ready', 0, readyMs);
    figures.readyMs = ready.at - t0;
    figures.mode = ready.mode;
    const workers = String(ready.workers).split(',');
    if (workers.length !== 2) throw new Error(`ready names ${workers.length} workers, not 2: ${JSON.stringify(ready)}`);
    if (String(ready.ports) !== String(port)) throw new Error(`ready names ports ${ready.ports}, not ${port}`);
    for (const pid of workers) workerPids.add(Number(pid));

    const inodes = listeningInodes(port);
    figures.listeningSockets = inodes.length;
    if (inodes.length !== 2) throw new Error(`the port has ${inodes.length} listening sockets, not one per slot (2)`);

    const before = await countByPid(port, urlPath, 200);
    figures.before = Object.fromEntries(before.counts);
    if (before.errors.length) throw new Error(`${before.errors.length} of 200 requests failed before the reload: ${before.errors[0]}`);
    const answered = [...before.counts.keys()].sort();
    if (answered.join() !== [...workers].sort().join()) throw new Error(`answered by pids ${answered}, workers are ${workers}`);

    const mark = runner.events.length;
    const traffic = keepRequesting(port, urlPath, 60_000);
    const t1 = Date.now();
    runner.child.kill('SIGHUP');
    const reload = await runner.next('reload', mark, 60_000);
    figures.reloadMs = reload.at - t1;
    const during = await traffic.stop();
    figures.duringReload = { ok: during.ok, failed: during.errors.length };
    if (during.errors.length) figures.duringReload.firstError = during.errors[0];
    const newWorkers = String(reload.pids).split(',');
    for (const pid of newWorkers) workerPids.add(Number(pid));
    const after = await countByPid(port, urlPath, 200);
    figures.after = Object.fromEntries(after.counts);
    if (after.errors.length) throw new Error(`${after.errors.length} of 200 requests failed after the reload: ${after.errors[0]}`);
    const answeredAfter = [...after.counts.keys()].sort();
    if (answeredAfter.join() !== [...newWorkers].sort().join())
      throw new Error(`after the reload answered by pids ${answeredAfter}, new workers are ${newWorkers}`);
    const inodesAfter = listeningInodes(port).sort();
    if (inodesAfter.join() !== inodes.sort().join()) throw new Error(`the slot sockets changed in the reload: ${inodes} before, ${inodesAfter} after`);

    const t2 = Date.now();
    runner.child.kill('SIGTERM');
    let timer;
    const code = await Promise.race([runner.exited, new Promise((resolve) => (timer = setTimeout(() => resolve('no exit within 30 s'), 30_000)))]);
    clearTimeout(timer);
    figures.shutdownMs = Date.now() - t2;
    if (code !== 0) throw new Error(`SIGTERM: exit ${code}, not 0: ${runner.output().trim().slice(-1000)}`);
    const left = [...workers, ...newWorkers].filter((pid) => fs.existsSync(`/proc/${pid}`));
    if (left.length) throw new Error(`workers ${left} still run after the runner exited`);
    return figures;
  } finally {
    // The runner and what it started; a worker it left behind (no longer its child) by pid, if that
    // pid is still a node process.
    const alive = (pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] === process.execPath;
      } catch {
        return false;
      }
    };
    const targets = runner.exitCode === undefined ? [...descendantsOf(runner.child.pid), runner.child.pid] : [];
    for (const pid of [...targets, ...[...workerPids].filter(alive)]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

// --- the apps ---------------------------------------------------------------------------------

const nestMain = `// An unmodified NestJS app, plain JavaScript: decorators applied as functions, no build step.
'use strict';
require('reflect-metadata');
const { NestFactory } = require('@nestjs/core');
const { Module, Controller, Get } = require('@nestjs/common');

class PidController {
  pid() {
    return { pid: process.pid };
  }
}
Controller()(PidController);
Get('pid')(PidController.prototype, 'pid', Object.getOwnPropertyDescriptor(PidController.prototype, 'pid'));

class AppModule {}
Module({ controllers: [PidController] })(AppModule);

async function main() {
  const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT), '127.0.0.1');
}
main().catch((error) => {
  console.error(error);
  process.exit(1);
});
`;

const nextFiles = {
  'pages/index.js': `export default function Home({ pid }) {
  return <p>served by {pid}</p>;
}
export function getServerSideProps() {
  return { props: { pid: process.pid } };
}
`,
  'pages/api/pid.js': `export default function handler(request, response) {
  response.status(200).json({ pid: process.pid });
}
`,
  'next.config.js': `module.exports = { poweredByHeader: false };\n`,
};

const versions = {
  '@nestjs/core': '^12',
  '@nestjs/common': '^12',
  '@nestjs/platform-express': '^12',
  'reflect-metadata': '^0.2',
  rxjs: '^7',
  next: '^16',
  react: '^19',
  'react-dom': '^19',
};

async function main() {
  for (const file of [cli, path.join(root, 'dist', 'register', 'index.js')]) {
    if (!fs.existsSync(file)) throw new Error(`${file} is missing: run npm ci (or npm run build) first`);
  }
  const wanted = values.only ? [values.only] : ['nest', 'next'];
  if (wanted.some((app) => !['nest', 'next'].includes(app))) throw new Error(`--only takes nest or next, not ${values.only}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-frameworks-'));
  const app = fs.realpathSync(dir);
  process.on('exit', () => {
    if (values.keep) log(`kept ${app}`);
    else fs.rmSync(app, { recursive: true, force: true });
  });
  const dependencies = Object.fromEntries(
    Object.entries(versions).filter(([name]) => (name === 'next' || name.startsWith('react') ? wanted.includes('next') : wanted.includes('nest'))),
  );
  fs.writeFileSync(path.join(app, 'package.json'), `${JSON.stringify({ name: 'reuseport-frameworks-check', private: true, dependencies }, null, 2)}\n`);
  fs.mkdirSync(cache, { recursive: true });
  const cacheFilesBefore = countFiles(cache);

  log(`installing ${Object.keys(dependencies).join(', ')} into ${app} (npm cache ${cache}, ${cacheFilesBefore ? 'warm' : 'cold'})`);
  const env = { ...process.env, npm_config_fund: 'false', npm_config_audit: 'false', npm_config_update_notifier: 'false', NEXT_TELEMETRY_DISABLED: '1' };
  let t = Date.now();
  const install = await run('npm', ['install', '--no-package-lock', '--prefer-offline', '--cache', cache, '--loglevel', 'error'], {
    cwd: app,
    env,
    timeoutMs: 600_000,
  });
  const installMs = Date.now() - t;
  if (install.code !== 0) throw new Error(`npm install failed (exit ${install.code}) after ${seconds(installMs)}: ${install.output.trim().slice(-2000)}`);
  const installed = Object.fromEntries(
    Object.keys(dependencies).map((name) => [name, JSON.parse(fs.readFileSync(path.join(app, 'node_modules', name, 'package.json'), 'utf8')).version]),
  );
  log(
    `installed in ${seconds(installMs)} (${cacheFilesBefore ? 'warm' : 'cold'} cache): ${Object.entries(installed)
      .map(([name, version]) => `${name}@${version}`)
      .join(' ')}`,
  );

  const results = [];
  const failures = [];
  if (wanted.includes('nest')) {
    fs.writeFileSync(path.join(app, 'nest-main.js'), nestMain);
    const port = await freePort();
    try {
      results.push(
        await checkUnderRunner(`NestJS ${installed['@nestjs/core']}`, {
          script: path.join(app, 'nest-main.js'),
          args: [],
          cwd: app,
          env: { ...env, PORT: String(port) },
          port,
          urlPath: '/pid',
          readyMs: 30_000,
        }),
      );
    } catch (error) {
      failures.push(`NestJS: ${error.message}`);
    }
  }
  if (wanted.includes('next')) {
    for (const [file, text] of Object.entries(nextFiles)) {
      fs.mkdirSync(path.dirname(path.join(app, file)), { recursive: true });
      fs.writeFileSync(path.join(app, file), text);
    }
    const nextBin = path.join(app, 'node_modules', 'next', 'dist', 'bin', 'next');
    t = Date.now();
    const build = await run(process.execPath, [nextBin, 'build'], { cwd: app, env, timeoutMs: 300_000 });
    const buildMs = Date.now() - t;
    if (build.code !== 0) {
      failures.push(`Next.js: next build failed (exit ${build.code}) after ${seconds(buildMs)}: ${build.output.trim().slice(-2000)}`);
    } else {
      log(`next build: ${seconds(buildMs)}`);
      const port = await freePort();
      try {
        const figures = await checkUnderRunner(`Next.js ${installed.next} (next start)`, {
          script: nextBin,
          args: ['start', '-p', String(port), '-H', '127.0.0.1'],
          cwd: app,
          env,
          port,
          urlPath: '/api/pid',
          readyMs: 60_000,
        });
        results.push({ ...figures, buildMs });
      } catch (error) {
        failures.push(`Next.js: ${error.message}`);
      }
    }
  }

  for (const figures of results) {
    const per = (counts) =>
      Object.entries(counts)
        .map(([pid, count]) => `${pid}:${count}`)
        .join(' ');
    log(
      `${figures.app}: ok, mode ${figures.mode}, ready in ${seconds(figures.readyMs)}, ${figures.listeningSockets} listening sockets; 200 requests by pid ${per(figures.before)}; SIGHUP reload done in ${seconds(figures.reloadMs)} (${figures.duringReload.ok} answered, ${figures.duringReload.failed} failed meanwhile${figures.duringReload.firstError ? `: ${figures.duringReload.firstError}` : ''}), then ${per(figures.after)}; SIGTERM exit 0 in ${seconds(figures.shutdownMs)}${figures.buildMs ? `; next build ${seconds(figures.buildMs)}` : ''}`,
    );
  }
  log(`total ${seconds(Date.now() - started)} (install ${seconds(installMs)})`);
  log(`${JSON.stringify({ installMs, cache: cacheFilesBefore ? 'warm' : 'cold', versions: installed, results, failures })}`);
  if (failures.length) {
    for (const failure of failures) process.stderr.write(`FAILED ${failure}\n`);
    process.exitCode = 1;
  }
}

function countFiles(dir) {
  try {
    return fs.readdirSync(dir, { recursive: true }).length;
  } catch {
    return 0;
  }
}

main().catch((error) => {
  process.stderr.write(`frameworks-check: ${error.message}\n`);
  process.exitCode = 1;
});
