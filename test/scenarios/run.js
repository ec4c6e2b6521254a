// One reload or crash scenario, run inside a network namespace the test made (see test/helpers/netns.ts):
// starts the workers (supervised or not), drives load from a child process, reloads or kills, and
// prints one JSON line with what the client saw. argv[2] is the JSON config.
'use strict';
const { once } = require('./messages');
const cluster = require('node:cluster');
const fs = require('node:fs');
const path = require('node:path');
const { fork } = require('node:child_process');
const { setupPrimary, startCluster } = require('../..');

const config = {
  scenario: 'reload', // 'reload' | 'crash' | 'keepalive' | 'stall' | 'pooled' (undici Pool 8 + Agent 8, keep-alive)
  way: 'supervised', // 'supervised' | 'plain' (each worker its own socket, server.close) | 'plain-helper' (closeListener)
  mode: 'reuseport',
  workers: 3,
  reloads: 5,
  concurrency: 64,
  rate: 2000,
  durationMs: 4000,
  killAtMs: 1500,
  blockAtMs: 1500,
  blockMs: 2000,
  blocks: 1,
  blockEveryMs: 400,
  stallReplaceMs: undefined,
  stallThresholdMs: undefined,
  cpuLocal: false,
  tls: false, // https workers (test/fixtures/tls)
  drainTimeoutMs: undefined,
  port: 8000,
  ...JSON.parse(process.argv[2] ?? '{}'),
};
const worker = path.join(__dirname, 'worker.js');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const migrate = Number(fs.readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim());

// Workers without the supervisor: each binds its own socket (reuseport) or listens through the primary.
function plainCluster() {
  setupPrimary({ mode: config.mode });
  cluster.setupPrimary({ exec: worker });
  const workers = [];
  const forkOne = async () => {
    const w = cluster.fork({ SCENARIO_PORT: String(config.port) });
    await once(w, 'ready');
    return w;
  };
  return {
    async start() {
      for (let i = 0; i < config.workers; i++) workers.push(await forkOne());
    },
    async reload() {
      for (let i = 0; i < workers.length; i++) {
        const old = workers[i];
        workers[i] = await forkOne();
        const exited = new Promise((resolve) => old.once('exit', resolve));
        old.send({ type: 'stop', helper: config.way === 'plain-helper' });
        await exited;
      }
    },
    blockOne(ms) {
      workers[0].send({ type: 'block', ms });
    },
    async killOne() {
      const victim = workers[0];
      const replaced = new Promise((resolve) =>
        victim.once('exit', async () => {
          workers[0] = await forkOne();
          resolve(workers[0].process.pid);
        }),
      );
      out.victimOpenAtKill = await killNine(victim);
      return replaced;
    },
    async close() {
      for (const w of workers) w.process.kill('SIGKILL');
    },
  };
}

const events = [];
const out = {};

// Kills a worker with SIGKILL, sent by itself once it has written how many connections it holds
// open (test/scenarios/worker.js): a kill -9 cannot save those, and nothing else may be lost.
// Resolves with that count (undefined if the worker could not say).
function killNine(worker) {
  const file = path.join(require('node:os').tmpdir(), `reuseport-scenario-${process.pid}-${worker.process.pid}`);
  return new Promise((resolve) => {
    worker.once('exit', () => {
      let count;
      try {
        count = Number(fs.readFileSync(file, 'utf8'));
        fs.unlinkSync(file);
      } catch {
        count = undefined;
      }
      resolve(count);
    });
    worker.send({ type: 'die', file });
    // A worker that cannot act on the message (blocked, gone) is killed from here after 2 s.
    setTimeout(() => worker.isDead() || worker.process.kill('SIGKILL'), 2000).unref();
  });
}

function supervisedCluster() {
  let supervisor;
  return {
    async start() {
      supervisor = await startCluster({
        exec: worker,
        workers: config.workers,
        mode: config.mode,
        env: { SCENARIO_PORT: String(config.port), SCENARIO_TLS: config.tls ? '1' : '0' },
        ...(config.drainTimeoutMs === undefined ? {} : { drainTimeoutMs: config.drainTimeoutMs }),
        ...(config.stallThresholdMs === undefined ? {} : { stallThresholdMs: config.stallThresholdMs }),
        ...(config.stallReplaceMs === undefined ? {} : { stallReplaceMs: config.stallReplaceMs }),
        cpuLocal: config.cpuLocal,
      });
      supervisor.on('stall', (event) => events.push({ name: 'stall', ...event }));
      supervisor.on('recover', (event) => events.push({ name: 'recover', ...event }));
      supervisor.on('stall-replace', (event) => events.push({ name: 'stall-replace', ...event }));
      supervisor.on('exit', (event) => events.push({ name: 'exit', ...event }));
    },
    blockOne(ms) {
      const pid = supervisor.pids[0];
      Object.values(cluster.workers)
        .find((w) => w.process.pid === pid)
        ?.send({ type: 'block', ms });
    },
    stats: () => supervisor.stats(),
    pids: () => supervisor.pids,
    reload: () => supervisor.reload(),
    async killOne() {
      const victim = supervisor.pids[0];
      const replaced = new Promise((resolve) => {
        const onListening = (event) => {
          if (event.slot !== 0 || event.pid === victim) return;
          supervisor.off('listening', onListening);
          resolve(event.pid);
        };
        supervisor.on('listening', onListening);
      });
      const worker = Object.values(cluster.workers ?? {}).find((w) => w.process.pid === victim);
      out.victimOpenAtKill = await killNine(worker);
      return replaced;
    },
    close: () => supervisor.close(),
  };
}

