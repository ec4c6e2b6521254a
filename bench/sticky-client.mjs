// The sticky comparison's load (a process of its own, so the driver measures only the servers):
// `lanes` request loops for `durationMs`, as many clients of their own address each: every lane takes
// the next of 1024 source addresses (127.1.0.0-127.1.3.255; Linux routes all of 127/8 to lo) for
// each new connection, so that sticky spreads them as it spreads many clients (a few addresses
// would load its workers as unevenly as they hash). `close`: a new connection per request;
// `keepalive`: a connection carries 100 requests (a client's visit), then the lane moves on.
// Prints { requests, errors } as JSON.
import http from 'node:http';

const [port, workload, lanes, durationMs] = process.argv.slice(2).map((v, i) => (i === 1 ? v : Number(v)));
const until = performance.now() + durationMs;
let requests = 0;
let errors = 0;

function once(agent, source) {
  return new Promise((resolve) => {
    const options = {
      host: '127.0.0.1',
      port,
      path: '/',
      timeout: 5_000,
      ...(agent ? { agent } : { agent: false, localAddress: source, headers: { connection: 'close' } }),
    };
    const request = http.get(options, (response) => {
      response.resume();
      response.on('end', () => {
        requests += 1;
        resolve();
      });
    });
    request.on('timeout', () => request.destroy(new Error('timeout')));
    request.on('error', () => {
      errors += 1;
      resolve();
    });
  });
}

const ADDRESSES = 1024;
const PER_CONNECTION = 100;
let next = 0;
const nextSource = () => {
  const i = next++ % ADDRESSES;
  return `127.1.${i >> 8}.${i & 255}`;
};

async function lane() {
  while (performance.now() < until) {
    const source = nextSource();
    if (workload !== 'keepalive') {
      await once(undefined, source);
      continue;
    }
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: source });
    for (let i = 0; i < PER_CONNECTION && performance.now() < until; i++) await once(agent, source);
    agent.destroy();
  }
}

await Promise.all(Array.from({ length: lanes }, () => lane()));
process.stdout.write(`${JSON.stringify({ requests, errors })}\n`);
