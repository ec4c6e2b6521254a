// A CommonJS user of the installed tarball: listen with require('reuseport'), serve one request.
'use strict';
const http = require('node:http');
const { listenReusePort } = require('reuseport');
const { checkServed } = require('./check.cjs');

const server = http.createServer((req, res) => res.end(`hello from ${process.pid}\n`));
listenReusePort(server, 0, { host: '127.0.0.1' })
  .then((info) => checkServed('require', server, info))
  .catch((error) => {
    console.error(error);
    process.exit(1);
  });
