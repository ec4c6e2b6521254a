// Type-checked only: the CommonJS face and its types, as a TypeScript user requires them.
import http = require('node:http');
import reuseport = require('reuseport');

const server = http.createServer((_req, res) => res.end('ok'));
void reuseport.listenReusePort(server, { port: 0, host: '127.0.0.1' }).then((info: reuseport.ListenResult) => {
  const backend: 'addon' | 'node' | 'cluster' = info.backend;
  console.log(backend, info.address.port);
});

// The preload hook's subpath and its types.
import register = require('reuseport/register');
const hooked: boolean = register.isHookInstalled();
console.log(hooked);