async function main() {
  const workers = config.way === 'supervised' ? supervisedCluster() : plainCluster();
  await workers.start();
  // Open fds of each worker, counted while no client connection is open.
  const fds = () => Object.fromEntries((workers.pids?.() ?? []).map((pid) => [pid, fs.readdirSync(`/proc/${pid}/fd`).length]));
  Object.assign(out, { config, migrate, fdsBefore: fds(), cpus: require('../../dist/binding.js').loadBinding().binding?.getCpuAffinity(0) });
  const client = fork(path.join(__dirname, config.scenario === 'pooled' ? 'pooled-clients.js' : 'load-child.js'));
  try {
    if (config.scenario === 'pooled') {
      // Keep-alive clients that reuse their connections (as a proxy or an API client does), over reloads.
      client.send({ type: 'start', port: config.port, tls: config.tls });
      await once(client, 'started');
      await sleep(500);
      out.reloadMs = [];
      for (let i = 0; i < config.reloads; i++) {
        const started = Date.now();
        await workers.reload();
        out.reloadMs.push(Date.now() - started);
        await sleep(300);
      }
      client.send({ type: 'stop' });
      out.load = (await once(client, 'result')).result;
    } else if (config.scenario === 'reload' || config.scenario === 'keepalive') {
      const keepAlive = config.scenario === 'keepalive';
      client.send({ type: 'closed', options: { port: config.port, concurrency: keepAlive ? 8 : config.concurrency, keepAlive } });
      await once(client, 'started');
      if (keepAlive) {
        client.send({ type: 'idle', port: config.port });
        await once(client, 'idling');
      }
      await sleep(500);
      out.reloadMs = [];
      let slow;
      for (let i = 0; i < config.reloads; i++) {
        if (keepAlive && i === 0) {
          // Requests in flight on the old workers when the reload starts.
          // 18 on their own connections, so that some land on slot 0 (all miss it with odds (2/3)^18), whose
          // worker drains first while they are still in flight (1.5 s each; slot 0's drain starts ~0.5 s in).
          client.send({ type: 'requests', port: config.port, paths: Array.from({ length: 18 }, () => '/slow?ms=1500') });
          slow = once(client, 'responses');
          await sleep(100);
        }
        const started = Date.now();
        await workers.reload();
        out.reloadMs.push(Date.now() - started);
        await sleep(200);
      }
      if (slow) out.slow = (await slow).results;
      if (keepAlive) {
        client.send({ type: 'idle-result' });
        out.idleClosedByServer = (await once(client, 'idle-result')).closedByServer;
      }
      await sleep(300);
      client.send({ type: 'stop' });
      out.load = (await once(client, 'result')).result;
    } else if (config.scenario === 'stall') {
      client.send({ type: 'open', options: { port: config.port, rate: config.rate, durationMs: config.durationMs } });
      const result = once(client, 'result', config.durationMs + 30_000);
      await sleep(config.blockAtMs);
      for (let i = 0; i < config.blocks; i++) {
        workers.blockOne(config.blockMs);
        if (i < config.blocks - 1) await sleep(config.blockMs + config.blockEveryMs);
      }
      out.load = (await result).result;
      await sleep(500);
      out.fdsAfter = fds();
      out.events = events;
      out.stats = workers.stats?.();
    } else if (config.scenario === 'crash') {
      client.send({ type: 'open', options: { port: config.port, rate: config.rate, durationMs: config.durationMs } });
      const result = once(client, 'result', config.durationMs + 30_000);
      // Balance: how often the steering weights changed (sampled every 20 ms), before and after the kill.
      let weights = '';
      let killed = false;
      out.weightChanges = { beforeKill: 0, afterKill: 0 };
      const sampler = setInterval(() => {
        const now = (workers.stats?.() ?? []).map((slot) => slot.weight).join(':');
        if (now !== weights) out.weightChanges[killed ? 'afterKill' : 'beforeKill'] += 1;
        weights = now;
      }, 20);
      await sleep(config.killAtMs);
      const killedAt = Date.now();
      killed = true;
      const replacement = await Promise.race([workers.killOne(), sleep(10_000).then(() => undefined)]);
      out.replacedInMs = replacement ? Date.now() - killedAt : undefined;
      out.load = (await result).result;
      clearInterval(sampler);
      out.events = events;
    }
  } finally {
    client.kill('SIGKILL');
    await workers.close();
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
