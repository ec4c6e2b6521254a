// SSE clients for the long-lived-traffic scenarios (test/scenarios/streams.js), on Node's http.Agent
// (keep-alive) and on undici's Pool, until 'stop':
//   short streams: `lanes` lanes per client, each reading '/events?n=N&every=M' to its end, then the
//     next; one is ok when it brought events 0..N-1 and the 'end' event, and the response ended
//     without an error;
//   long streams: `long` per client on '/events?endOnDrain=1', which only the app's drain ends (a
//     'bye' event and the end of the response); each clean end is counted, and the stream is opened
//     again with Last-Event-ID, so its ids must go on without a gap. An error, or an end without 'bye',
//     is a failure. At 'stop' the short streams finish; the long ones still open are closed by the client
//     (not counted).
'use strict';
const http = require('node:http');
const { Pool } = require('undici');
const { summarize } = require('./load');

let running = false;
let started = 0;
let all = Promise.resolve();
const short = [];
const long = { ended: 0, failed: 0, errors: {}, gaps: 0, events: 0 };
const toClose = new Set();

// The events in an SSE body so far (complete ones), and what is left of it.
function parse(buffer) {
  const events = [];
  let end = buffer.indexOf('\n\n');
  while (end >= 0) {
    const event = {};
    for (const line of buffer.slice(0, end).split('\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) event[line.slice(0, colon)] = line.slice(colon + 1).trim();
    }
    events.push(event);
    buffer = buffer.slice(end + 2);
    end = buffer.indexOf('\n\n');
  }
  return { events, rest: buffer };
}

// Reads one stream through `client` ('agent' or 'undici'); resolves with { events, error, status }.
// `closable`: a long stream, which 'stop' closes (short ones are left to finish).
function stream(client, port, path, headers, agent, pool, closable = false) {
  return new Promise((resolve) => {
    const events = [];
    let rest = '';
    const onChunk = (chunk) => {
      const parsed = parse(rest + chunk);
      events.push(...parsed.events);
      rest = parsed.rest;
    };
    if (client === 'agent') {
      const request = http.get({ host: '127.0.0.1', port, path, headers, agent }, (response) => {
        response.setEncoding('utf8');
        response.on('data', onChunk);
        response.on('end', () => resolve({ status: response.statusCode, events }));
        response.on('error', (error) => resolve({ status: response.statusCode, events, error: error.code ?? error.message }));
        response.on('aborted', () => resolve({ status: response.statusCode, events, error: 'aborted' }));
      });
      // Bounded: events come every few hundred ms, so 5 s of silence is a stalled stream.
      request.setTimeout(5_000, () => request.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
      if (closable) toClose.add(request);
      request.on('close', () => toClose.delete(request));
      request.on('error', (error) => resolve({ events, error: error.code ?? error.message }));
    } else {
      const controller = new AbortController();
      if (closable) toClose.add(controller);
      pool
        .request({ path, method: 'GET', headers, signal: controller.signal, headersTimeout: 5_000, bodyTimeout: 5_000 })
        .then(async (response) => {
          response.body.setEncoding('utf8');
          for await (const chunk of response.body) onChunk(chunk);
          resolve({ status: response.statusCode, events });
        })
        .catch((error) => resolve({ events, error: error.code ?? error.message }))
        .finally(() => toClose.delete(controller));
    }
  });
}

process.on('message', async (message) => {
  if (message.type === 'start') {
    running = true;
    started = performance.now();
    const { port, lanes = 4, longPerClient = 2, n = 8, every = 200 } = message;
    const agent = new http.Agent({ keepAlive: true, maxSockets: lanes + longPerClient });
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: lanes + longPerClient });
    const shortLane = async (client) => {
      while (running) {
        const begun = performance.now();
        const { status, events, error } = await stream(client, port, `/events?n=${n}&every=${every}`, {}, agent, pool);
        const ids = events.filter((event) => event.id !== undefined).map((event) => Number(event.id));
        const complete = ids.length === n && ids.every((id, i) => id === i) && events.at(-1)?.event === 'end';
        const code = error ?? (status !== 200 ? `HTTP ${status}` : complete ? undefined : `incomplete (${ids.length} of ${n} events)`);
        short.push({ ok: code === undefined, code, ms: performance.now() - begun, client });
        // A failed one is followed by a pause (bounded: a broken server cannot spin this loop).
        if (code !== undefined) await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    const longLane = async (client) => {
      let last;
      while (running) {
        const headers = last === undefined ? {} : { 'last-event-id': String(last) };
        const { status, events, error } = await stream(client, port, `/events?endOnDrain=1&every=${every}`, headers, agent, pool, true);
        if (!running) break;
        const ids = events.filter((event) => event.id !== undefined).map((event) => Number(event.id));
        long.events += ids.length;
        const from = last === undefined ? 0 : last + 1;
        if (ids.some((id, i) => id !== from + i)) long.gaps += 1;
        if (ids.length > 0) last = ids.at(-1);
        const code = error ?? (status !== 200 ? `HTTP ${status}` : events.at(-1)?.event === 'bye' ? undefined : 'ended without bye');
        if (code === undefined) long.ended += 1;
        else {
          long.failed += 1;
          long.errors[code] = (long.errors[code] ?? 0) + 1;
          // A failed one is not opened again at once (bounded: a broken server cannot spin this loop).
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    };
    const clients = ['agent', 'undici'];
    all = Promise.all([
      ...clients.flatMap((client) => Array.from({ length: lanes }, () => shortLane(client))),
      ...clients.flatMap((client) => Array.from({ length: longPerClient }, () => longLane(client))),
    ]);
    all.finally(() => {
      agent.destroy();
      pool.destroy();
    });
    process.send({ type: 'started' });
  } else if (message.type === 'stop') {
    running = false;
    for (const handle of toClose) (handle.destroy ?? handle.abort).call(handle);
    await all;
    const seconds = (performance.now() - started) / 1000;
    // Every short stream ran to its end (stop lets them finish); only the long ones were closed here.
    const finished = short;
    process.send({
      type: 'result',
      result: {
        short: summarize(finished, seconds),
        agent: summarize(
          finished.filter((result) => result.client === 'agent'),
          seconds,
        ),
        undici: summarize(
          finished.filter((result) => result.client === 'undici'),
          seconds,
        ),
        long,
      },
    });
  }
});
process.on('disconnect', () => process.exit(0));
