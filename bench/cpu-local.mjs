// The CPU-local comparison (`npm run bench -- --cpu-local`): startCluster with hash steering against
// startCluster({ cpuLocal: true }), one worker per CPU, and hash steering with the workers pinned as
// CPU-local mode pins them (to tell the pinning from the steering), under two client layouts:
//  - one client process, unpinned: one busy client, as the rest of the bench uses;
//  - one client process pinned to each CPU: on loopback the sending CPU handles the SYN, so this is
//    what a NIC spreading flows over CPUs (RSS) gives the server.
// Both workloads (keep-alive, a new connection per request). CPU is the workers' and the primary's
// own user+system time per request; fairness is Jain's index over the workers' request counts.
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { WORKLOADS } from './load.mjs';
import { freePort, killPids, startServer, track, untrack, waitForMessage } from './servers.mjs';
import { cpuMicrosPerRequest, jainIndex, median } from './stats.mjs';

const require = createRequire(import.meta.url);
const SERVER = fileURLToPath(new URL('./stall-server.cjs', import.meta.url));
const CLIENT = fileURLToPath(new URL('./load-client.mjs', import.meta.url));

export const CPU_LOCAL_CONFIGURATIONS = [
  {
    id: 'reuseport-supervised',
    label: 'hash steering',
    how: 'startCluster({ exec, workers }): a cBPF program spreads new connections by a hash of the client address and port',
  },
  {
    id: 'reuseport-pinned',
    label: 'hash steering, workers pinned',
    how: 'as hash steering, then the bench pins worker i to CPU i: the pinning of CPU-local mode without its steering',
  },
  {
    id: 'reuseport-cpu-local',
    label: 'CPU-local',
    how: 'startCluster({ exec, workers, cpuLocal: true }): worker i pinned to CPU i, each connection to the worker of the CPU that received its SYN',
  },
];

