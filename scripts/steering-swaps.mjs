// Does replacing the cBPF program of an SO_REUSEPORT group cost connections by itself?
// `node scripts/steering-swaps.mjs [--rate 2000] [--period-ms 20] [--duration-ms 4000]` runs three
// listeners in this process (each a Node server on an addon socket) and the open-loop client of the
// stall bench in a child, three times: the program never replaced, replaced every period by one that
// leaves out one socket in turn, and replaced every period by the same program. It prints one JSON
// line per run. (The figure behind README's "swapping the program costs nothing by itself".)
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const { loadBinding } = require('../dist/binding.js');
const { flatten, steeringProgram } = require('../dist/supervisor/slots/steering.js');
const CLIENT = fileURLToPath(new URL('../bench/stall-client.mjs', import.meta.url));

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '2000' },
    'period-ms': { type: 'string', default: '20' },
    'duration-ms': { type: 'string', default: '4000' },
  },
});
const rate = Number(values.rate);
const periodMs = Number(values['period-ms']);
const durationMs = Number(values['duration-ms']);
for (const [name, value] of [
  ['rate', rate],
  ['period-ms', periodMs],
  ['duration-ms', durationMs],
]) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
}

const { binding, error } = loadBinding();
if (!binding) throw error;

/** One run: `swap` is 'never', 'rotate' (leave one socket out in turn) or 'same'. */
async function run(swap) {
  const sockets = [];
  let port = 0;
  for (let i = 0; i < 3; i++) {
    const socket = binding.openListener({ address: '127.0.0.1', port, listen: false });
    port = socket.port;
    sockets.push(socket);
  }
  for (const socket of sockets) binding.listenSocket(socket.fd, 511);
  const counts = [0, 0, 0];
  const servers = sockets.map((socket, i) => {
    const server = http.createServer((_request, response) => {
      counts[i] += 1;
      response.end('ok');
    });
    server.listen({ fd: socket.fd });
    return server;
  });
  const attach = (allowed) => binding.attachReusePortProgram(sockets[0].fd, flatten(steeringProgram(allowed)));
  attach([0, 1, 2]);
  const sets =
    swap === 'rotate'
      ? [
          [0, 1, 2],
          [0, 2],
          [1, 2],
          [0, 1],
        ]
      : [[0, 1, 2]];
  let swaps = 0;
  const timer = setInterval(() => {
    if (swap === 'never') return;
    attach(sets[swaps % sets.length]);
    swaps += 1;
  }, periodMs);
  const client = fork(CLIENT, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  try {
    const result = await new Promise((resolve, reject) => {
      const guard = setTimeout(() => reject(new Error('the client did not report in time')), durationMs + 60_000);
      client.on('message', (message) => {
        if (message.type === 'result') {
          clearTimeout(guard);
          resolve(message.result);
        } else if (message.type === 'error') {
          clearTimeout(guard);
          reject(new Error(message.error.message));
        }
      });
      client.send({ type: 'run', options: { port, rate, durationMs } });
    });
    return {
      swap,
      swaps,
      sent: result.sent,
      failed: result.failed,
      errors: result.errors,
      over500ms: result.overSlowMs,
      p99Ms: result.latencyMs.p99,
      perSocket: counts,
    };
  } finally {
    clearInterval(timer);
    client.kill('SIGKILL');
    for (const server of servers) server.close();
  }
}

for (const swap of ['never', 'rotate', 'same']) {
  process.stdout.write(`${JSON.stringify(await run(swap))}\n`);
}
process.exit(0);
