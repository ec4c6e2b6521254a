// Runs the load client in its own process (so it never shares an event loop with the servers).
'use strict';
const { closedLoop, openLoop, request } = require('./load');

let loop;
let closedIdle = Promise.resolve(false);
process.on('message', async (message) => {
  if (message.type === 'closed') {
    loop = closedLoop(message.options);
    process.send({ type: 'started' });
  } else if (message.type === 'stop') {
    process.send({ type: 'result', result: await loop.stop() });
  } else if (message.type === 'open') {
    process.send({ type: 'result', result: await openLoop(message.options) });
  } else if (message.type === 'idle') {
    // One keep-alive connection used once, then left idle: a drain must close it, not wait for it.
    const agent = new (require('node:http').Agent)({ keepAlive: true, maxSockets: 1 });
    const first = await request({ port: message.port, path: '/' }, agent);
    const closed = new Promise((resolve) => {
      const sockets = Object.values(agent.freeSockets).flat();
      if (sockets.length === 0) return resolve(false);
      sockets[0].once('close', () => resolve(true));
    });
    process.send({ type: 'idling', ok: first.ok });
    closedIdle = closed;
  } else if (message.type === 'idle-result') {
    process.send({ type: 'idle-result', closedByServer: await Promise.race([closedIdle, new Promise((r) => setTimeout(() => r(false), 100))]) });
  } else if (message.type === 'requests') {
    // Keep-alive requests, so that a `Connection: close` in the answer is the server's doing.
    const agent = new (require('node:http').Agent)({ keepAlive: true });
    const results = await Promise.all(message.paths.map((path) => request({ port: message.port, path }, agent)));
    agent.destroy();
    process.send({ type: 'responses', results });
  }
});
process.on('disconnect', () => process.exit(0));
