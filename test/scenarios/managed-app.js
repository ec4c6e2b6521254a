// The app a process manager runs in the manager scenarios (test/scenarios/managers.js): an HTTP server
// on SCENARIO_PORT that serves its pid. SCENARIO_LISTEN=reuseport listens with listenReusePort (as under
// `reuseport start`, or in PM2 cluster mode with the library), 'plain' with server.listen (PM2's own
// cluster mode: its daemon's round-robin; under `reuseport start` or with the hook, a slot socket or
// the worker's own), 'express' an unmodified Express 5 app (`app.listen(port, host)`), 'fastify' an
// unmodified Fastify 5 app (`fastify.listen({ port, host })`).
'use strict';
const http = require('node:http');
const { listenReusePort } = require('../..');

const server = http.createServer((request, response) => response.end(String(process.pid)));
const port = Number(process.env.SCENARIO_PORT ?? 8000);
if (process.env.SCENARIO_LISTEN === 'plain') {
  server.listen(port, '127.0.0.1');
} else if (process.env.SCENARIO_LISTEN === 'express') {
  const app = require('express')();
  app.get('/', (_request, response) => response.send(String(process.pid)));
  app.listen(port, '127.0.0.1', (error) => {
    if (error) throw error;
  });
} else if (process.env.SCENARIO_LISTEN === 'fastify') {
  const fastify = require('fastify')();
  fastify.get('/', async () => String(process.pid));
  fastify.listen({ port, host: '127.0.0.1' }).catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else {
  listenReusePort(server, port, { host: '127.0.0.1' }).catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
