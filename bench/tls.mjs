// TLS session resumption across workers: `node bench/tls.mjs`. Compares startCluster({ ticketKeys: true }) (the default:
// one session-ticket key given by the supervisor to every https worker) with ticketKeys: false (each worker keeps its own
// random key, so a ticket resumes only on the worker that sealed it, about 1 reconnection in N).
//
// For each configuration a supervised cluster of https workers runs in its own process (bench/tls-server.cjs, stopped
// by pid), and a closed-loop client runs in another (this file with --client, so it never shares an event loop with the
// servers): `concurrency` lanes, each reconnecting again and again with the last session it got (a new TCP + TLS
// connection per request: GET /, read to the end, close). Reported per configuration and TLS version: reconnections per
// second, the share resumed, and the servers' CPU per reconnection: utime + stime of the supervisor and of every worker
// from /proc/<pid>/stat, before and after the measured window, over the reconnections completed in it.
// Configurations alternate (AB, BA, AB); figures are medians of the runs.
import { execFileSync, fork, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isAlive, killAllSync, killPids, track, untrack, waitForMessage } from './servers.mjs';
import { median, percentiles } from './stats.mjs';

const THIS_FILE = fileURLToPath(import.meta.url);
const HERE = path.dirname(THIS_FILE);
const ROOT = path.join(HERE, '..');
const SERVER = path.join(HERE, 'tls-server.cjs');
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'tls');
const HOST = '127.0.0.1';
const SECTION = '## TLS session resumption';
const SCHEMA = 'reuseport-bench-tls/1';

export const CONFIGURATIONS = [
  {
    id: 'shared',
    label: 'shared key',
    ticketKeys: true,
    how: 'startCluster({ ticketKeys: true }), the default: the supervisor gives every worker the same ticket key',
  },
  {
    id: 'per-worker',
    label: 'key per worker',
    ticketKeys: false,
    how: 'startCluster({ ticketKeys: false }): each worker keeps the random key Node gave its server',
  },
];

const VERSIONS = { 1.3: ['TLSv1.3'], 1.2: ['TLSv1.2'], both: ['TLSv1.3', 'TLSv1.2'] };

const USAGE = `usage: node bench/tls.mjs [options]
  --workers N        https workers per cluster (default 4)
  --duration-ms N    measured time per configuration, TLS version and run (default 5000; 1000 with --quick)
  --concurrency N    client lanes, each reconnecting with its last session (default 8)
  --tls V            1.3, 1.2 or both (default both)
  --runs N           runs per configuration, alternating order; medians are reported (default 3; 1 with --quick)
  --warmup-ms N      unmeasured reconnections before each measurement (default 500; 200 with --quick)
  --cert C           ecdsa: the repository's test certificate (test/fixtures/tls, ECDSA P-256; default);
                     rsa: a throw-away RSA-2048 self-signed certificate made with the openssl command
  --quick            1 run of 1 s per configuration and TLS version (smoke run)
  --out FILE         replace (or append) the "${SECTION}" section at the end of FILE (docs/benchmarks.md)
  --results DIR      where to write <date>-<host>-tls.json (default bench/results)
  --from-json FILE   print the table (and with --out write the section) from a saved result, measuring nothing
  --help`;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- settings ------------------------------------------------------------------------------------

