// Under the arm64 Node (qemu): a startCluster worker of the installed package. Answers with its pid
// and tells the primary what listenReusePort said (mode, backend, reasons).
'use strict';
const http = require('node:http');
const { listenReusePort } = require('reuseport');

const server = http.createServer((request, response) => response.end(String(process.pid)));
listenReusePort(server, 0, { host: '127.0.0.1' }).then(
  (info) => process.send({ type: 'info', pid: process.pid, mode: info.mode, backend: info.backend, reasons: info.reasons }),
  (error) => process.send({ type: 'info', pid: process.pid, error: error.message }),
);
