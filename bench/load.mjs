// Load generation: autocannon (programmatic API, in this process) or wrk when asked for and installed; one result shape for both.
import { execFile } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import { percentiles } from './stats.mjs';

export const WORKLOADS = ['keepalive', 'close'];

/** Path of `wrk` on the PATH, or null. Looked up directly rather than through a shell. */
export function findWrk(envPath = process.env.PATH ?? '') {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'wrk');
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return null;
}

/**
 * Makes an autocannon client open a new TCP connection for every request.
 *
 * Why not the obvious options: with `reconnectRate: 1`, autocannon 9 drops the response that
 * triggers the reconnect before counting it, so it reports 0 requests; with only a
 * `Connection: close` header it writes the next request onto the socket the server is closing,
 * which doubles `sent` and leaves a stale entry in its queue, so latencies come out hundreds of
 * milliseconds too high. Here the response is counted first, then the old socket is destroyed
 * and the next request goes out on a fresh one. The header stays, so the server closes too.
 */
function oneRequestPerConnection(client) {
  const connect = client._connect;
  const doRequest = client._doRequest;
  let fresh = false;
  client._connect = function patchedConnect() {
    fresh = true;
    return connect.call(this);
  };
  client._doRequest = function patchedDoRequest() {
    if (!fresh) {
      // _resetConnection destroys the socket and calls _connect, which sends the next request.
      this._resetConnection();
      return;
    }
    fresh = false;
    return doRequest.call(this);
  };
}

/** Common result shape: what run.mjs stores per round. */
function result({ tool, requests, durationSec, latencies, latencyMs, non2xx, socketErrors, timeouts, extra }) {
  return {
    tool,
    requests,
    durationSec,
    requestsPerSecond: durationSec > 0 ? requests / durationSec : 0,
    latencyMs: latencyMs ?? percentiles(latencies, [50, 90, 99]),
    errors: { non2xx, socketErrors, timeouts, total: non2xx + socketErrors + timeouts },
    ...extra,
  };
}

/**
 * Runs autocannon against `url` for `durationSec`. `onTick(elapsedSec)` is called about every
 * 250 ms for progress. Latencies are recorded here from each response (autocannon's own
 * histogram rounds to whole milliseconds, too coarse for keep-alive on loopback).
 */
export async function runAutocannon({ url, workload, connections, durationSec, onTick }) {
  const close = workload === 'close';
  let latencies = new Float64Array(1 << 16);
  let n = 0;
  const opts = {
    url,
    connections,
    duration: durationSec,
    // Per-request timeout; a hung request counts as an error, it does not stall the bench.
    timeout: 5,
    headers: close ? { connection: 'close' } : {},
    ...(close ? { setupClient: oneRequestPerConnection } : {}),
  };
  const instance = autocannon(opts);
  instance.on('response', (_client, statusCode, _bytes, responseTime) => {
    if (statusCode < 200 || statusCode >= 300) return;
    if (n === latencies.length) {
      const bigger = new Float64Array(latencies.length * 2);
      bigger.set(latencies);
      latencies = bigger;
    }
    latencies[n++] = responseTime;
  });
  const started = Date.now();
  const ticker = onTick ? setInterval(() => onTick((Date.now() - started) / 1000), 250) : null;
  // Hard stop in case autocannon never finishes (it should end at `duration`).
  const guard = setTimeout(() => instance.stop(), (durationSec + 30) * 1000);
  let r;
  try {
    r = await instance;
  } finally {
    if (ticker) clearInterval(ticker);
    clearTimeout(guard);
  }
  const ok2xx = r['2xx'] ?? 0;
  return result({
    tool: 'autocannon',
    requests: ok2xx + (r.non2xx ?? 0),
    durationSec: r.duration,
    latencies: latencies.subarray(0, n),
    non2xx: r.non2xx ?? 0,
    // autocannon's `errors` already includes timeouts.
    socketErrors: Math.max(0, (r.errors ?? 0) - (r.timeouts ?? 0)),
    timeouts: r.timeouts ?? 0,
    extra: { sent: r.requests.sent, autocannonLatencyMs: { p50: r.latency.p50, p99: r.latency.p99 } },
  });
}

// ---- wrk ---------------------------------------------------------------------------------------

const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function toMs(value, unit) {
  return Number(value) * UNIT_MS[unit];
}

/** Parses wrk's text output (run with --latency). Pure, so it is unit-tested on a sample. */
export function parseWrkOutput(text) {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m|h)/.exec(text);
  if (!total) throw new Error(`cannot read wrk output:\n${text}`);
  const requests = Number(total[1]);
  const durationSec = toMs(total[2], total[3]) / 1000;
  const dist = {};
  const block = text.split('Latency Distribution')[1] ?? '';
  for (const m of block.matchAll(/^\s*(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m|h)\s*$/gm)) dist[Number(m[1])] = toMs(m[2], m[3]);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  return {
    requests,
    durationSec,
    requestsPerSecond: rps ? Number(rps[1]) : requests / durationSec,
    latencyMs: { p50: dist[50] ?? null, p90: dist[90] ?? null, p99: dist[99] ?? null },
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) : 0,
    timeouts: sock ? Number(sock[4]) : 0,
  };
}

/** Runs wrk as a child process (killed by pid on the hard timeout) and parses its output. */
export function runWrk({ wrkPath, url, workload, connections, durationSec, threads, onTick }) {
  const args = ['-t', String(Math.max(1, Math.min(threads, connections))), '-c', String(connections), '-d', `${durationSec}s`, '--latency', '--timeout', '5s'];
  // wrk reconnects after every response that carries Connection: close, so the header alone gives one connection per request.
  if (workload === 'close') args.push('-H', 'Connection: close');
  args.push(url);
  const started = Date.now();
  const ticker = onTick ? setInterval(() => onTick((Date.now() - started) / 1000), 250) : null;
  return new Promise((resolve, reject) => {
    execFile(wrkPath, args, { timeout: (durationSec + 30) * 1000, killSignal: 'SIGKILL', encoding: 'utf8' }, (error, stdout, stderr) => {
      if (ticker) clearInterval(ticker);
      if (error) return reject(new Error(`wrk failed: ${error.message}\n${stderr}`));
      try {
        const p = parseWrkOutput(stdout);
        resolve({ ...result({ tool: 'wrk', ...p }), requestsPerSecond: p.requestsPerSecond, wrkOutput: stdout });
      } catch (e) {
        reject(e);
      }
    });
  });
}
