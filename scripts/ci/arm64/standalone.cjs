// Under the arm64 Node (qemu): one standalone process of the installed package, listenReusePort
// on 127.0.0.1:<argv[2]> (0: any). Prints one JSON line (pid, port, mode, backend, reasons), then
// answers every request with its pid until it is killed.
'use strict';
const http = require('node:http');
const { listenReusePort } = require('reuseport');

const server = http.createServer((request, response) => response.end(String(process.pid)));
listenReusePort(server, Number(process.argv[2] ?? 0), { host: '127.0.0.1' }).then(
  (info) => console.log(JSON.stringify({ pid: process.pid, port: info.address.port, mode: info.mode, backend: info.backend, reasons: info.reasons })),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
