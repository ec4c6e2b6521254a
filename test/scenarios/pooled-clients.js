// Pooled keep-alive clients for the deploy scenarios: 8 lanes on Node's http.Agent and 8 on an undici
// Pool, each sending the next request when the last is answered, until 'stop'; counts errors per client.
// `tls: true` in 'start': https (an https.Agent, the Pool on https://; the test certificate is not checked).
'use strict';
const http = require('node:http');
const https = require('node:https');
const { Pool } = require('undici');
const { request, summarize } = require('./load');

let running = false;
const results = { agent: [], undici: [] };
let lanes = Promise.resolve();
let started = 0;

process.on('message', async (message) => {
  if (message.type === 'start') {
    running = true;
    started = performance.now();
    const secure = message.tls === true;
    const agent = secure ? new https.Agent({ keepAlive: true, maxSockets: 8, rejectUnauthorized: false }) : new http.Agent({ keepAlive: true, maxSockets: 8 });
    const pool = new Pool(`${secure ? 'https' : 'http'}://127.0.0.1:${message.port}`, {
      connections: 8,
      ...(secure ? { connect: { rejectUnauthorized: false } } : {}),
    });
    const agentLane = async () => {
      while (running) results.agent.push(await request({ port: message.port, path: '/' }, agent, secure ? https : http));
    };
    const undiciLane = async () => {
      while (running) {
        const begun = performance.now();
        try {
          const response = await pool.request({ path: '/', method: 'GET', headersTimeout: 5_000, bodyTimeout: 5_000 });
          await response.body.text();
          results.undici.push({ ok: response.statusCode === 200, ms: performance.now() - begun });
        } catch (error) {
          results.undici.push({ ok: false, code: error.code ?? error.message, ms: performance.now() - begun });
        }
      }
    };
    lanes = Promise.all([...Array.from({ length: 8 }, agentLane), ...Array.from({ length: 8 }, undiciLane)]).then(async () => {
      agent.destroy();
      await pool.close();
    });
    process.send({ type: 'started' });
  } else if (message.type === 'stop') {
    running = false;
    await lanes;
    const seconds = (performance.now() - started) / 1000;
    const agent = summarize(results.agent, seconds);
    const undici = summarize(results.undici, seconds);
    const all = summarize([...results.agent, ...results.undici], seconds);
    process.send({ type: 'result', result: { ...all, agent, undici } });
  }
});
process.on('disconnect', () => process.exit(0));
