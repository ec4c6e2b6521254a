// Pooled keep-alive clients for the deploy scenarios: 8 lanes on Node's http.Agent and 8 on an undici
// Pool, each sending the next request when the last is answered, until 'stop'; counts errors per client.
'use strict';
const http = require('node:http');
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
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const pool = new Pool(`http://127.0.0.1:${message.port}`, { connections: 8 });
    const agentLane = async () => {
      while (running) results.agent.push(await request({ port: message.port, path: '/' }, agent));
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
