// Starts, talks to and stops one configuration's server processes (bench/server.cjs), always by pid and with hard timeouts.
import { execFileSync, fork } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const SERVER_SCRIPT = fileURLToPath(new URL('./server.cjs', import.meta.url));

/** Every pid the bench started and has not seen exit: the last-resort cleanup kills these. */
const live = new Set();

/** Asks the given Node binary what it can do (see capabilities() in server.cjs). */
export function probeNode(nodePath) {
  const out = execFileSync(nodePath, [SERVER_SCRIPT, '--probe'], { encoding: 'utf8', timeout: 15_000, stdio: ['ignore', 'pipe', 'ignore'] });
  return JSON.parse(out.trim());
}

/**
 * A free TCP port on 127.0.0.1: bind port 0, read it, close. Another process could take it in
 * between; for a loopback bench on an otherwise idle box that risk is accepted.
 */
export function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Whether a process with this pid exists (EPERM: it does, another user's). */
export function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitGone(pids, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (pids.every((pid) => !isAlive(pid))) return true;
    await sleep(25);
  }
  return pids.every((pid) => !isAlive(pid));
}

/** Kills the given pids: SIGTERM, then SIGKILL after `graceMs`. Never by name. */
export async function killPids(pids, graceMs = 2000) {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // Already gone.
    }
  }
  if (await waitGone(pids, graceMs)) return;
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  await waitGone(pids, 2000);
}

/** Synchronous last resort for process 'exit' handlers: SIGKILL every pid still recorded. */
export function killAllSync() {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  live.clear();
}

/** Records a pid this bench started some other way (the stall scenario's load client), so the last-resort cleanup kills it too. */
export function track(pid) {
  if (Number.isInteger(pid)) live.add(pid);
}

/** Forgets a pid once it is known to be gone. */
export function untrack(pid) {
  live.delete(pid);
}

/** Pids still running that this module started (for the test's leak check). */
export function livePids() {
  return [...live].filter(isAlive);
}

/**
 * Starts one configuration and resolves once every worker listens.
 * Returns a handle with reset(), report() and stop().
 */
/**
 * Resolves with the child's next message of `type`; rejects on a `failure` message, on its exit, or
 * after `ms`. `stderr()` gives what the child printed, for the error.
 */
export function waitForMessage(child, type, ms, { label, failure, stderr }) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`${label}: no '${type}' from pid ${child.pid} within ${ms} ms\n${stderr()}`)), ms);
    const onMessage = (msg) => {
      if (msg?.type === type) done(null, msg);
      else if (msg?.type === failure) done(new Error(`${label}: ${msg.error.message}\n${stderr()}`));
    };
    const onExit = (code, signal) => done(new Error(`${label}: pid ${child.pid} exited (code ${code}, signal ${signal})\n${stderr()}`));
    function done(err, msg) {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(msg);
    }
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

export async function startServer({
  mode,
  workers,
  port,
  host = '127.0.0.1',
  nodePath = process.execPath,
  readyTimeoutMs = 20_000,
  script = SERVER_SCRIPT,
  env = {},
}) {
  const child = fork(script, ['--mode', mode, '--workers', String(workers), '--port', String(port), '--host', host], {
    execPath: nodePath,
    // `env`: entries added to this process's environment (BENCH_BALANCE=0, BENCH_STALL=0: see server.cjs).
    env: { ...process.env, ...env },
    // stdout/stderr piped, not inherited, so worker noise cannot break the progress bar; kept for error messages.
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    // DEP0111 (process.binding) is expected in the probe; keep stderr for real problems.
    execArgv: ['--no-deprecation'],
  });
  live.add(child.pid);
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  child.stdout.resume();

  let exited = false;
  const pids = new Set([child.pid]);
  child.on('exit', () => {
    exited = true;
  });
  child.on('message', (msg) => {
    if (msg.type === 'worker-pid') {
      pids.add(msg.pid);
      live.add(msg.pid);
    }
  });

  const waitFor = (type, ms) => waitForMessage(child, type, ms, { label: mode, failure: 'failed', stderr: () => stderr });

  const stop = async () => {
    const all = [...pids];
    if (!exited) {
      try {
        child.send({ type: 'stop' });
      } catch {
        // IPC already closed; the kill below still applies.
      }
    }
    // The primary stops its workers; anything still running after 3 s is killed by pid.
    if (!(await waitGone(all, 3000))) await killPids(all.filter(isAlive));
    for (const pid of all) live.delete(pid);
  };

  try {
    const ready = await waitFor('ready', readyTimeoutMs);
    for (const w of ready.workers) {
      pids.add(w.pid);
      live.add(w.pid);
    }
    return {
      mode,
      pid: child.pid,
      workerPids: ready.workers.map((w) => w.pid),
      listenInfo: ready.workers.map((w) => w.info),
      async reset() {
        child.send({ type: 'reset' });
        await waitFor('reset-done', 10_000);
      },
      async report() {
        child.send({ type: 'report' });
        const msg = await waitFor('report', 10_000);
        return { primary: msg.primary, workers: msg.workers };
      },
      /** Sends any message to the primary and resolves with its reply of type `replyType` (bench/stall-server.cjs uses this). */
      async call(message, replyType, ms = 10_000) {
        const reply = waitFor(replyType, ms);
        child.send(message);
        return reply;
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