function positiveInt(name, value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${value}`);
  return n;
}

export function parseSettings(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      workers: { type: 'string' },
      'duration-ms': { type: 'string' },
      concurrency: { type: 'string' },
      tls: { type: 'string' },
      runs: { type: 'string' },
      'warmup-ms': { type: 'string' },
      cert: { type: 'string' },
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      results: { type: 'string' },
      'from-json': { type: 'string' },
      help: { type: 'boolean', default: false, short: 'h' },
    },
    strict: true,
  });
  const quick = values.quick;
  const tlsChoice = values.tls ?? 'both';
  if (!VERSIONS[tlsChoice]) throw new Error(`--tls must be 1.3, 1.2 or both, got ${tlsChoice}`);
  const cert = values.cert ?? 'ecdsa';
  if (!['ecdsa', 'rsa'].includes(cert)) throw new Error(`--cert must be ecdsa or rsa, got ${cert}`);
  const warmupMs = values['warmup-ms'] !== undefined ? Number(values['warmup-ms']) : quick ? 200 : 500;
  if (!Number.isInteger(warmupMs) || warmupMs < 0) throw new Error(`--warmup-ms must be an integer >= 0, got ${values['warmup-ms']}`);
  return {
    help: values.help,
    quick,
    workers: values.workers ? positiveInt('workers', values.workers) : 4,
    durationMs: values['duration-ms'] ? positiveInt('duration-ms', values['duration-ms']) : quick ? 1000 : 5000,
    concurrency: values.concurrency ? positiveInt('concurrency', values.concurrency) : 8,
    tls: tlsChoice,
    versions: VERSIONS[tlsChoice],
    runs: values.runs ? positiveInt('runs', values.runs) : quick ? 1 : 3,
    warmupMs,
    cert,
    out: values.out ? path.resolve(values.out) : null,
    resultsDir: path.resolve(values.results ?? path.join(HERE, 'results')),
    fromJson: values['from-json'] ? path.resolve(values['from-json']) : null,
    // Per reconnection: a stuck one fails instead of holding its lane.
    timeoutMs: 5_000,
  };
}

// ---- CPU from /proc --------------------------------------------------------------------------------

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (`getconf CLK_TCK`, 100 almost everywhere). */
export function clockTicks() {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    if (Number.isInteger(n) && n > 0) return n;
  } catch {
    // Fall through to Linux's USER_HZ.
  }
  return 100;
}

/**
 * utime + stime (ticks) and the start time of a process, from /proc/<pid>/stat. The command name (field 2)
 * may hold spaces and parentheses, so fields are counted after its last ')'.
 */
export function parseProcStat(text) {
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
  return { utime: Number(rest[11]), stime: Number(rest[12]), starttime: rest[19] };
}

/** CPU ticks of each pid; throws if one is gone (a worker replaced during the window would be missing). */
function readCpu(pids) {
  return pids.map((pid) => {
    let text;
    try {
      text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      throw new Error(`process ${pid} is gone: its CPU time cannot be counted`);
    }
    const s = parseProcStat(text);
    return { pid, ticks: s.utime + s.stime, starttime: s.starttime };
  });
}

// ---- the certificate -------------------------------------------------------------------------------

/** The key and certificate files for the servers, and what the key is. `cleanup` removes a generated one. */
function prepareCertificate(kind) {
  if (kind === 'ecdsa') return { key: path.join(FIXTURES, 'key.pem'), cert: path.join(FIXTURES, 'cert.pem'), cleanup: () => undefined };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'reuseport-bench-tls-'));
  const files = { key: path.join(dir, 'key.pem'), cert: path.join(dir, 'cert.pem') };
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', files.key, '-out', files.cert, '-days', '1', '-subj', '/CN=localhost'],
      {
        timeout: 30_000,
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`--cert rsa needs the openssl command: ${error.message.split('\n')[0]}`);
  }
  return { ...files, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** What the server key is ("ECDSA P-256", "RSA-2048") and what one signature with it costs here, alone. */
function describeKey(keyFile) {
  const key = crypto.createPrivateKey(readFileSync(keyFile));
  const d = key.asymmetricKeyDetails ?? {};
  const name =
    key.asymmetricKeyType === 'rsa'
      ? `RSA-${d.modulusLength}`
      : key.asymmetricKeyType === 'ec'
        ? `ECDSA ${d.namedCurve === 'prime256v1' ? 'P-256' : d.namedCurve}`
        : key.asymmetricKeyType;
  // For comparison, the two usual certificate keys, made here for the occasion.
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const reference = { 'RSA-2048': signMicros(rsa), 'ECDSA P-256': signMicros(ec) };
  return { name, signMicros: signMicros(key), reference };
}

/** Microseconds per SHA-256 signature with `key`: the best of 3 batches of 50, after 20 unmeasured (about 50 ms with RSA-2048). */
function signMicros(key) {
  const data = crypto.randomBytes(64);
  for (let i = 0; i < 20; i++) crypto.sign('sha256', data, key);
  let best = Infinity;
  for (let batch = 0; batch < 3; batch++) {
    const t0 = performance.now();
    for (let i = 0; i < 50; i++) crypto.sign('sha256', data, key);
    best = Math.min(best, ((performance.now() - t0) * 1000) / 50);
  }
  return Math.round(best);
}

// ---- the servers -----------------------------------------------------------------------------------

/** Starts bench/tls-server.cjs; resolves once every worker listens. Every pid is tracked for the last-resort cleanup. */
async function startTlsServer({ workers, ticketKeys, cert, maxMs }) {
  const args = [
    SERVER,
    '--workers',
    String(workers),
    '--ticket-keys',
    String(ticketKeys),
    '--host',
    HOST,
    '--key',
    cert.key,
    '--cert',
    cert.cert,
    '--max-ms',
    String(maxMs),
  ];
  // stdin is a pipe the server watches: if this process dies, the server stops by itself.
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  track(child.pid);
  const pids = new Set([child.pid]);
  const exits = [];
  let stderr = '';
  let exited = false;
  let onLine = () => undefined;
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  let buffer = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    buffer += chunk;
    for (let end = buffer.indexOf('\n'); end >= 0; end = buffer.indexOf('\n')) {
      const text = buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
      let line;
      try {
        line = JSON.parse(text);
      } catch {
        continue; // A worker's stray output.
      }
      for (const pid of line.pids ?? []) {
        pids.add(pid);
        track(pid);
      }
      if (line.type === 'exit') exits.push(line);
      onLine(line);
    }
  });
  const exitedPromise = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  exitedPromise.then(() => {
    exited = true;
  });

  const stop = async () => {
    const all = [...pids];
    // startCluster's graceful shutdown (SIGTERM) stops the workers; anything left after 3 s is killed by pid.
    if (!exited) {
      try {
        process.kill(child.pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
    }
    child.stdin.destroy();
    const deadline = Date.now() + 3_000;
    while (Date.now() < deadline && all.some(isAlive)) await sleep(25);
    const left = all.filter(isAlive);
    if (left.length) await killPids(left, 500);
    for (const pid of all) untrack(pid);
  };

  try {
    const ready = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tls-server: not ready within 30 s\n${stderr}`)), 30_000);
      onLine = (line) => {
        if (line.type === 'ready') {
          clearTimeout(timer);
          resolve(line);
        } else if (line.type === 'failed') {
          clearTimeout(timer);
          reject(new Error(`tls-server: ${line.error.message}\n${stderr}`));
        }
      };
      exitedPromise.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`tls-server: exited before it was ready (code ${code}, signal ${signal})\n${stderr}`));
      });
    });
    onLine = () => undefined;
    return { pid: child.pid, workerPids: ready.pids, port: ready.ports[0], plan: ready.plan, exits, stop, isExited: () => exited };
  } catch (error) {
    await stop();
    throw error;
  }
}