export const CLIENT_LAYOUTS = [
  { id: 'one-client', label: 'one client, unpinned' },
  { id: 'client-per-cpu', label: 'one client pinned to each CPU' },
];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The CPUs this process may use (the addon's sched_getaffinity), or null without the addon. */
export function allowedCpus() {
  const { loadBinding } = require('../dist/binding.js');
  const { binding } = loadBinding();
  return binding ? binding.getCpuAffinity(0) : null;
}

/** How `connections` are split over `cpus` pinned clients (pure): as evenly as possible, none empty. */
export function clientPlan(layout, connections, cpus) {
  if (layout === 'one-client') return [{ cpu: undefined, connections }];
  const n = Math.min(cpus.length, connections);
  return Array.from({ length: n }, (_, i) => ({ cpu: cpus[i], connections: Math.floor(connections / n) + (i < connections % n ? 1 : 0) }));
}

/** Starts one client process per entry of `plan`; each runs autocannon when told. Killed by pid. */
function startClients(plan, nodePath) {
  const clients = plan.map((entry) => {
    const child = fork(CLIENT, [], { execPath: nodePath, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    track(child.pid);
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr = (stderr + d).slice(-4000);
    });
    return { child, entry, stderr: () => stderr };
  });
  return {
    /** Runs every client at once for `durationSec`; resolves with their results. */
    run(url, workload, durationSec) {
      return Promise.all(
        clients.map(({ child, entry, stderr }) => {
          const reply = waitForMessage(child, 'result', (durationSec + 60) * 1000, {
            label: `load client (cpu ${entry.cpu ?? 'any'})`,
            failure: 'error',
            stderr,
          });
          child.send({ type: 'run', options: { url, workload, connections: entry.connections, durationSec, cpu: entry.cpu } });
          return reply.then((msg) => msg.result);
        }),
      );
    },
    async stop() {
      const pids = clients.map(({ child }) => child.pid);
      await killPids(pids, 500);
      for (const pid of pids) untrack(pid);
    },
  };
}

/** One measurement: warm up, reset the servers' counters, load, collect (pure summary of the numbers). */
export function summarizeMeasurement(clientResults, report) {
  const requests = report.workers.reduce((a, w) => a + w.requests, 0);
  const workersCpu = report.workers.reduce((a, w) => a + w.cpuMicros, 0);
  const counts = report.workers.map((w) => w.requests);
  return {
    requestsPerSecond: clientResults.reduce((a, r) => a + r.requestsPerSecond, 0),
    errors: clientResults.reduce((a, r) => a + r.errors.total, 0),
    p99Ms: Math.max(...clientResults.map((r) => r.latencyMs.p99 ?? 0)),
    requests,
    cpuMicrosPerRequest: cpuMicrosPerRequest(workersCpu + report.primary.cpuMicros, requests),
    primaryCpuMicrosPerRequest: cpuMicrosPerRequest(report.primary.cpuMicros, requests),
    jainIndex: jainIndex(counts),
    shares: counts.map((c) => (requests > 0 ? Math.round((c / requests) * 1000) / 1000 : 0)),
    pinnedTo: clientResults.map((r) => r.pinnedTo),
  };
}

/** Medians over rounds of one (configuration, layout, workload) (pure). */
export function summarizeCpuLocal(records) {
  const pick = (f) => median(records.map(f).filter((v) => v !== null && v !== undefined));
  return {
    rounds: records.length,
    requestsPerSecond: pick((r) => r.requestsPerSecond),
    cpuMicrosPerRequest: pick((r) => r.cpuMicrosPerRequest),
    primaryCpuMicrosPerRequest: pick((r) => r.primaryCpuMicrosPerRequest),
    jainIndex: pick((r) => r.jainIndex),
    p99Ms: pick((r) => r.p99Ms),
    errors: records.reduce((a, r) => a + r.errors, 0),
    // Per round, each worker's share (sorted, largest first): how lopsided it was, whichever worker it hit.
    sharesByRound: records.map((r) => [...r.shares].sort((a, b) => b - a)),
  };
}

/** Runs the comparison; resolves with { settings, cpus, configurations, layouts, records, summary, failures }. */
export async function runCpuLocal({ rounds, durationSec, warmupSec, connections, host = '127.0.0.1', nodePath = process.execPath, onStep = () => undefined }) {
  const cpus = allowedCpus();
  if (!cpus) throw new Error('the CPU-local comparison needs the native addon (sched_getaffinity, cBPF)');
  const workers = cpus.length;
  const records = [];
  const failures = [];
  for (let round = 1; round <= rounds; round++) {
    // Alternate the order so that drift over the run favours neither.
    const configurations = round % 2 === 1 ? CPU_LOCAL_CONFIGURATIONS : [...CPU_LOCAL_CONFIGURATIONS].reverse();
    for (const cfg of configurations) {
      const port = await freePort(host);
      let server;
      try {
        server = await startServer({ mode: cfg.id, workers, port, host, nodePath, script: SERVER });
      } catch (error) {
        failures.push({ round, configuration: cfg.id, error: error.message });
        continue;
      }
      try {
        for (const layout of CLIENT_LAYOUTS) {
          for (const workload of WORKLOADS) {
            onStep(`round ${round}/${rounds} ${cfg.label}, ${layout.label}, ${workload}`);
            const clients = startClients(clientPlan(layout.id, connections, cpus), nodePath);
            try {
              const url = `http://${host}:${port}/`;
              if (warmupSec > 0) await clients.run(url, workload, warmupSec);
              await sleep(100);
              await server.reset();
              const results = await clients.run(url, workload, durationSec);
              await sleep(250);
              const report = await server.report();
              records.push({ round, configuration: cfg.id, layout: layout.id, workload, ...summarizeMeasurement(results, report) });
            } catch (error) {
              failures.push({ round, configuration: cfg.id, layout: layout.id, workload, error: error.message });
            } finally {
              await clients.stop();
            }
          }
        }
      } finally {
        await server.stop();
      }
    }
  }
  const summary = {};
  for (const cfg of CPU_LOCAL_CONFIGURATIONS) {
    for (const layout of CLIENT_LAYOUTS) {
      for (const workload of WORKLOADS) {
        const rs = records.filter((r) => r.configuration === cfg.id && r.layout === layout.id && r.workload === workload);
        summary[`${cfg.id}|${layout.id}|${workload}`] = rs.length ? summarizeCpuLocal(rs) : null;
      }
    }
  }
  return {
    settings: { rounds, durationSec, warmupSec, connections, workers },
    cpus,
    configurations: CPU_LOCAL_CONFIGURATIONS,
    layouts: CLIENT_LAYOUTS,
    records,
    summary,
    failures,
  };
}

const fmt = (v, digits = 0) => (v === null || v === undefined ? 'n/a' : v.toFixed(digits));

/** The comparison as a Markdown table (pure). */
export function cpuLocalMarkdown(result) {
  const lines = [
    `| workload | clients | steering | requests/s | CPU µs/request (primary) | Jain | busiest worker's share per round | p99 ms | errors |`,
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const workload of WORKLOADS) {
    for (const layout of result.layouts) {
      for (const cfg of result.configurations) {
        const s = result.summary[`${cfg.id}|${layout.id}|${workload}`];
        if (!s) {
          lines.push(`| ${workload} | ${layout.label} | ${cfg.label} | failed | | | | | |`);
          continue;
        }
        const busiest = s.sharesByRound.map((shares) => `${Math.round((shares[0] ?? 0) * 100)}%`).join(', ');
        lines.push(
          `| ${workload} | ${layout.label} | ${cfg.label} | ${fmt(s.requestsPerSecond)} | ${fmt(s.cpuMicrosPerRequest)} (${fmt(s.primaryCpuMicrosPerRequest)}) | ${fmt(s.jainIndex, 3)} | ${busiest} | ${fmt(s.p99Ms, 1)} | ${s.errors} |`,
        );
      }
    }
  }
  return lines.join('\n');
}
