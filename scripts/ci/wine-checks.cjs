// The Windows path, run by a real Windows node.exe (under Wine, from scripts/ci/wine-test.sh) over the
// packed tarball installed with scripts off: facts and doctor, the package's install command, a
// standalone listen, a second process, node:cluster's shared handle, startCluster, and UDP errors.
// Roles (argv[2]): none = the checks; 'second' = a process that tries the same port;
// 'cluster-worker' = a worker of setupPrimary; 'supervised' = a worker of startCluster.
// Prints "ok - ..." / "not ok - ..." and ends with "N passed, N failed"; exits 1 if any failed.
// Every process it starts is stopped by its pid; every wait is bounded.
'use strict';
const assert = require('node:assert/strict');
const childProcess = require('node:child_process');
const cluster = require('node:cluster');
const dgram = require('node:dgram');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const util = require('node:util');

const app = __dirname;
const reuseport = require('reuseport');
const installed = path.dirname(require.resolve('reuseport/package.json'));

// Every bind Node makes on this path, with its flags: SO_REUSEADDR can only come from dgram's
// reuseAddr (UV_UDP_REUSEADDR); libuv never sets it on a Windows TCP socket (src/win/tcp.c).
const binds = [];
let probing = false;
function recordBinds(name) {
  const wrap = process.binding(name);
  const proto = (name === 'tcp_wrap' ? wrap.TCP : wrap.UDP).prototype;
  for (const method of ['bind', 'bind6']) {
    const original = proto[method];
    proto[method] = function (address, port, flags) {
      if (!probing) binds.push({ pid: process.pid, kind: name, method, address, port, flags: flags ?? 0 });
      return original.apply(this, arguments);
    };
  }
  return wrap.constants;
}
const tcpConstants = recordBinds('tcp_wrap');
const udpConstants = recordBinds('udp_wrap');

function answer(_request, response) {
  response.setHeader('connection', 'close');
  response.end(String(process.pid));
}

