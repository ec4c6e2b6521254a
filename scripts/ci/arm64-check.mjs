// The linux-arm64 prebuild for real, under qemu-user (scripts/ci/arm64-test.sh sets it up): runs
// the scripts of arm64/ with the arm64 Node (the wrapper `node`, argv[2]) in the project that
// installed the release tarball with scripts off (argv[3]), and checks from this (x64) Node:
// 1. the consumer require.cjs loads prebuilds/linux-arm64/reuseport.glibc.node (its /proc/self/maps,
//    which qemu serves for the guest) and serves a request in reuseport mode via the addon; the
//    addon's acceptQueue refuses qemu's 4-byte TCP_INFO answer with ENOTSUP (defect 8);
// 2. two standalone processes share one port through the addon (reuseport/addon) and both answer
//    new connections;
// 3. startCluster serves from 2 workers, reloads to 2 new workers that serve too; no worker is told
//    of a steering program that is not attached (qemu refuses SO_ATTACH_REUSEPORT_CBPF with
//    ENOPROTOOPT: defect 7), and each is told where its accept queue is read (qemu answers TCP_INFO
//    with 4 bytes: the listener table, /proc/net/tcp here: defect 8).
// Every process is started here and stopped by its pid; every wait is bounded.
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';

const [node, project] = process.argv.slice(2);
if (!node || !project) {
  console.error('usage: arm64-check.mjs <arm64 node wrapper> <project with reuseport installed>');
  process.exit(2);
}
const started = [];
// Workers of the supervisor (its children): stopped by pid at the end if still there.
const workerPids = new Set();
const problems = [];
const check = (ok, what) => {
  console.log(`arm64: ${ok ? 'ok' : 'FAILED'}: ${what}`);
  if (!ok) problems.push(what);
};

function start(args, { stdin = false } = {}) {
  const child = spawn(node, args, { cwd: project, stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'inherit'] });
  started.push(child);
  const lines = [];
  const waiters = [];
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    for (const waiter of waiters.splice(0)) waiter();
  });
  child.on('exit', () => {
    for (const waiter of waiters.splice(0)) waiter();
  });
  // The next JSON line on stdout (bounded; qemu starts Node about 5x slower).
  let read = 0;
  const next = async (ms = 120_000) => {
    const deadline = Date.now() + ms;
    while (read >= lines.length) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${args.join(' ')} exited (${child.exitCode ?? child.signalCode})`);
      if (Date.now() > deadline) throw new Error(`${args.join(' ')}: no output within ${ms} ms`);
      await new Promise((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 500);
      });
    }
    return lines[read++];
  };
  return { child, next };
}

function get(port) {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve(body));
    });
    request.on('error', reject);
    request.setTimeout(10_000, () => request.destroy(new Error('request timed out')));
  });
}

// New connections (one per request) until every pid answered: at most 200 requests, 60 s.
async function answering(port, pids) {
  const seen = new Map();
  const deadline = Date.now() + 60_000;
  for (let i = 0; i < 200 && Date.now() < deadline; i++) {
    const pid = Number(await get(port));
    seen.set(pid, (seen.get(pid) ?? 0) + 1);
    if (i >= 19 && pids.every((wanted) => seen.has(wanted))) break;
  }
  return seen;
}

const counts = (seen) => [...seen].map(([pid, count]) => `${pid}: ${count}`).join(', ');

async function loads() {
  const consumer = start(['require.cjs']);
  const line = await consumer.next();
  await new Promise((resolve) => (consumer.child.exitCode !== null ? resolve() : consumer.child.once('exit', resolve)));
  check(
    consumer.child.exitCode === 0 && / via addon /.test(line) && line.includes('/prebuilds/linux-arm64/reuseport.glibc.node'),
    `loads the linux-arm64 prebuild and serves (${line})`,
  );
}

async function acceptQueue() {
  const reader = start([path.join('arm64', 'accept-queue.cjs')]);
  const result = JSON.parse(await reader.next());
  check(result.code === 'ENOTSUP' && result.syscall === 'getsockopt', `acceptQueue refuses qemu's short TCP_INFO answer (${JSON.stringify(result)})`);
}

