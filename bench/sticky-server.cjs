// Benchmark server for the sticky comparison (bench/sticky.mjs): 2 hello-world workers on one port,
// as `--config reuseport` (startCluster: hash steering), `--config sticky` (startCluster({ sticky:
// 'ip' })), or `--config socketio-sticky` (node:cluster with @socket.io/sticky's setupMaster in the
// primary, which reads the first bytes of every connection and passes it to a worker, and its
// setupWorker in each worker). Every worker attaches a socket.io Server to its hello-world HTTP
// server (as a socket.io app that also serves pages does; @socket.io/sticky needs it), and the
// requests measured are plain GET / answered by the HTTP handler.
// Tells the driver { type: 'ready', pids } over IPC; exits when the driver disconnects.
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');
const { parseArgs } = require('node:util');

const BODY = 'Hello, world!\n';
const handler = (_request, response) => {
  response.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length });
  response.end(BODY);
};
const config = process.env.STICKY_BENCH_CONFIG;

if (cluster.isWorker) {
  const server = http.createServer(handler);
  server.keepAliveTimeout = 5_000;
  const { Server } = require('socket.io');
  const io = new Server(server);
  if (config === 'socketio-sticky') {
    require('@socket.io/sticky').setupWorker(io);
  } else {
    const { listenReusePort } = require('..');
    listenReusePort(server, Number(process.env.STICKY_BENCH_PORT), { host: '127.0.0.1' });
  }
} else {
  const { values } = parseArgs({ options: { config: { type: 'string' }, port: { type: 'string' }, workers: { type: 'string', default: '2' } } });
  const workers = Number(values.workers);
  process.env.STICKY_BENCH_CONFIG = values.config;
  process.env.STICKY_BENCH_PORT = values.port;
  process.on('disconnect', () => process.exit(0));
  if (values.config === 'socketio-sticky') {
    const { setupMaster } = require('@socket.io/sticky');
    const front = http.createServer();
    setupMaster(front, { loadBalancingMethod: 'least-connection' });
    // As its README says: the first bytes go to the worker as a Buffer, which JSON IPC would not keep.
    cluster.setupPrimary({ serialization: 'advanced' });
    let up = 0;
    cluster.on('online', () => {
      up += 1;
      if (up === workers)
        front.listen(Number(values.port), '127.0.0.1', () => process.send({ type: 'ready', pids: Object.values(cluster.workers).map((w) => w.process.pid) }));
    });
    for (let i = 0; i < workers; i++) cluster.fork();
  } else {
    const { startCluster } = require('..');
    startCluster({ exec: __filename, workers, ...(values.config === 'sticky' ? { sticky: 'ip' } : {}), shutdownSignals: false }).then(
      (supervisor) => process.send({ type: 'ready', pids: supervisor.pids, steering: supervisor.steering() }),
      (error) => process.send({ type: 'failed', error: { message: error.message } }),
    );
  }
}
