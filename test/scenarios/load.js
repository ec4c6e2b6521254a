// A bounded load client for the reload and crash scenarios: every request on a new TCP connection
// (or on keep-alive sockets), closed-loop at a concurrency or open-loop at a rate; counts failures.
'use strict';
const http = require('node:http');

// `client`: node:http, or node:https (with an https.Agent).
function request(options, agent, client = http) {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = client.get({ host: '127.0.0.1', agent, timeout: 5_000, ...options }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => {
        body += chunk;
      });
      response.on('end', () =>
        resolve({
          ok: response.statusCode === 200,
          ...(response.statusCode === 200 ? {} : { code: `HTTP ${response.statusCode}` }),
          body,
          ms: performance.now() - started,
          connection: response.headers.connection,
        }),
      );
      response.on('error', (error) => resolve({ ok: false, code: error.code ?? 'ERESPONSE', ms: performance.now() - started }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (error) => resolve({ ok: false, code: error.code ?? error.message, ms: performance.now() - started }));
  });
}

function summarize(results, seconds) {
  const errors = {};
  const latencies = [];
  let ok = 0;
  for (const result of results) {
    latencies.push(result.ms);
    if (result.ok) ok += 1;
    else errors[result.code] = (errors[result.code] ?? 0) + 1;
  }
  latencies.sort((a, b) => a - b);
  const at = (q) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : 0);
  return {
    sent: results.length,
    ok,
    failed: results.length - ok,
    errors,
    perSecond: Math.round(results.length / seconds),
    p50: Math.round(at(0.5) * 10) / 10,
    p99: Math.round(at(0.99) * 10) / 10,
    max: Math.round((latencies.at(-1) ?? 0) * 10) / 10,
    over500ms: latencies.filter((ms) => ms > 500).length,
  };
}

/** Closed loop: `concurrency` lanes, each sending the next request when the last is answered, until stop(). */
function closedLoop({ port, concurrency, path = '/', keepAlive = false }) {
  const agent = keepAlive ? new http.Agent({ keepAlive: true, maxSockets: concurrency }) : false;
  const results = [];
  let running = true;
  const started = performance.now();
  const lane = async () => {
    while (running) results.push(await request({ port, path }, agent));
  };
  const lanes = Promise.all(Array.from({ length: concurrency }, lane));
  return {
    results,
    async stop() {
      running = false;
      await lanes;
      if (agent) agent.destroy();
      return summarize(results, (performance.now() - started) / 1000);
    },
  };
}

/** Open loop: `rate` new connections per second for `durationMs`, whatever the server does. */
async function openLoop({ port, rate, durationMs, path = '/' }) {
  const results = [];
  const pending = [];
  const started = performance.now();
  const tickMs = 5;
  let sent = 0;
  while (performance.now() - started < durationMs) {
    const due = Math.floor(((performance.now() - started) / 1000) * rate);
    for (; sent < due; sent++) pending.push(request({ port, path }, false).then((r) => results.push(r)));
    await new Promise((resolve) => setTimeout(resolve, tickMs));
  }
  await Promise.all(pending);
  return summarize(results, durationMs / 1000);
}

module.exports = { closedLoop, openLoop, request, summarize };
