// The stall scenario: 3 workers under an open-loop client (a new connection per request, at a fixed rate, from another
// process), and one worker's event loop blocked synchronously part way through. Compares how each way of sharing the
// port treats the new clients that arrive meanwhile.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createProgress } from './progress.mjs';
import { freePort, killPids, startServer, track, untrack, waitForMessage } from './servers.mjs';
import { median, medianByPosition } from './stats.mjs';

const STALL_SERVER = fileURLToPath(new URL('./stall-server.cjs', import.meta.url));
const STALL_CLIENT = fileURLToPath(new URL('./stall-client.mjs', import.meta.url));

export const STALL_CONFIGURATIONS = [
  { id: 'cluster-rr', label: 'cluster round-robin', how: 'cluster.SCHED_RR: the primary accepts and hands each connection to a worker' },
  { id: 'cluster-shared', label: 'cluster shared handle', how: "cluster.SCHED_NONE: every worker accepts on the primary's socket" },
  {
    id: 'reuseport-plain',
    label: 'reuseport, plain',
    how: 'setupPrimary() then cluster.fork(); each worker calls listenReusePort and owns its SO_REUSEPORT socket',
  },
  {
    id: 'reuseport-supervised',
    label: 'reuseport, supervised',
    how: "startCluster({ exec, workers }); stall protection lends a silent worker's slot socket to a live worker",
  },
];

