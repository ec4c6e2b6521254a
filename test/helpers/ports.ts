// Ports for tests that pick one now and listen on it later (a runner, a supervisor, an app). The
// kernel's pick (listen on port 0, closed again) is free right now, but between the probe and the
// real listen any process on the machine that listens on port 0 may get the same one: with test
// files running side by side, each starting dozens of such processes, that happened a few times a run
// (EADDRINUSE naming another file's runner). So a port is taken from below the kernel's ephemeral
// range (net.ipv4.ip_local_port_range, 32768-60999 by default: no port-0 listen and no outgoing
// connection gets one from there), from a block of its own per test worker (VITEST_POOL_ID), in turn,
// and checked free by listening on it (also on ::1 when asked).
import fs from 'node:fs';
import net from 'node:net';

const FIRST = 20_000;
const BLOCK = 2_500;

// The start of the kernel's ephemeral range: the blocks stay below it.
function ephemeralStart(): number {
  try {
    const [low] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return low && low > FIRST ? low : 32_768;
  } catch {
    return 32_768;
  }
}

const pool = Math.max(1, Number(process.env.VITEST_POOL_ID ?? process.env.VITEST_WORKER_ID ?? 1) || 1);
const blocks = Math.max(1, Math.floor((ephemeralStart() - FIRST) / BLOCK));
const start = FIRST + ((pool - 1) % blocks) * BLOCK;
// Where in the block this file starts: by pid, so two runs of one file do not retrace each other.
let next = process.pid % BLOCK;

function listens(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/** A loopback port free right now, from this test worker's own block (see above). */
export async function freePort(options: { ipv6?: boolean } = {}): Promise<number> {
  for (let tries = 0; tries < BLOCK; tries++) {
    const port = start + (next++ % BLOCK);
    if (!(await listens(port, '127.0.0.1'))) continue;
    if (options.ipv6 && !(await listens(port, '::1'))) continue;
    return port;
  }
  throw new Error(`no free port in ${start}-${start + BLOCK - 1}`);
}