// ---- the client (its own process) ------------------------------------------------------------------

const REQUEST = 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';
const OK = /^HTTP\/1\.1 200 /;

/** One reconnection: a new TCP + TLS connection with `session`, GET /, read to the end. Never rejects. */
function reconnect({ host, port, version, session, timeoutMs }) {
  return new Promise((resolve) => {
    const started = performance.now();
    let latest;
    let head = '';
    let done = false;
    const socket = tls.connect({ host, port, servername: 'localhost', rejectUnauthorized: false, minVersion: version, maxVersion: version, session });
    const finish = (ok, code) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const resumed = socket.isSessionReused();
      socket.destroy();
      resolve({ ok, code, resumed, session: latest, ms: performance.now() - started });
    };
    const timer = setTimeout(() => finish(false, 'ETIMEDOUT'), timeoutMs);
    // TLS 1.3 tickets arrive after the handshake, before the response: the last one is the session to keep.
    socket.on('session', (ticket) => {
      latest = ticket;
    });
    socket.on('secureConnect', () => socket.write(REQUEST));
    socket.on('data', (chunk) => {
      if (head.length < 16) head += chunk.toString('latin1');
    });
    socket.on('end', () => finish(OK.test(head), head ? 'BADSTATUS' : 'EMPTY'));
    socket.on('error', (error) => finish(false, error.code ?? 'ERROR'));
    socket.on('close', () => finish(OK.test(head), head ? 'BADSTATUS' : 'ECLOSED'));
  });
}

function newTally() {
  return { reconnections: 0, ok: 0, resumed: 0, errors: {}, ms: [] };
}

function add(tally, r) {
  tally.reconnections++;
  if (r.ok) {
    tally.ok++;
    tally.ms.push(r.ms);
  } else tally.errors[r.code] = (tally.errors[r.code] ?? 0) + 1;
  if (r.ok && r.resumed) tally.resumed++;
}

/** Each lane reconnects until `until` (performance.now()), keeping the last session it got. */
async function runLanes(lanes, options, until, tally, { atLeastOne = false } = {}) {
  await Promise.all(
    lanes.map(async (lane) => {
      let first = atLeastOne;
      while (first || performance.now() < until) {
        first = false;
        const r = await reconnect({ ...options, session: lane.session });
        add(tally, r);
        if (r.session) lane.session = r.session;
        // A failing server must not turn the lane into a busy loop.
        if (!r.ok) await sleep(10);
      }
    }),
  );
}

function summarizeTally(tally, elapsedMs) {
  const { ms, ...rest } = tally;
  const p = percentiles(ms, [50, 99]);
  return { ...rest, elapsedMs, latencyMs: { p50: p.p50, p99: p.p99 } };
}

/** As a child process: { type: 'run', options } -> 'warm'; { type: 'go' } -> 'result'. */
function clientProcess() {
  let lanes = null;
  let options = null;
  // Never outlive the bench: it disconnects (or dies) and this process ends.
  process.on('disconnect', () => process.exit(0));
  setTimeout(() => process.exit(1), 15 * 60_000).unref();
  process.on('message', async (msg) => {
    try {
      if (msg?.type === 'run') {
        options = msg.options;
        lanes = Array.from({ length: options.concurrency }, () => ({ session: undefined }));
        const tally = newTally();
        const t0 = performance.now();
        // At least one reconnection per lane, for its first session; then until the warm-up time is over.
        await runLanes(lanes, options, t0 + options.warmupMs, tally, { atLeastOne: true });
        const { ms: _ms, ...warm } = tally;
        process.send({ type: 'warm', warmup: { ...warm, lanesWithSession: lanes.filter((l) => l.session).length } });
      } else if (msg?.type === 'go') {
        const tally = newTally();
        const t0 = performance.now();
        await runLanes(lanes, options, t0 + options.durationMs, tally);
        process.send({ type: 'result', result: summarizeTally(tally, performance.now() - t0) });
      }
    } catch (error) {
      process.send({ type: 'error', error: { message: error.stack ?? error.message } });
    }
  });
}

