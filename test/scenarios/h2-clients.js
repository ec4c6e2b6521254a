// HTTP/2 clients for the long-lived-traffic scenarios (test/scenarios/streams.js), with node:http2 and
// what RFC 9113 asks of a client at a graceful shutdown: `sessions` sessions, each with `lanes` lanes
// sending the next request when the last is answered, until 'stop'. A session that receives a GOAWAY
// (or closes) is replaced by a new one for the next requests; a stream the server refused
// (NGHTTP2_REFUSED_STREAM: never processed, section 8.7) is retried once, on the new session. Counts
// every failure, and every session that closed without a GOAWAY (a drain must never do that).
// `tls: true`: https:// (the test certificate is not checked).
'use strict';
const http2 = require('node:http2');
const { summarize } = require('./load');

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL } = http2.constants;
let running = false;
let lanes = Promise.resolve();
let started = 0;
const results = [];
const counts = { sessions: 0, goaways: 0, closedWithoutGoaway: 0, refused: 0, retriedOk: 0, sessionErrors: {} };
const holders = [];

// One session slot: the current session, replaced once it received a GOAWAY or closed.
function holder(origin) {
  let session;
  const open = () => {
    const current = http2.connect(origin, { rejectUnauthorized: false });
    counts.sessions += 1;
    let goaway = false;
    current.on('goaway', () => {
      goaway = true;
      counts.goaways += 1;
      if (session === current) session = undefined;
    });
    current.on('error', (error) => {
      counts.sessionErrors[error.code ?? error.message] = (counts.sessionErrors[error.code ?? error.message] ?? 0) + 1;
    });
    current.on('close', () => {
      if (!goaway && !current.closedByClient) counts.closedWithoutGoaway += 1;
      if (session === current) session = undefined;
    });
    return current;
  };
  return {
    get() {
      if (!session || session.closed || session.destroyed) session = open();
      return session;
    },
    close() {
      if (!session) return;
      session.closedByClient = true;
      session.close();
    },
  };
}

// One request on the holder's session: { ok, code, refused, ms }.
function once(target, path) {
  const begun = performance.now();
  return new Promise((resolve) => {
    let stream;
    try {
      stream = target.get().request({ ':path': path });
    } catch (error) {
      return resolve({ ok: false, code: error.code ?? error.message, ms: performance.now() - begun });
    }
    let status = 0;
    stream.setEncoding('utf8');
    stream.on('response', (headers) => {
      status = headers[':status'];
    });
    stream.on('data', () => undefined);
    stream.setTimeout(5_000, () => stream.close(NGHTTP2_CANCEL));
    stream.on('close', () => {
      const ms = performance.now() - begun;
      if (stream.rstCode === NGHTTP2_REFUSED_STREAM) return resolve({ ok: false, refused: true, code: 'NGHTTP2_REFUSED_STREAM', ms });
      if (status === 200 && stream.rstCode === http2.constants.NGHTTP2_NO_ERROR) return resolve({ ok: true, ms });
      resolve({ ok: false, code: status && status !== 200 ? `HTTP ${status}` : `rst ${stream.rstCode}`, ms });
    });
    stream.on('error', () => undefined);
  });
}

// `undici: true` (TLS only): the same lanes on an undici Pool with allowH2 instead, undici's own
// handling of GOAWAY (for comparison: it retries nothing, and fails requests in flight at a GOAWAY).
function undiciLanes(origin, sessions, perSession) {
  const { Pool } = require('undici');
  const pool = new Pool(origin, { allowH2: true, connections: sessions, connect: { rejectUnauthorized: false } });
  const lane = async (index) => {
    for (let n = 0; running; n++) {
      const begun = performance.now();
      try {
        const response = await pool.request({ path: (n + index) % 2 === 0 ? '/?ms=20' : '/', method: 'GET', headersTimeout: 5_000, bodyTimeout: 5_000 });
        await response.body.text();
        results.push({ ok: response.statusCode === 200, ms: performance.now() - begun });
      } catch (error) {
        results.push({ ok: false, code: `${error.code ?? error.name}: ${error.message}`, ms: performance.now() - begun });
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  };
  return Promise.all(Array.from({ length: sessions * perSession }, (_, index) => lane(index))).then(() => pool.close());
}

process.on('message', async (message) => {
  if (message.type === 'start') {
    running = true;
    started = performance.now();
    const origin = `${message.tls ? 'https' : 'http'}://127.0.0.1:${message.port}`;
    if (message.undici) {
      lanes = undiciLanes(origin, message.sessions ?? 4, message.lanes ?? 4);
      return process.send({ type: 'started' });
    }
    const sessions = message.sessions ?? 4;
    const perSession = message.lanes ?? 4;
    for (let i = 0; i < sessions; i++) holders.push(holder(origin));
    const lane = async (target, index) => {
      // Every other request takes 20 ms, so that streams are in flight when a GOAWAY comes.
      for (let n = 0; running; n++) {
        const path = (n + index) % 2 === 0 ? '/?ms=20' : '/';
        let result = await once(target, path);
        if (result.refused) {
          counts.refused += 1;
          result = await once(target, path);
          if (result.ok) counts.retriedOk += 1;
        }
        results.push(result);
        // A failed one is followed by a pause (bounded: a broken server cannot spin this loop).
        if (!result.ok) await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    lanes = Promise.all(holders.flatMap((target) => Array.from({ length: perSession }, (_, index) => lane(target, index))));
    process.send({ type: 'started' });
  } else if (message.type === 'stop') {
    running = false;
    await lanes;
    for (const target of holders) target.close();
    const result = summarize(results, (performance.now() - started) / 1000);
    process.send({ type: 'result', result: { ...result, ...counts } });
  }
});
process.on('disconnect', () => process.exit(0));