function get(port, timeoutMs = 5_000) {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: timeoutMs }, (response) => {
      let body = '';
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve(body));
    });
    request.on('timeout', () => request.destroy(new Error(`no answer from 127.0.0.1:${port} in ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}

function within(ms, promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function nextMessage(child, type, ms) {
  return within(
    ms,
    new Promise((resolve) => {
      const listener = (message) => {
        if (message?.type !== type) return;
        child.off('message', listener);
        resolve(message);
      };
      child.on('message', listener);
    }),
    `message ${type} from pid ${child.pid ?? child.process?.pid}`,
  );
}

function exited(processLike, ms) {
  const child = processLike.process ?? processLike;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return within(ms, new Promise((resolve) => child.once('exit', () => resolve())), `exit of pid ${child.pid}`);
}

// Stops a child by its pid, and waits (bounded) for it to be gone.
async function stop(processLike) {
  const child = processLike.process ?? processLike;
  if (child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid);
    } catch {
      // gone already
    }
  }
  await exited(child, 10_000);
}

async function freePort() {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// --- roles other than the checks -------------------------------------------------------------

async function secondProcess(port) {
  const server = http.createServer(answer);
  try {
    const info = await reuseport.listenReusePort(server, port, { host: '127.0.0.1' });
    process.send({ type: 'result', listened: info.mode });
  } catch (error) {
    process.send({ type: 'result', error: { code: error.code, errno: error.errno, syscall: error.syscall, message: error.message } });
  }
  process.disconnect();
  server.close();
}

async function clusterWorker() {
  const server = http.createServer(answer);
  const info = await reuseport.listenReusePort(server, Number(process.env.WINE_PORT), { host: '127.0.0.1' });
  process.send({ type: 'info', pid: process.pid, info });
}

function supervisedWorker() {
  const server = http.createServer(answer);
  reuseport.listenReusePort(server, Number(process.env.WINE_PORT), { host: '127.0.0.1' });
}

// --- the checks ------------------------------------------------------------------------------

const checks = [];
const check = (name, run) => checks.push({ name, run });
const warnings = [];
process.on('warning', (warning) => warnings.push(warning.code ?? warning.name));

check('this is Windows node.exe 22', () => {
  assert.equal(process.platform, 'win32');
  assert.match(process.version, /^v22\./);
  assert.equal(fs.existsSync(path.join(installed, 'build')), false, 'the install built nothing');
});

check('facts: Node does not honour reusePort here, and Windows has no SO_REUSEPORT (no errno, no toolchain advice)', () => {
  // Windows Node 22 has both constants, yet libuv refuses them with ENOTSUP.
  assert.notEqual(tcpConstants.UV_TCP_REUSEPORT, undefined);
  const facts = reuseport.gatherFacts();
  assert.equal(facts.platform, 'win32');
  assert.equal(facts.nodeReusePort, false);
  assert.equal(facts.nodeUdpReusePort, false);
  assert.equal(facts.addon, false);
  assert.match(facts.addonError, /^Windows has no SO_REUSEPORT/);
  assert.doesNotMatch(facts.addonError, /unknown error|errno|C\+\+|rebuild/);
});

check("libuv refuses UV_TCP_REUSEPORT here (ENOTSUP), so nodeReusePort false is Node's truth", () => {
  const { TCP, constants } = process.binding('tcp_wrap');
  const handle = new TCP(constants.SERVER);
  probing = true; // this check's own bind asks for the flag on purpose, and is not the library's
  const err = handle.bind('127.0.0.1', 0, constants.UV_TCP_REUSEPORT);
  probing = false;
  handle.close();
  assert.equal(util.getSystemErrorName(err), 'ENOTSUP');
});

check('doctor says plainly that Windows has no SO_REUSEPORT, and warns of nothing', () => {
  const cli = path.join(installed, 'dist', 'cli', 'main.js');
  const text = childProcess.execFileSync(process.execPath, [cli, 'doctor'], { encoding: 'utf8', timeout: 30_000 });
  assert.match(text, /^addon: +none: Windows has no SO_REUSEPORT/m);
  assert.match(text, /honours reusePort: no/);
  assert.match(text, /^somaxconn: +n\/a$/m);
  assert.match(text, /^plan, cluster worker: shared \(backend: cluster\)/m);
  assert.doesNotMatch(text, /warning:|unknown error|C\+\+|rebuild/);
  const report = JSON.parse(childProcess.execFileSync(process.execPath, [cli, 'doctor', '--json'], { encoding: 'utf8', timeout: 30_000 }));
  assert.deepEqual(report.warnings, []);
  assert.equal(report.facts.nodeReusePort, false);
});

check("the package's install command compiles nothing on Windows and says why", () => {
  const { install } = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8')).scripts;
  assert.equal(install, 'node install.cjs');
  // As npm runs it: in the package's folder, node_modules/.bin first on PATH (no compiler, no
  // node-gyp there). Not through cmd.exe: Wine 8's cmd runs both sides of || and && after an
  // external program, so a shell chain could not be judged here; the command is one node program.
  const env = { ...process.env, PATH: `${path.join(app, 'node_modules', '.bin')};${path.dirname(process.execPath)};C:\\windows\\system32` };
  const run = childProcess.spawnSync(process.execPath, ['install.cjs'], { cwd: installed, env, encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.status, 0, `exit ${run.status}: ${run.stdout}${run.stderr}`);
  assert.match(run.stdout, /^reuseport: Windows has no SO_REUSEPORT, so there is no native addon to build/);
  assert.doesNotMatch(`${run.stdout}${run.stderr}`, /gyp|not built|prebuild|error/i);
  assert.equal(fs.existsSync(path.join(installed, 'build')), false);
});

let standalonePort;
let standalone;
check('standalone: listenReusePort listens exclusive (Node), and answers', async () => {
  standalone = http.createServer(answer);
  const info = await reuseport.listenReusePort(standalone, 0, { host: '127.0.0.1' });
  assert.equal(info.mode, 'exclusive');
  assert.equal(info.backend, 'node');
  standalonePort = info.address.port;
  assert.equal(await get(standalonePort), String(process.pid));
  assert.equal(warnings.includes('REUSEPORT_NO_ADDON'), false, 'no warning to rebuild an addon Windows cannot use');
});

check('a second process on that port gets EADDRINUSE with Windows errno -4091', async () => {
  const child = childProcess.fork(__filename, ['second', String(standalonePort)], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  try {
    const { error } = await nextMessage(child, 'result', 30_000);
    assert.ok(error, 'the second listen must fail');
    assert.equal(error.code, 'EADDRINUSE');
    assert.equal(error.errno, -4091);
    assert.equal(util.getSystemErrorName(error.errno), 'EADDRINUSE');
  } finally {
    await stop(child);
    await new Promise((resolve) => standalone.close(resolve));
  }
});

check("bindReusePort(udp4, { address: '::1' }) rejects with EINVAL as Node does (errno -4071)", async () => {
  const socket = dgram.createSocket('udp4');
  try {
    await assert.rejects(reuseport.bindReusePort(socket, 0, { address: '::1' }), (error) => {
      assert.equal(error.code, 'EINVAL');
      assert.equal(error.errno, -4071);
      assert.equal(error.syscall, 'bind');
      return true;
    });
  } finally {
    socket.close();
  }
});

check('a UDP socket binds alone (exclusive), without SO_REUSEADDR', async () => {
  const socket = dgram.createSocket('udp4');
  try {
    const info = await reuseport.bindReusePort(socket, 0, { address: '127.0.0.1' });
    assert.equal(info.mode, 'exclusive');
  } finally {
    socket.close();
  }
});

check('setupPrimary + 2 workers: shared handle (SCHED_NONE), and both workers answer', async () => {
  const plan = reuseport.setupPrimary();
  assert.equal(plan.mode, 'shared');
  assert.equal(cluster.schedulingPolicy, cluster.SCHED_NONE);
  cluster.setupPrimary({ exec: __filename, args: ['cluster-worker'], silent: true });
  const port = await freePort();
  const workers = [0, 1].map(() => cluster.fork({ WINE_PORT: String(port) }));
  try {
    const infos = await Promise.all(workers.map((worker) => nextMessage(worker, 'info', 60_000)));
    for (const { info } of infos) {
      assert.equal(info.mode, 'shared');
      assert.equal(info.backend, 'cluster');
      assert.equal(info.address.port, port);
    }
    const pids = new Set(infos.map(({ pid }) => String(pid)));
    const seen = new Set();
    // Which worker accepts is Windows' choice: ask until both have answered, at most 200 times.
    for (let i = 0; i < 200 && seen.size < 2; i += 1) seen.add(await get(port));
    assert.deepEqual([...seen].sort(), [...pids].sort(), `answered by ${[...seen]}`);
  } finally {
    for (const worker of workers) await stop(worker);
  }
});

check('startCluster serves from 2 workers, reloads, refuses upgrade() (no slot sockets), and shuts down', async () => {
  const port = await freePort();
  const supervisor = await within(
    90_000,
    reuseport.startCluster({
      exec: __filename,
      args: ['supervised'],
      workers: 2,
      env: { WINE_PORT: String(port) },
      shutdownSignals: false,
    }),
    'startCluster',
  );
  try {
    assert.equal(supervisor.plan.mode, 'shared');
    const before = [...supervisor.pids];
    assert.equal(before.length, 2);
    assert.ok(before.includes(Number(await get(port))));
    const started = Date.now();
    await within(90_000, supervisor.reload(), 'reload');
    console.log(`# reload of 2 workers: ${Date.now() - started} ms`);
    const after = [...supervisor.pids];
    assert.equal(after.filter((pid) => before.includes(pid)).length, 0, `new workers after the reload: ${before} -> ${after}`);
    assert.ok(after.includes(Number(await get(port))));
    // No slot sockets on the shared handle: nothing to hand to a successor, said before anything starts.
    await assert.rejects(supervisor.upgrade({ exit: false }), (error) => {
      assert.equal(error.code, 'ERR_REUSEPORT_MODE_UNSUPPORTED');
      assert.match(error.message, /holds none: its plan is shared/);
      return true;
    });
    await within(60_000, supervisor.close(), 'close');
    assert.deepEqual(supervisor.pids.filter(Boolean), []);
    await assert.rejects(get(port, 3_000), (error) => error.code === 'ECONNREFUSED' || /no answer/.test(error.message));
  } finally {
    for (const worker of Object.values(cluster.workers ?? {})) await stop(worker);
  }
});

