// Under the arm64 Node (qemu): the installed prebuild's acceptQueue on a listener with one
// connection waiting. qemu-user answers getsockopt(TCP_INFO) with 4 bytes, which must be ENOTSUP.
// Prints { answer } or { code, errno, syscall } as one JSON line.
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const binding = require('node-gyp-build')(path.dirname(require.resolve('reuseport/package.json')));

const socket = binding.openListener({ address: '127.0.0.1', port: 0 });
const client = net.connect(socket.port, '127.0.0.1', () => {
  let result;
  try {
    result = { answer: binding.acceptQueue(socket.fd) };
  } catch (error) {
    result = { code: error.code, errno: error.errno, syscall: error.syscall };
  }
  console.log(JSON.stringify(result));
  client.destroy();
  fs.closeSync(socket.fd);
});
