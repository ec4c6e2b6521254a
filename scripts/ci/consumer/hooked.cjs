// An ordinary app run with the installed tarball's hook (`node --require reuseport/register hooked.cjs`,
// or `--import`): a plain server.listen() gets an SO_REUSEPORT socket; it checks that and serves once.
'use strict';
const http = require('node:http');
const net = require('node:net');

const server = http.createServer((_req, res) => res.end('hooked'));
server.listen(0, '127.0.0.1', () => {
  // Port 0 is Node's own listen; a second server on its port goes through the hook.
  const { port } = server.address();
  server.close(() => {
    const hooked = http.createServer((_req, res) => res.end('hooked'));
    hooked.listen(port, '127.0.0.1', () => {
      const installed = typeof net.Server.prototype[Symbol.for('reuseport.register')] === 'string';
      http.get({ host: '127.0.0.1', port, agent: false }, (response) => {
        let body = '';
        response.on('data', (chunk) => (body += chunk));
        response.on('end', () => {
          hooked.close();
          if (!installed || body !== 'hooked') {
            console.error(`hook: installed ${installed}, body ${body}`);
            process.exit(1);
          }
          console.log(`hook (${process.execArgv.join(' ')}): served on ${port}`);
        });
      });
    });
  });
});