check('startCluster({ cpuLocal: true }) is refused before any worker starts: Linux only', async () => {
  await assert.rejects(reuseport.startCluster({ exec: __filename, args: ['supervised'], workers: 1, cpuLocal: true, shutdownSignals: false }), (error) => {
    assert.equal(error.code, 'ERR_REUSEPORT_MODE_UNSUPPORTED');
    assert.match(error.message, /cpuLocal cannot be used: it is Linux only .* win32/);
    return true;
  });
  assert.deepEqual(Object.keys(cluster.workers ?? {}), []);
});

check('no bind on this path asked for SO_REUSEADDR or SO_REUSEPORT', () => {
  assert.ok(binds.length > 0, 'binds were recorded');
  const reuse = binds.filter((bind) =>
    bind.kind === 'udp_wrap'
      ? bind.flags & (udpConstants.UV_UDP_REUSEADDR | (udpConstants.UV_UDP_REUSEPORT ?? 0))
      : bind.flags & (tcpConstants.UV_TCP_REUSEPORT ?? 0),
  );
  assert.deepEqual(reuse, []);
  console.log(`# ${binds.length} binds in this process, none with a reuse flag`);
});

async function runChecks() {
  let passed = 0;
  let failed = 0;
  for (const { name, run } of checks) {
    const started = Date.now();
    try {
      await within(120_000, Promise.resolve().then(run), name);
      passed += 1;
      console.log(`ok - ${name} (${Date.now() - started} ms)`);
    } catch (error) {
      failed += 1;
      console.log(`not ok - ${name}: ${error.stack ?? error}`);
    }
  }
  console.log(`wine: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

if (cluster.isWorker) {
  if (process.argv[2] === 'cluster-worker') clusterWorker();
  else supervisedWorker();
} else if (process.argv[2] === 'second') {
  secondProcess(Number(process.argv[3]));
} else {
  runChecks();
}
