// The app a process manager runs in the manager scenarios (test/scenarios/managers.js): an HTTP server
// on SCENARIO_PORT that serves its pid. SCENARIO_LISTEN=reuseport listens with listenReusePort (as under
// `reuseport start`, or in PM2 cluster mode with the library), 'plain' with server.listen (PM2's own
// cluster mode: its daemon's round-robin).
'use strict';
const http = require('node:http');
const { listenReusePort } = require('../..');

const server = http.createServer((request, response) => response.end(String(process.pid)));
const port = Number(process.env.SCENARIO_PORT ?? 8000);
if (process.env.SCENARIO_LISTEN === 'plain') {
  server.listen(port, '127.0.0.1');
} else {
  listenReusePort(server, port, { host: '127.0.0.1' }).catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
