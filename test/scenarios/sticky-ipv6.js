// The sticky program on the kernel with IPv6 clients of many addresses, inside a network namespace
// the test made (test/helpers/netns.ts): adds fd00::10-fd00::25 to lo (it is root there), opens 4
// SO_REUSEPORT sockets on [::] with the sticky program attached (argv[2]: { slots, ipv6Prefix }),
// connects 3 times from each address, and prints one JSON line: which socket accepted each.
'use strict';
const { execFileSync } = require('node:child_process');
const net = require('node:net');
const { loadBinding } = require('../../dist/binding.js');
const { flatten, stickyProgram } = require('../../dist/supervisor/slots/steering.js');

const config = JSON.parse(process.argv[2]);
const sources = Array.from({ length: 16 }, (_, i) => `fd00::${(10 + i).toString(16)}`);
for (const source of sources) execFileSync('ip', ['-6', 'addr', 'add', `${source}/128`, 'dev', 'lo', 'nodad']);
const { binding } = loadBinding();
const fds = [];
let port = 0;
for (let i = 0; i < config.slots; i++) {
  const socket = binding.openListener({ address: '::', port, ipv6Only: true, listen: false });
  port = socket.port;
  fds.push(socket.fd);
}
const accepted = [];
const servers = fds.map((fd, index) => {
  binding.listenSocket(fd, 64);
  const server = net.createServer((c) => {
    accepted.push({ index, from: c.remoteAddress });
    c.end();
  });
  server.listen({ fd });
  return server;
});
binding.attachReusePortProgram(
  fds[0],
  flatten(
    stickyProgram(
      Array.from({ length: config.slots }, (_, s) => s),
      { ipv6Prefix: config.ipv6Prefix },
    ),
  ),
);
const timer = setTimeout(() => {
  process.stderr.write('no answer within 10 s\n');
  process.exit(1);
}, 10_000);
(async () => {
  for (let round = 0; round < 3; round++) {
    for (const source of sources) {
      await new Promise((resolve, reject) => {
        const socket = net.connect({ port, host: '::1', localAddress: source });
        socket.on('close', resolve);
        socket.on('error', reject);
        socket.resume();
      });
    }
  }
  clearTimeout(timer);
  for (const server of servers) server.close();
  process.stdout.write(`${JSON.stringify({ accepted })}\n`);
})().catch((error) => {
  process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
