// Open-loop load client for the stall scenario, run as its own process (forked by bench/stall.mjs) so that it never shares
// an event loop or a core's queue with the servers. Opens `rate` new TCP connections per second for `durationMs`, on a
// timer, whatever the servers do; each carries one `GET /` with `Connection: close`. Each connection's time runs from
// connect() to the end of the response (the server closes). In-flight connections are bounded and each has a timeout.
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentileSorted } from './stats.mjs';

const TICK_MS = 2;
export const BUCKET_MS = 100;
const SLOW_MS = 500;

/**
 * One connection: connect, send the request, read to the end. Resolves { ok, ms, code }.
 * Never rejects; a timeout destroys the socket.
 */
function oneConnection({ host, port, timeoutMs }) {
  return new Promise((resolve) => {
    const started = performance.now();
    const request = `GET / HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: close\r\n\r\n`;
    let head = '';
    let done = false;
    const socket = net.connect({ host, port });
    const finish = (ok, code) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok, code, ms: performance.now() - started });
    };
    const timer = setTimeout(() => finish(false, 'ETIMEDOUT'), timeoutMs);
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk) => {
      if (head.length < 64) head += chunk.toString('latin1');
    });
    socket.on('end', () => finish(/^HTTP\/1\.[01] 200 /.test(head), head ? 'BADSTATUS' : 'EMPTY'));
    socket.on('error', (error) => finish(false, error.code ?? 'ERROR'));
    socket.on('close', () => finish(/^HTTP\/1\.[01] 200 /.test(head), head ? 'BADSTATUS' : 'ECLOSED'));
  });
}

/** Pure summary of one run's connections ({ ok, ms, code, atMs }); exported for the unit test. */
export function summarizeConnections(conns, { durationMs, bucketMs = BUCKET_MS, slowMs = SLOW_MS } = {}) {
  const okMs = Float64Array.from(conns.filter((c) => c.ok).map((c) => c.ms)).sort();
  const errors = {};
  for (const c of conns) if (!c.ok) errors[c.code] = (errors[c.code] ?? 0) + 1;
  // A connection that failed after more than slowMs (a timeout) was slow too.
  const slow = conns.filter((c) => c.ms > slowMs).length;
  const buckets = [];
  const nBuckets = Math.max(1, Math.ceil(durationMs / bucketMs));
  for (let i = 0; i < nBuckets; i++) buckets.push({ atMs: i * bucketMs, started: 0, slow: 0, failed: 0, maxMs: 0 });
  for (const c of conns) {
    const b = buckets[Math.min(nBuckets - 1, Math.floor(c.atMs / bucketMs))];
    b.started++;
    if (c.ms > slowMs) b.slow++;
    if (!c.ok) b.failed++;
    b.maxMs = Math.max(b.maxMs, Math.round(c.ms * 10) / 10);
  }
  return {
    sent: conns.length,
    ok: okMs.length,
    failed: conns.length - okMs.length,
    errors,
    overSlowMs: slow,
    slowMs,
    latencyMs: {
      p50: percentileSorted(okMs, 50),
      p90: percentileSorted(okMs, 90),
      p99: percentileSorted(okMs, 99),
      max: okMs.length ? okMs[okMs.length - 1] : null,
    },
    timeline: { bucketMs, buckets },
  };
}

/** Runs the open loop; resolves with the summary plus when it started (epoch ms) and how late the timer ran. */
export async function openLoop({ host = '127.0.0.1', port, rate, durationMs, maxInFlight = 2000, timeoutMs = 5000, onStart }) {
  const conns = [];
  const pending = new Set();
  let skipped = 0;
  let scheduled = 0;
  let maxLagMs = 0;
  const t0 = performance.now();
  const startedAtEpoch = performance.timeOrigin + t0;
  onStart?.(startedAtEpoch);
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now() - t0;
      const due = Math.min(Math.floor((Math.min(now, durationMs) / 1000) * rate), Math.floor((durationMs / 1000) * rate));
      if (due > scheduled) maxLagMs = Math.max(maxLagMs, now - (scheduled / rate) * 1000);
      for (; scheduled < due; scheduled++) {
        const atMs = (scheduled / rate) * 1000;
        if (pending.size >= maxInFlight) {
          // The bound: counted as a failure of its own kind, never silently dropped.
          skipped++;
          conns.push({ ok: false, code: 'CLIENT_LIMIT', ms: 0, atMs });
          continue;
        }
        const p = oneConnection({ host, port, timeoutMs }).then((r) => {
          pending.delete(p);
          conns.push({ ...r, atMs });
        });
        pending.add(p);
      }
      if (now >= durationMs) {
        clearInterval(timer);
        resolve();
      }
    }, TICK_MS);
  });
  await Promise.all(pending);
  return {
    ...summarizeConnections(conns, { durationMs }),
    rate,
    durationMs,
    maxInFlight,
    timeoutMs,
    skipped,
    startedAtEpoch,
    // How late the timer ran behind the schedule at worst: a loaded client sends in bursts.
    maxScheduleLagMs: Math.round(maxLagMs * 10) / 10,
  };
}

// As a child process: { type: 'run', options } -> { type: 'started', at } then { type: 'result', result }.
if (process.send && process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.on('message', async (msg) => {
    if (msg?.type !== 'run') return;
    try {
      const result = await openLoop({ ...msg.options, onStart: (at) => process.send({ type: 'started', at }) });
      process.send({ type: 'result', result });
    } catch (error) {
      process.send({ type: 'error', error: { message: error.message } });
    }
  });
  process.on('disconnect', () => process.exit(0));
}