/** Defaults of the stall scenario; --quick makes it shorter (1 round comes from the general settings). */
export function stallDefaults(quick) {
  return quick
    ? { workers: 3, rate: 400, durationSec: 2.5, blockAtSec: 0.5, blockSec: 1, maxInFlight: 2000, timeoutMs: 5000 }
    : { workers: 3, rate: 800, durationSec: 5, blockAtSec: 1.5, blockSec: 2, maxInFlight: 2000, timeoutMs: 5000 };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts the load client process; resolves with a handle. Killed by pid, tracked for the last-resort cleanup. */
function startClient(nodePath) {
  const child = fork(STALL_CLIENT, [], { execPath: nodePath, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  track(child.pid);
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const waitFor = (type, ms) => waitForMessage(child, type, ms, { label: 'load client', failure: 'error', stderr: () => stderr });
  return {
    pid: child.pid,
    /** Starts the open loop; returns { started, result } promises. */
    run(options, { durationMs }) {
      const started = waitFor('started', 10_000);
      const result = waitFor('result', durationMs + options.timeoutMs + 30_000);
      // Both are awaited by the caller, but a failure in one must not become an unhandled rejection first.
      started.catch(() => undefined);
      result.catch(() => undefined);
      child.send({ type: 'run', options });
      return { started, result };
    },
    async stop() {
      try {
        child.disconnect();
      } catch {
        // Already gone.
      }
      await killPids([child.pid], 1000);
      untrack(child.pid);
    },
  };
}

/** One configuration, one round. */
async function measureOnce({ cfg, round, stall, host, nodePath }) {
  const port = await freePort(host);
  const server = await startServer({ mode: cfg.id, workers: stall.workers, port, host, nodePath, script: STALL_SERVER });
  let client;
  try {
    client = startClient(nodePath);
    // The worker to block, picked by pid: the first one (slot 0 under the supervisor).
    const blockedPid = server.workerPids[0];
    await server.reset();
    const durationMs = stall.durationSec * 1000;
    const { started, result } = client.run(
      { host, port, rate: stall.rate, durationMs, maxInFlight: stall.maxInFlight, timeoutMs: stall.timeoutMs },
      { durationMs },
    );
    const { at: clientStartedAt } = await started;
    await sleep(Math.max(0, clientStartedAt + stall.blockAtSec * 1000 - Date.now()));
    const blockSentAt = Date.now();
    const blockDone = server.call({ type: 'block', pid: blockedPid, ms: stall.blockSec * 1000 }, 'block-done', stall.blockSec * 1000 + 15_000);
    const [block, clientResult] = await Promise.all([blockDone, result.then((m) => m.result)]);
    // Let the last closes land before reading the servers' counters.
    await sleep(200);
    const report = await server.call({ type: 'report' }, 'report', 10_000);

    const perWorker = report.workers.map((w) => ({
      pid: w.pid,
      requests: w.requests,
      connections: w.connections,
      cpuMicros: w.cpuMicros,
      blockedCpuMicros: w.blockedCpuMicros,
      blocked: w.pid === blockedPid,
    }));
    const connections = perWorker.reduce((a, w) => a + w.connections, 0);
    const requests = perWorker.reduce((a, w) => a + w.requests, 0);
    const workersCpu = perWorker.reduce((a, w) => a + w.cpuMicros, 0);
    const primaryCpu = report.primary.cpuMicros;
    const blockedWorker = perWorker.find((w) => w.blocked);
    const { timeline, ...clientSummary } = clientResult;
    return {
      round,
      configuration: cfg.id,
      port,
      primaryPid: server.pid,
      workerPids: server.workerPids,
      clientPid: client.pid,
      listen: server.listenInfo.map((i) => ({ mode: i?.mode, backend: i?.backend })),
      blockedPid,
      block: {
        requestedAtMs: stall.blockAtSec * 1000,
        // Relative to the client's start: when the worker really began and ended its busy-wait.
        startedAtMs: block.startedAt - clientStartedAt,
        endedAtMs: block.endedAt - clientStartedAt,
        durationMs: block.endedAt - block.startedAt,
        sentAtMs: blockSentAt - clientStartedAt,
      },
      client: clientSummary,
      over500ms: clientResult.overSlowMs,
      latencyMs: clientResult.latencyMs,
      failures: clientResult.failed,
      timeline,
      server: { requests, connections, perWorker, blockedWorkerShare: connections > 0 && blockedWorker ? blockedWorker.connections / connections : null },
      cpu: {
        // Without the busy-wait itself: that CPU is the scenario's, not the mode's.
        totalMicros: workersCpu + primaryCpu,
        primaryMicros: primaryCpu,
        microsPerConnection: connections > 0 ? (workersCpu + primaryCpu) / connections : null,
        primaryMicrosPerConnection: connections > 0 ? primaryCpu / connections : null,
      },
      supervisor: report.supervisor,
    };
  } finally {
    if (client) await client.stop();
    await server.stop();
  }
}

/** Medians over rounds of one configuration (pure; exported for the unit test). */
export function summarizeStallRounds(records) {
  const pick = (f) => median(records.map(f));
  return {
    rounds: records.length,
    sent: pick((r) => r.client.sent),
    ok: pick((r) => r.client.ok),
    over500ms: pick((r) => r.over500ms),
    over500msPercent: pick((r) => (r.client.sent > 0 ? (100 * r.over500ms) / r.client.sent : null)),
    latencyP50Ms: pick((r) => r.latencyMs.p50),
    latencyP99Ms: pick((r) => r.latencyMs.p99),
    latencyMaxMs: pick((r) => r.latencyMs.max),
    failures: pick((r) => r.failures),
    blockedWorkerShare: pick((r) => r.server.blockedWorkerShare),
    blockMs: pick((r) => r.block.durationMs),
    cpuMicrosPerConnection: pick((r) => r.cpu.microsPerConnection),
    primaryCpuMicrosPerConnection: pick((r) => r.cpu.primaryMicrosPerConnection),
    stalls: pick((r) => (r.supervisor ? r.supervisor.events.filter((e) => e.name === 'stall').length : null)),
    perWorkerConnections: medianByPosition(records.map((r) => [...r.server.perWorker.map((w) => w.connections)].sort((a, b) => b - a))),
    // Every round's figure, so the spread is visible next to the median.
    over500msByRound: records.map((r) => r.over500ms),
    latencyP99MsByRound: records.map((r) => r.latencyMs.p99),
  };
}

/** Runs every configuration for `rounds` rounds (alternating order); returns the JSON `stall` section. */
export async function runStall({ rounds, stall, host, nodePath, stderr = process.stderr }) {
  const configurations = STALL_CONFIGURATIONS.map((c) => ({ ...c, workers: stall.workers, available: true, error: null }));
  const totalSteps = rounds * configurations.length;
  const progress = createProgress({ totalLoadSec: totalSteps * stall.durationSec, totalSteps, stream: stderr });
  const records = [];
  const failures = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? configurations : [...configurations].reverse();
      for (const cfg of order) {
        progress.step(`stall round ${round}/${rounds} ${cfg.label}`, stall.durationSec);
        try {
          records.push(await measureOnce({ cfg, round, stall, host, nodePath }));
        } catch (error) {
          failures.push({ round, configuration: cfg.id, error: error.message });
          cfg.error ??= error.message.split('\n')[0];
          progress.log(`stall, ${cfg.label}: ${error.message.split('\n')[0]}`);
        }
        progress.endStep();
      }
    }
  } finally {
    progress.stop();
  }
  const summary = {};
  for (const cfg of configurations) {
    const rs = records.filter((r) => r.configuration === cfg.id);
    summary[cfg.id] = rs.length ? summarizeStallRounds(rs) : null;
  }
  const notes = [];
  for (const r of records) {
    if (Math.abs(r.block.durationMs - stall.blockSec * 1000) > 50)
      notes.push(`round ${r.round}, ${r.configuration}: the block lasted ${r.block.durationMs} ms.`);
    if (r.client.maxScheduleLagMs > 100)
      notes.push(
        `round ${r.round}, ${r.configuration}: the client's timer ran up to ${r.client.maxScheduleLagMs} ms late (it then sends the connections it owes at once).`,
      );
    if (r.client.skipped > 0)
      notes.push(`round ${r.round}, ${r.configuration}: ${r.client.skipped} connection(s) not opened because ${stall.maxInFlight} were in flight.`);
  }
  if (failures.length) notes.push(`${failures.length} stall step(s) failed; see stall.failures in the JSON.`);
  return {
    settings: { ...stall, rounds, host, slowMs: 500 },
    configurations,
    summary,
    rounds: records,
    failures,
    notes,
  };
}