async function standalone() {
  const first = start([path.join('arm64', 'standalone.cjs'), '0']);
  const a = JSON.parse(await first.next());
  const second = start([path.join('arm64', 'standalone.cjs'), String(a.port)]);
  const b = JSON.parse(await second.next());
  check(
    a.mode === 'reuseport' && a.backend === 'addon' && b.mode === 'reuseport' && b.backend === 'addon' && b.port === a.port,
    `two standalone processes on port ${a.port}: ${a.mode}/${a.backend}, ${b.mode}/${b.backend}`,
  );
  const seen = await answering(a.port, [a.pid, b.pid]);
  check(seen.has(a.pid) && seen.has(b.pid) && seen.size === 2, `both answer new connections (${counts(seen)})`);
  for (const process_ of [first, second]) process_.child.kill('SIGTERM');
}

function checkWorkers(state, when) {
  for (const pid of state.pids) workerPids.add(pid);
  const [steering] = state.steering;
  check(
    state.plan.mode === 'reuseport' && state.plan.backend === 'addon' && state.pids.length === 2,
    `${when}: startCluster reuseport/addon with 2 workers (${state.pids.join(', ')})`,
  );
  const claims = (worker) => (worker.reasons ?? []).some((reason) => /a cBPF program on the SO_REUSEPORT group sends/.test(reason));
  for (const worker of state.workers) {
    check(
      worker.mode === 'reuseport' && claims(worker) === Boolean(steering?.enabled),
      `${when}: worker ${worker.pid} is told of steering only if it is attached (attached: ${steering?.enabled}; ${steering?.reason})`,
    );
    check(
      (worker.reasons ?? []).some((reason) => /listener table/.test(reason)),
      `${when}: worker ${worker.pid} is told its queue is read from the listener table (TCP_INFO is short under qemu)`,
    );
  }
}

async function supervised() {
  const primary = start([path.join('arm64', 'cluster.cjs')], { stdin: true });
  const ready = JSON.parse(await primary.next());
  checkWorkers(ready, 'start');
  const port = ready.ports[0];
  let seen = await answering(port, ready.pids);
  check(
    ready.pids.every((pid) => seen.has(pid)),
    `both workers answer on port ${port} (${counts(seen)})`,
  );
  const reloadStarted = Date.now();
  primary.child.stdin.write('reload\n');
  const reloaded = JSON.parse(await primary.next());
  const reloadMs = Date.now() - reloadStarted;
  check(
    reloaded.pids.every((pid) => !ready.pids.includes(pid)),
    `reload replaced both workers in ${reloadMs} ms (${ready.pids.join(', ')} -> ${reloaded.pids.join(', ')})`,
  );
  checkWorkers(reloaded, 'after the reload');
  seen = await answering(port, reloaded.pids);
  check(
    reloaded.pids.every((pid) => seen.has(pid)),
    `both new workers answer (${counts(seen)})`,
  );
  primary.child.stdin.write('close\n');
  const closed = JSON.parse(await primary.next());
  check(closed.type === 'closed', 'closes');
}

try {
  for (const [name, run] of [
    ['loads', loads],
    ['acceptQueue', acceptQueue],
    ['standalone', standalone],
    ['startCluster', supervised],
  ]) {
    const begun = Date.now();
    await run();
    console.log(`arm64: ${name} took ${Date.now() - begun} ms`);
  }
} catch (error) {
  problems.push(error.message);
  console.error(`arm64: ${error.stack}`);
} finally {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const pid of workerPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
if (problems.length > 0) {
  console.error(`arm64: ${problems.length} problem(s): ${problems.join('; ')}`);
  process.exit(1);
}
console.log('arm64: passed');