/** Forks the client process; killed by pid at the end, tracked for the last-resort cleanup. */
function startClient() {
  const child = fork(THIS_FILE, ['--client'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  track(child.pid);
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const call = (message, type, ms) => {
    const reply = waitForMessage(child, type, ms, { label: 'tls client', failure: 'error', stderr: () => stderr });
    child.send(message);
    return reply;
  };
  return {
    pid: child.pid,
    call,
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

// ---- one measurement -------------------------------------------------------------------------------

async function measure({ server, version, settings, clkTck }) {
  const client = startClient();
  try {
    const options = {
      host: HOST,
      port: server.port,
      version,
      concurrency: settings.concurrency,
      warmupMs: settings.warmupMs,
      durationMs: settings.durationMs,
      timeoutMs: settings.timeoutMs,
    };
    const { warmup } = await client.call({ type: 'run', options }, 'warm', settings.warmupMs + settings.timeoutMs * 2 + 20_000);
    if (warmup.lanesWithSession < settings.concurrency)
      throw new Error(
        `only ${warmup.lanesWithSession} of ${settings.concurrency} lanes got a session in the warm-up (errors: ${JSON.stringify(warmup.errors)})`,
      );
    const pids = [server.pid, ...server.workerPids];
    const exitsBefore = server.exits.length;
    const before = readCpu(pids);
    const { result } = await client.call({ type: 'go' }, 'result', settings.durationMs + settings.timeoutMs * 2 + 20_000);
    // The servers' side of the last closes.
    await sleep(100);
    const after = readCpu(pids);
    if (server.exits.length > exitsBefore) throw new Error(`a worker exited during the measurement: ${JSON.stringify(server.exits.slice(exitsBefore))}`);
    for (let i = 0; i < pids.length; i++) {
      if (after[i].starttime !== before[i].starttime) throw new Error(`pid ${pids[i]} is another process now`);
    }
    const micros = (i) => ((after[i].ticks - before[i].ticks) * 1e6) / clkTck;
    const serverMicros = pids.reduce((sum, _pid, i) => sum + micros(i), 0);
    const supervisorMicros = micros(0);
    const ok = result.ok;
    return {
      clientPid: client.pid,
      warmup,
      client: result,
      reconnections: ok,
      reconnectionsPerSecond: ok / (result.elapsedMs / 1000),
      resumedShare: ok > 0 ? result.resumed / ok : null,
      errors: result.reconnections - ok,
      cpu: {
        ticks: pids.map((pid, i) => ({ pid, ticks: after[i].ticks - before[i].ticks })),
        serverMicros,
        supervisorMicros,
        microsPerReconnection: ok > 0 ? serverMicros / ok : null,
        supervisorMicrosPerReconnection: ok > 0 ? supervisorMicros / ok : null,
      },
    };
  } finally {
    await client.stop();
  }
}

// ---- the run ----------------------------------------------------------------------------------------

/** Medians per configuration and TLS version (pure). */
export function summarize(records, configurations, versions) {
  const out = [];
  for (const version of versions) {
    for (const cfg of configurations) {
      const rs = records.filter((r) => r.configuration === cfg.id && r.version === version);
      if (rs.length === 0) {
        out.push({ configuration: cfg.id, version, runs: 0 });
        continue;
      }
      const pick = (f) => median(rs.map(f));
      out.push({
        configuration: cfg.id,
        version,
        runs: rs.length,
        reconnectionsPerSecond: pick((r) => r.reconnectionsPerSecond),
        resumedShare: pick((r) => r.resumedShare),
        cpuMicrosPerReconnection: pick((r) => r.cpu.microsPerReconnection),
        supervisorCpuMicrosPerReconnection: pick((r) => r.cpu.supervisorMicrosPerReconnection),
        latencyP50Ms: pick((r) => r.client.latencyMs.p50),
        latencyP99Ms: pick((r) => r.client.latencyMs.p99),
        errors: rs.reduce((sum, r) => sum + r.errors, 0),
        reconnections: rs.reduce((sum, r) => sum + r.reconnections, 0),
        byRun: {
          reconnectionsPerSecond: rs.map((r) => r.reconnectionsPerSecond),
          resumedShare: rs.map((r) => r.resumedShare),
          cpuMicrosPerReconnection: rs.map((r) => r.cpu.microsPerReconnection),
        },
      });
    }
  }
  return out;
}

/**
 * Per TLS version: what a reconnection that does not resume costs the servers beyond one that does,
 * (CPU per-worker - CPU shared) / (resumed shared - resumed per-worker). Null when the shares are too close to tell.
 */
export function fullHandshakeCost(summary, versions) {
  const out = {};
  for (const version of versions) {
    const shared = summary.find((s) => s.configuration === 'shared' && s.version === version);
    const own = summary.find((s) => s.configuration === 'per-worker' && s.version === version);
    if (!shared?.runs || !own?.runs) continue;
    const gap = shared.resumedShare - own.resumedShare;
    out[version] = {
      cpuRatio: own.cpuMicrosPerReconnection / shared.cpuMicrosPerReconnection,
      rateRatio: own.reconnectionsPerSecond / shared.reconnectionsPerSecond,
      extraMicrosPerFullHandshake: gap > 0.1 ? (own.cpuMicrosPerReconnection - shared.cpuMicrosPerReconnection) / gap : null,
    };
  }
  return out;
}

function machineInfo(clkTck) {
  return {
    hostname: os.hostname(),
    cores: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model?.trim() ?? 'unknown',
    kernel: os.release(),
    node: process.version,
    openssl: process.versions.openssl,
    clkTck,
    loadAverageAtStart: os.loadavg(),
  };
}

function stamp(date) {
  return date.toISOString().slice(0, 19).replace(/:/g, '-');
}

export async function runTlsBench(settings, { stderr = process.stderr } = {}) {
  const startedAt = new Date();
  const clkTck = clockTicks();
  const machine = machineInfo(clkTck);
  const cert = prepareCertificate(settings.cert);
  process.on('exit', cert.cleanup);
  const records = [];
  const failures = [];
  const notes = [];
  let key;
  try {
    key = describeKey(cert.key);
    // A bound for each server's life (it stops by itself after this), whatever happens here.
    const maxMs = settings.versions.length * (settings.warmupMs + settings.durationMs + 4 * settings.timeoutMs + 60_000) + 60_000;
    const total = settings.runs * CONFIGURATIONS.length * settings.versions.length;
    let step = 0;
    for (let run = 1; run <= settings.runs; run++) {
      // Alternate the order (AB, BA, AB) so drift over the run favours neither; TLS versions likewise.
      const order = run % 2 === 1 ? CONFIGURATIONS : [...CONFIGURATIONS].reverse();
      const versions = run % 2 === 1 ? settings.versions : [...settings.versions].reverse();
      for (const cfg of order) {
        let server;
        try {
          server = await startTlsServer({ workers: settings.workers, ticketKeys: cfg.ticketKeys, cert, maxMs });
        } catch (error) {
          for (const version of versions) {
            step++;
            failures.push({ run, configuration: cfg.id, version, error: error.message });
          }
          stderr.write(`${cfg.label}: the servers did not start: ${error.message.split('\n')[0]}\n`);
          continue;
        }
        try {
          for (const version of versions) {
            step++;
            stderr.write(`[${step}/${total}] run ${run}/${settings.runs}, ${cfg.label}, ${version}: ${settings.durationMs} ms\n`);
            try {
              const m = await measure({ server, version, settings, clkTck });
              records.push({
                run,
                configuration: cfg.id,
                version,
                port: server.port,
                plan: server.plan,
                supervisorPid: server.pid,
                workerPids: server.workerPids,
                ...m,
              });
            } catch (error) {
              failures.push({ run, configuration: cfg.id, version, error: error.message });
              stderr.write(`  failed: ${error.message.split('\n')[0]}\n`);
            }
          }
        } finally {
          await server.stop();
        }
      }
    }
  } finally {
    cert.cleanup();
  }

  const summary = summarize(records, CONFIGURATIONS, settings.versions);
  for (const r of records) {
    if (r.errors > 0) notes.push(`run ${r.run}, ${r.configuration}, ${r.version}: ${r.errors} reconnection(s) failed: ${JSON.stringify(r.client.errors)}.`);
    if (r.plan?.mode !== 'reuseport') notes.push(`run ${r.run}, ${r.configuration}, ${r.version}: the plan was ${r.plan?.mode}, not reuseport.`);
  }
  if (failures.length) notes.push(`${failures.length} measurement(s) failed; see "failures".`);
  const argv = process.argv.slice(2);
  return {
    schema: SCHEMA,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command: `node bench/tls.mjs${argv.length ? ` ${argv.join(' ')}` : ''}`,
    machine: { ...machine, loadAverageAtEnd: os.loadavg() },
    settings: {
      workers: settings.workers,
      durationMs: settings.durationMs,
      concurrency: settings.concurrency,
      versions: settings.versions,
      runs: settings.runs,
      warmupMs: settings.warmupMs,
      timeoutMs: settings.timeoutMs,
      quick: settings.quick,
      cert: settings.cert,
      key,
      host: HOST,
    },
    configurations: CONFIGURATIONS,
    summary,
    fullHandshake: fullHandshakeCost(summary, settings.versions),
    records,
    failures,
    notes,
  };
}

// ---- output -----------------------------------------------------------------------------------------

const fmt = {
  int: (v) => (v === null || v === undefined ? '-' : Math.round(v).toLocaleString('en-US')),
  pct: (v) => (v === null || v === undefined ? '-' : `${(v * 100).toFixed(1)}%`),
  us: (v) => (v === null || v === undefined ? '-' : v.toFixed(0)),
  ms: (v) => (v === null || v === undefined ? '-' : v < 10 ? v.toFixed(2) : v.toFixed(1)),
};

const cfgLabel = (cfg) => `${cfg.ticketKeys} (${cfg.label})`;

const COLUMNS = [
  ['TLS', (s) => s.version.replace('TLSv', '')],
  ['ticketKeys', (_s, cfg) => cfgLabel(cfg)],
  ['reconnections/s', (s) => fmt.int(s.reconnectionsPerSecond)],
  ['resumed', (s) => fmt.pct(s.resumedShare)],
  ['server CPU µs/reconnection', (s) => fmt.us(s.cpuMicrosPerReconnection)],
  ['of which supervisor', (s) => fmt.us(s.supervisorCpuMicrosPerReconnection)],
  ['p50 ms', (s) => fmt.ms(s.latencyP50Ms)],
  ['p99 ms', (s) => fmt.ms(s.latencyP99Ms)],
  ['errors', (s) => fmt.int(s.errors)],
  ['CPU µs/reconnection by run', (s) => s.byRun.cpuMicrosPerReconnection.map(fmt.us).join(' / ')],
];

function tableRows(result) {
  return result.summary.map((s) => {
    const cfg = result.configurations.find((c) => c.id === s.configuration);
    if (!s.runs) return [s.version.replace('TLSv', ''), cfgLabel(cfg), 'failed', ...COLUMNS.slice(3).map(() => '')];
    return COLUMNS.map(([, f]) => f(s, cfg));
  });
}

function settingsText(result) {
  const st = result.settings;
  return (
    `${st.workers} https workers under \`startCluster\` (${st.key.name} certificate), one closed-loop client in its own process with ` +
    `${st.concurrency} lanes, each reconnecting again and again with the last session it got (a new TCP + TLS connection per request: ` +
    `\`GET /\`, read to the end, close), ${st.durationMs / 1000} s per configuration and TLS version after ${st.warmupMs} ms of warm-up; ` +
    `medians of ${st.runs} run(s), configurations in alternating order, each run on a freshly started cluster.`
  );
}

/** Plain-text table for the terminal. */
export function formatTable(result) {
  const head = COLUMNS.map(([h]) => h);
  const body = tableRows(result);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cs) =>
    cs
      .map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  const lines = [
    '',
    `TLS session resumption: ${settingsText(result).replace(/`/g, '')}`,
    '',
    line(head),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...body.map(line),
    '',
  ];
  for (const [version, f] of Object.entries(result.fullHandshake)) {
    const extra = f.extraMicrosPerFullHandshake;
    const pairs = pairedRuns(result.records, version);
    lines.push(
      `${version}, key per worker / shared key: CPU per reconnection x${f.cpuRatio.toFixed(2)} (higher in ${pairs.higher} of ${pairs.runs} run(s)), reconnections/s x${f.rateRatio.toFixed(2)}` +
        (extra === null ? '' : extra > 0 ? `; ~${fmt.us(extra)} µs more per reconnection that does not resume` : '; no extra cost measured'),
    );
  }
  const key = result.settings.key;
  const other = key.name.startsWith('RSA') ? 'ECDSA P-256' : 'RSA-2048';
  lines.push(`One signature alone, here: ${key.name} (the servers' key) ${key.signMicros} µs; ${other} ${key.reference[other]} µs.`);
  for (const n of result.notes) lines.push(`Note: ${n}`);
  return lines.join('\n');
}

function versionList(entries) {
  return entries.length === 1 ? entries[0] : `${entries.slice(0, -1).join(', ')} and ${entries.at(-1)}`;
}

/**
 * Run by run (each run measures both configurations back to back): in how many of them a key per worker cost the
 * servers more CPU per reconnection than the shared key, for one TLS version.
 */
export function pairedRuns(records, version) {
  const cpu = (cfg, run) => records.find((r) => r.configuration === cfg && r.version === version && r.run === run)?.cpu.microsPerReconnection;
  const runs = [...new Set(records.map((r) => r.run))].filter((run) => typeof cpu('shared', run) === 'number' && typeof cpu('per-worker', run) === 'number');
  return { runs: runs.length, higher: runs.filter((run) => cpu('per-worker', run) > cpu('shared', run)).length };
}

/** The supervisor's own CPU, in ms per second of measurement: the smallest and largest over the runs. */
function supervisorMsPerSecond(records) {
  const xs = records.map((r) => r.cpu.supervisorMicros / r.client.elapsedMs);
  return xs.length ? { min: Math.min(...xs), max: Math.max(...xs) } : null;
}

/** The 3-4 sentences on what the figures mean, from the figures. */
export function meaning(result) {
  const st = result.settings;
  const get = (cfg, version) => result.summary.find((s) => s.configuration === cfg && s.version === version);
  const versions = st.versions.filter((v) => get('shared', v)?.runs && get('per-worker', v)?.runs);
  if (versions.length === 0) return 'No configuration completed; see the failures in the JSON.';
  const short = (v) => `TLS ${v.replace('TLSv', '')}`;
  const s1 =
    `With the shared key ${versionList(versions.map((v) => `${fmt.pct(get('shared', v).resumedShare)} (${short(v)})`))} of reconnections resumed, whichever of the ${st.workers} workers the kernel gave them to; ` +
    `with a key per worker ${versionList(versions.map((v) => fmt.pct(get('per-worker', v).resumedShare)))} (1/${st.workers} is ${fmt.pct(1 / st.workers)}): a ticket opens only on the worker that sealed it, every other reconnection is a full handshake.`;
  const costs = versions.map((v) => {
    const shared = get('shared', v);
    const own = get('per-worker', v);
    const f = result.fullHandshake[v];
    const base = `${short(v)}, ${fmt.us(own.cpuMicrosPerReconnection)} µs of server CPU per reconnection with a key per worker against ${fmt.us(shared.cpuMicrosPerReconnection)} with the shared key`;
    const pairs = pairedRuns(result.records, v);
    if (pairs.runs < 2) return `${base} (x${f.cpuRatio.toFixed(2)}; one run, so no spread to judge it by)`;
    if (pairs.higher === pairs.runs && f.extraMicrosPerFullHandshake !== null) {
      return `${base} (x${f.cpuRatio.toFixed(2)}, higher in each of the ${pairs.runs} runs: about ${fmt.us(f.extraMicrosPerFullHandshake)} µs more per reconnection that does not resume)`;
    }
    return `${base}, higher in only ${pairs.higher} of the ${pairs.runs} runs: within the noise here`;
  });
  const s2 = `What the full handshakes cost: ${costs.join('; ')}.`;
  const ref = st.key.reference;
  const other = st.key.name.startsWith('RSA') ? 'ECDSA P-256' : 'RSA-2048';
  const sign = `${st.key.signMicros} µs alone for this ${st.key.name} key here, ${ref[other]} µs for ${other}${other === 'RSA-2048' ? ': `--cert rsa`' : ''}`;
  const has13 = versions.includes('TLSv1.3');
  const has12 = versions.includes('TLSv1.2');
  const s3 = has13
    ? `A resumed TLS 1.3 handshake still makes a fresh (EC)DHE key exchange, so there resumption saves little more than the certificate and its signature (${sign})${has12 ? ', whereas a resumed TLS 1.2 session skips the key exchange too' : ''}.`
    : `A resumed TLS 1.2 session skips the key exchange, the certificate and its signature (${sign}).`;
  const rates = versions.map(
    (v) => `${short(v)} ${fmt.int(get('shared', v).reconnectionsPerSecond)} against ${fmt.int(get('per-worker', v).reconnectionsPerSecond)}`,
  );
  const fall = versions.every((v) => result.fullHandshake[v].rateRatio < 1);
  const s4 =
    `Reconnections per second (shared key against key per worker: ${versionList(rates)}) ${fall ? 'fall too' : 'change'}, but the client, which shares the machine's ${result.machine.cores} cores with the servers, ` +
    "pays for each full handshake itself (it checks the server's signature), so they measure the client as much as the servers: the servers' CPU per reconnection is the figure to carry to another machine.";
  return [s1, s2, s3, s4].join(' ');
}

/** The "## TLS session resumption" section for docs/benchmarks.md. */
export function toMarkdownSection(result, { jsonName } = {}) {
  const m = result.machine;
  const head = COLUMNS.map(([h]) => h);
  const date = result.startedAt.slice(0, 16).replace('T', ' ');
  const sup = supervisorMsPerSecond(result.records);
  return [
    SECTION,
    '',
    `\`startCluster({ ticketKeys: true })\` (the default: the supervisor gives every https worker the same session-ticket key) against ` +
      '`ticketKeys: false` (each worker keeps its own random key). With `SO_REUSEPORT` a reconnecting client lands on any worker, ' +
      'and a ticket resumes only where its key is.',
    '',
    settingsText(result),
    '',
    `Command: \`${result.command}\` (\`bench/tls.mjs\`, \`bench/tls-server.cjs\`)${jsonName ? `; every figure per run in \`bench/results/${jsonName}\`` : ''}. ` +
      `Machine: ${m.cores} cores (${m.cpuModel}), Linux ${m.kernel}, Node ${m.node} (OpenSSL ${m.openssl}), ${date} UTC, load average ${m.loadAverageAtStart[0].toFixed(1)} at the start.`,
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (i < 2 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...tableRows(result).map((r) => `| ${r.join(' | ')} |`),
    '',
    'Server CPU is utime + stime from `/proc/<pid>/stat` of the supervisor and every worker over the measured window, divided by the ' +
      'reconnections completed in it; resumed is `isSessionReused()` on the client; p50/p99 are one reconnection, connect to end of response.' +
      (sup
        ? ` The supervisor's share is a fixed cost rather than one per connection: ${fmt.int(sup.min)}-${fmt.int(sup.max)} ms of CPU per second in every run, whatever the rate.`
        : ''),
    '',
    meaning(result),
    ...(result.notes.length ? ['', ...result.notes.map((n) => `- ${n}`)] : []),
    '',
  ].join('\n');
}

/** Replaces the section (from its heading to the next "## " heading or the end) or appends it at the end. */
export function replaceSection(text, section) {
  const match = /^## TLS session resumption[ \t]*$/m.exec(text);
  if (!match) return `${text.replace(/\s*$/, '')}\n\n${section.replace(/\s*$/, '')}\n`;
  const rest = text.slice(match.index + match[0].length);
  const next = rest.search(/^## /m);
  const tail = next >= 0 ? `\n${rest.slice(next)}` : '';
  return `${text.slice(0, match.index)}${section.replace(/\s*$/, '')}\n${tail}`;
}

// ---- command line -----------------------------------------------------------------------------------

function complete(result) {
  return result.summary.length > 0 && result.summary.every((s) => s.runs > 0) && result.failures.length === 0;
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
  // Whatever happens, no server or client process outlives the bench.
  process.on('exit', killAllSync);
  for (const [sig, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ]) {
    process.on(sig, () => {
      process.stderr.write(`\n${sig}: stopping the server and client processes\n`);
      killAllSync();
      process.exit(code);
    });
  }

  let result;
  let jsonName;
  if (settings.fromJson) {
    result = JSON.parse(readFileSync(settings.fromJson, 'utf8'));
    if (result.schema !== SCHEMA) throw new Error(`${settings.fromJson}: not a ${SCHEMA} result`);
    // Named in the section only where the section says it is: under bench/results/.
    jsonName = path.dirname(settings.fromJson) === path.join(HERE, 'results') ? path.basename(settings.fromJson) : undefined;
  } else {
    // A bound for the whole run, whatever hangs: about twice the planned time, plus a minute.
    const plannedMs = settings.runs * CONFIGURATIONS.length * (5_000 + settings.versions.length * (settings.warmupMs + settings.durationMs + 1_000));
    const watchdog = setTimeout(
      () => {
        process.stderr.write(`bench/tls.mjs: not done after ${Math.round((2 * plannedMs + 60_000) / 1000)} s; stopping every process\n`);
        killAllSync();
        process.exit(1);
      },
      2 * plannedMs + 60_000,
    );
    watchdog.unref();
    result = await runTlsBench(settings);
    clearTimeout(watchdog);
    mkdirSync(settings.resultsDir, { recursive: true });
    jsonName = `${stamp(new Date(result.startedAt))}-${os.hostname().replace(/[^\w.-]/g, '_')}-tls.json`;
    writeFileSync(path.join(settings.resultsDir, jsonName), `${JSON.stringify(result, null, 2)}\n`);
    process.stderr.write(`wrote ${path.join(settings.resultsDir, jsonName)}\n`);
  }
  process.stdout.write(`${formatTable(result)}\n`);
  if (!complete(result)) {
    process.stderr.write(
      `some measurements failed:\n${result.failures.map((f) => `  run ${f.run}, ${f.configuration}, ${f.version}: ${f.error.split('\n')[0]}`).join('\n')}\n`,
    );
    if (settings.out) process.stderr.write(`${settings.out} left as it was\n`);
    process.exitCode = 1;
    return;
  }
  if (settings.out) {
    const text = existsSync(settings.out) ? readFileSync(settings.out, 'utf8') : '';
    writeFileSync(
      settings.out,
      replaceSection(
        text,
        toMarkdownSection(result, { jsonName: settings.fromJson || settings.resultsDir === path.join(HERE, 'results') ? jsonName : undefined }),
      ),
    );
    process.stderr.write(`wrote the "${SECTION}" section of ${settings.out}\n`);
  }
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === THIS_FILE;
if (isMain && process.argv[2] === '--client') clientProcess();
else if (isMain) {
  main().catch((error) => {
    process.stderr.write(`bench/tls.mjs failed: ${error.stack ?? error.message}\n`);
    killAllSync();
    process.exit(1);
  });
}
