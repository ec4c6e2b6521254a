// Unmodified apps under `reuseport start`: the workers preload reuseport/register, so Express's
// app.listen(port), Fastify's listen({ port }) and Koa's app.listen(port) each listen on their slot's
// own SO_REUSEPORT socket (one listening socket per slot on the port, none in the runner), reloads
// work, and a worker started without the hook that listens through node:cluster fails within seconds
// with a message saying why.
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { countResponses, fetchOnce } from './helpers/http';
import { exitAfterOutput } from './helpers/exit';
import { SeenProcesses } from './helpers/pids';
import { fixtures } from './helpers/processes';
import { listeningInodes, socketInodesOf } from './helpers/proc-net';
import { freePort } from './helpers/ports';

const cli = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
const seen = new SeenProcesses();
afterEach(() => seen.killAll());

interface Event {
  event: string;
  pid?: number;
  slot?: number;
  lentTo?: number;
  during?: string;
  workers?: number[];
  pids?: number[];
  ports?: number[];
  error?: string;
  probe?: boolean;
  getPort?: number;
  detectPort?: number;
  cut?: number;
  killed?: number[];
}

// The runner with --json; lines that are not the runner's JSON (a worker's own output) are kept aside.
function runner(args: string[], port: number, env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [cli, 'start', '--json', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env, APP_PORT: String(port) },
  });
  seen.add(child.pid);
  const events: Event[] = [];
  let output = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
    for (let end = output.indexOf('\n'); end >= 0; end = output.indexOf('\n')) {
      const line = output.slice(0, end);
      output = output.slice(end + 1);
      if (!line.startsWith('{')) continue;
      const parsed = JSON.parse(line) as Event & { line?: string };
      // With --json a worker's own line comes as an 'output' object; a JSON line of the app's is unwrapped.
      const event = parsed.event === 'output' && parsed.line?.startsWith('{') ? (JSON.parse(parsed.line) as Event) : parsed;
      for (const pid of [event.pid, ...(event.workers ?? []), ...(event.pids ?? [])]) if (pid) seen.add(pid);
      events.push(event);
    }
  });
  const exited = exitAfterOutput(child).then(({ code }) => code);
  const next = async (name: string, after = 0, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = events.slice(after).find((event) => event.event === name);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no "${name}" within ${timeoutMs} ms: ${JSON.stringify(events)} ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return { child, events, next, exited, stderr: () => stderr };
}

describe.each([
  ['Express 5, app.listen(port)', 'express-app.js'],
  ['Fastify 5, listen({ port, host })', 'fastify-app.js'],
  ['Koa 3, app.listen(port)', 'koa-app.js'],
])('an unmodified %s under reuseport start', (_name, fixture) => {
  it('is ready with one socket per slot on the port, both workers answer, and a SIGHUP reload replaces them', async () => {
    const port = await freePort();
    const run = runner(['--workers', '2', path.join(fixtures, fixture)], port);
    const ready = await run.next('ready');
    const workers = ready.workers ?? [];
    expect(workers).toHaveLength(2);
    // The slot sockets: one per slot, each open in its worker (lent by the runner, which keeps them open too).
    const inodes = listeningInodes(port);
    expect(inodes).toHaveLength(2);
    for (const pid of workers) expect(inodes.filter((inode) => socketInodesOf(pid).has(inode))).toHaveLength(1);
    const before = await countResponses(port, 100);
    expect([...before.keys()].sort()).toEqual(workers.map(String).sort());

    const mark = run.events.length;
    run.child.kill('SIGHUP');
    const reload = await run.next('reload', mark);
    const after = await countResponses(port, 100);
    expect([...after.keys()].sort()).toEqual((reload.pids ?? []).map(String).sort());
    expect(listeningInodes(port).sort()).toEqual(inodes.sort());

    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  }, 60_000);
});

// get-port and detect-port probe by listening on the port and closing it; get-port tries every local
// address (0.0.0.0, ::, 127.0.0.1, ::1, each interface's, a link-local one that fails with EINVAL).
// Under the hook each probe is a slot listen: the app's close gives it back, so nothing is left
// behind that would queue connections no one accepts, and the runner's own sockets on overlapping
// addresses are never reported as a foreign app's.
describe('port probes (get-port, detect-port) in the workers of reuseport start', () => {
  it('leave one socket per slot on the port, the ready line names it, both workers answer, and no foreign socket is reported', async () => {
    const port = await freePort();
    const run = runner(['--workers', '2', path.join(fixtures, 'port-probe-app.mjs')], port);
    const ready = await run.next('ready');
    const workers = ready.workers ?? [];
    expect(String(ready.ports)).toBe(String(port));
    const inodes = listeningInodes(port);
    expect(inodes).toHaveLength(2);
    for (const pid of workers) expect(inodes.filter((inode) => socketInodesOf(pid).has(inode))).toHaveLength(1);
    const answers = await countResponses(port, 100);
    expect([...answers.keys()].sort()).toEqual(workers.map(String).sort());
    // In a worker of the same app the port reads as free: both libraries answer the port asked for.
    const probes = run.events.filter((event) => event.probe);
    expect(probes.map((probe) => [probe.getPort, probe.detectPort])).toEqual([
      [port, port],
      [port, port],
    ]);
    // A foreign-socket check runs every second: give it two rounds.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(run.events.filter((event) => event.event === 'foreign')).toEqual([]);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  }, 60_000);

  it("free the port once the app closes its server, as Node does: the runner's sockets there close too", async () => {
    const port = await freePort();
    const run = runner(['--workers', '1', path.join(fixtures, 'port-probe-app.mjs')], port, { APP_CLOSE_AFTER: '1' });
    await run.next('ready');
    expect(listeningInodes(port)).toHaveLength(1);
    expect((await countResponses(port, 1)).size).toBe(1);
    for (let i = 0; i < 100 && listeningInodes(port).length > 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(listeningInodes(port)).toEqual([]);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  }, 60_000);
});

describe('an app with a second port under reuseport start', () => {
  it('is ready once the listens settle: the ready line names both ports, the one listened on after the first too', async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    const run = runner(['--workers', '2', path.join(fixtures, 'two-port-app.js')], port, { APP_ADMIN_PORT: String(adminPort) });
    const ready = await run.next('ready');
    expect((ready.ports as number[]).map(Number).sort()).toEqual([port, adminPort].sort());
    expect((await countResponses(port, 50)).size).toBe(2);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  }, 60_000);

  it('the second port is in the ready line when its socket reaches the worker long after the first listen (a socket asked for holds the start)', async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    // Each worker is busy 600 ms as the admin socket arrives, so its listen there is reported 600 ms
    // after it asked, three times the quiet while (200 ms) after the first listen that ends a start.
    const run = runner(['--workers', '2', path.join(fixtures, 'two-port-app.js')], port, { APP_ADMIN_PORT: String(adminPort), APP_SLOW_GRANT_MS: '600' });
    const ready = await run.next('ready');
    expect((ready.ports as number[]).map(Number).sort()).toEqual([port, adminPort].sort());
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  }, 60_000);
});

// One request on a new connection, given up after 1 s: the body, or why not (a hang is 'timed out').
// For connections that may rightly go unanswered (one queued at a stopped worker's socket).
const askOnce = (port: number): Promise<string> => fetchOnce(port, '127.0.0.1', 1_000).catch((error: Error) => error.message);
// The same for a request that must be answered: given up only after 10 s (a hang), as a slow machine
// may take over 1 s to answer one (a worker just resumed, a runner busy lending a slot).
const askSurely = (port: number): Promise<string> => fetchOnce(port, '127.0.0.1', 10_000).catch((error: Error) => error.message);

describe('ports only some workers listen on, under reuseport start', () => {
  it("an admin port of slot 0's worker and a port per worker: every request is answered, by the worker that listens there", async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    // Two free ports in a row for the per-worker ports (bounded tries).
    let slotPort = 0;
    for (let i = 0; i < 20 && !slotPort; i++) {
      const candidate = await freePort();
      const next = net.createServer().listen({ port: candidate + 1, host: '127.0.0.1', exclusive: true });
      const free = await new Promise<boolean>((resolve) => {
        next.once('listening', () => resolve(true));
        next.once('error', () => resolve(false));
      });
      if (free) await new Promise((resolve) => next.close(resolve));
      if (free) slotPort = candidate;
    }
    expect(slotPort).toBeGreaterThan(0);
    const run = runner(['--workers', '2', path.join(fixtures, 'admin-port-app.js')], port, {
      APP_ADMIN_PORT: String(adminPort),
      APP_SLOT_PORT: String(slotPort),
    });
    const ready = await run.next('ready');
    const [first, second] = ready.workers as number[];
    // A socket only for each slot whose worker listens there: one on the admin port and on each
    // worker's own port, two on the port both serve (none that no worker accepts from).
    expect([adminPort, slotPort, slotPort + 1, port].map((p) => listeningInodes(p).length)).toEqual([1, 1, 1, 2]);
    // One that queued at a socket no worker accepts from hangs (10 s): the first wrong answer ends the test.
    for (let i = 0; i < 20; i++) {
      expect(await askSurely(adminPort)).toBe(`admin ${first}`);
      expect(await askSurely(slotPort)).toBe(`slot-0 ${first}`);
      expect(await askSurely(slotPort + 1)).toBe(`slot-1 ${second}`);
    }
    expect((await countResponses(port, 50)).size).toBe(2);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  }, 90_000);

  it("a stalled slot 0 lends only the port the other worker serves: its admin port and its own port wait for it, never reach another port's server", async () => {
    const [port, adminPort, slotPort] = [await freePort(), await freePort(), await freePort()];
    const run = runner(['--workers', '2', path.join(fixtures, 'admin-port-app.js')], port, {
      APP_ADMIN_PORT: String(adminPort),
      // Slot 1's own port (slotPort + 1) is not asked for here: only slot 0's.
      APP_SLOT_PORT: String(slotPort),
    });
    const ready = await run.next('ready');
    const [first, second] = ready.workers as number[];
    process.kill(first as number, 'SIGSTOP');
    try {
      // New connections on the shared port: those that queue at the stopped slot 0 make it a stall, and
      // its socket there is lent to slot 1, which answers them (bounded).
      for (let i = 0; i < 100 && !run.events.some((event) => event.event === 'stall' && event.slot === 0); i++) await askOnce(port);
      expect(run.events.find((event) => event.event === 'stall' && event.slot === 0)).toMatchObject({ pid: first, lentTo: second });
      expect(await askSurely(port)).toBe(`app ${second}`);
      // Slot 0's admin and own port: no other worker listens there, so nothing answers while it is stopped.
      for (const only of [adminPort, slotPort]) {
        const answers = await Promise.all([askOnce(only), askOnce(only), askOnce(only)]);
        expect(answers.filter((answer) => answer.endsWith(` ${second}`))).toEqual([]);
      }
    } finally {
      process.kill(first as number, 'SIGCONT');
    }
    // Slot 0's worker, resumed, answers there again (bounded by count and time).
    let admin = '';
    const resumed = Date.now();
    for (let i = 0; i < 20 && admin !== `admin ${first}` && Date.now() - resumed < 30_000; i++) admin = await askSurely(adminPort);
    expect(admin).toBe(`admin ${first}`);
    expect(await askSurely(slotPort)).toBe(`slot-0 ${first}`);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  }, 90_000);

  it('a stall while a reload runs says so: its line has during "a reload" (an expected stall, not an alarm)', async () => {
    const [port, adminPort, slotPort] = [await freePort(), await freePort(), await freePort()];
    const run = runner(['--workers', '2', path.join(fixtures, 'admin-port-app.js')], port, {
      APP_ADMIN_PORT: String(adminPort),
      APP_SLOT_PORT: String(slotPort),
    });
    const ready = await run.next('ready');
    const second = (ready.workers as number[])[1] as number;
    const mark = run.events.length;
    // The reload starts with slot 0 (its new worker lives a while before the old one drains); slot 1's
    // worker, stopped meanwhile, stalls while the reload runs.
    run.child.kill('SIGHUP');
    process.kill(second, 'SIGSTOP');
    try {
      for (let i = 0; i < 100 && !run.events.some((event) => event.event === 'stall' && event.slot === 1); i++) await askOnce(port);
      expect(run.events.find((event) => event.event === 'stall' && event.slot === 1)).toMatchObject({ pid: second, during: 'a reload' });
    } finally {
      process.kill(second, 'SIGCONT');
    }
    await run.next('reload', mark, 60_000);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  }, 90_000);
});

// A listen error the app handles is the app's: the start waits for the listen that follows (get-port
// does this on every address that refuses it), and fails with that error only if none follows soon.
describe('a listen error in a worker under reuseport start', () => {
  it("handled by the app, which then listens elsewhere: the runner is ready on the app's second port", async () => {
    const busy = net.createServer().listen({ port: 0, host: '::', exclusive: true });
    await new Promise((resolve) => busy.once('listening', resolve));
    try {
      const port = await freePort();
      const run = runner(['--workers', '2', path.join(fixtures, 'retry-app.js')], port, { APP_BUSY_PORT: String((busy.address() as net.AddressInfo).port) });
      const ready = await run.next('ready');
      expect(String(ready.ports)).toBe(String(port));
      expect((await countResponses(port, 50)).size).toBe(2);
      run.child.kill('SIGTERM');
      expect(await run.exited).toBe(0);
    } finally {
      busy.close();
    }
  }, 60_000);

  it('handled by an app that then never listens: the runner fails within seconds with that error', async () => {
    const busy = net.createServer().listen({ port: 0, host: '::', exclusive: true });
    await new Promise((resolve) => busy.once('listening', resolve));
    const busyPort = (busy.address() as net.AddressInfo).port;
    try {
      const started = Date.now();
      const run = runner(['--workers', '1', path.join(fixtures, 'retry-app.js')], await freePort(), { APP_BUSY_PORT: String(busyPort), APP_GIVE_UP: '1' });
      expect(await run.exited).toBe(1);
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(run.stderr()).toContain(`EADDRINUSE :::${busyPort}`);
      expect(run.events.find((event) => event.event === 'ready')).toBeUndefined();
    } finally {
      busy.close();
    }
  }, 30_000);
});

describe('a crash-looping release under reuseport start', () => {
  it('ends the runner non-zero after 16 restarts a slot (default --max-restarts), its last line naming the cause and the tail of its stderr', async () => {
    const port = await freePort();
    const started = Date.now();
    // --min-uptime 10 s, not the default 1 s: on a busy machine the app's own start (fork to listen)
    // can take longer than 1 s, and a worker that lived that long is not a crash.
    const run = runner(['--workers', '2', '--min-uptime', '10000', path.join(fixtures, 'crash-app.js')], port);
    expect(await run.exited).toBe(1);
    // The back-off between restarts sums to about 13.5 s a slot, and each of its 17 starts (a fork, the
    // app's listen, 100 ms) may take 1-3 s on a slow machine: a generous bound, which a runner that
    // kept restarting still fails (as it fails the count of restarts below).
    expect(Date.now() - started).toBeLessThan(90_000);
    const loops = run.events.filter((event) => event.event === 'crash-loop');
    expect(loops).toHaveLength(2);
    const last = run.stderr().trim().split('\n').at(-1);
    expect(last).toMatch(
      /^reuseport start: every slot stopped restarting: the workers kept dying within 10000 ms of their start \(16 restarts in a row per slot; the last, pid \d+, exited with code 3\): its stderr ended with: crash-app: cannot reach the database$/,
    );
  }, 120_000);
});

describe('reuseport start --no-register', () => {
  it("fails within seconds when the app's listen goes through node:cluster's primary instead of a slot, and says why", async () => {
    const port = await freePort();
    const started = Date.now();
    const run = runner(['--workers', '1', '--no-register', path.join(fixtures, 'express-app.js')], port);
    expect(await run.exited).toBe(1);
    // Told 2 s after that listen (NOT_A_SLOT_MS), plus the app's start, which on a slow machine took
    // 14.5 s once: a bound well under the 30 s ready timeout that a runner without the check ends on.
    expect(Date.now() - started).toBeLessThan(25_000);
    expect(run.stderr()).toMatch(/listened on .*:\d+ through node:cluster's primary, not on a slot socket.*--no-register.*listenReusePort/s);
    expect(run.events.find((event) => event.event === 'ready')).toBeUndefined();
  }, 60_000);
});

describe('drainSignal() under reuseport start', () => {
  it('aborts when a reload drains the worker: an app that ends its long responses on it lets the reload finish long before drainTimeoutMs', async () => {
    const port = await freePort();
    const run = runner(['--workers', '2', path.join(fixtures, 'stream-app.js')], port);
    await run.next('ready');
    // Long-lived responses on both workers (bounded tries: the kernel picks the worker).
    const streams: { pid: string; body: Promise<string> }[] = [];
    for (let i = 0; i < 40 && new Set(streams.map((s) => s.pid)).size < 2; i++) {
      streams.push(
        await new Promise((resolve, reject) => {
          http
            .get({ host: '127.0.0.1', port, path: '/', agent: false }, (response) => {
              let text = '';
              response.setEncoding('utf8');
              const body = new Promise<string>((done, fail) => {
                response.on('data', (chunk: string) => (text += chunk));
                response.on('end', () => done(text));
                response.on('error', fail);
              });
              resolve({ pid: String(response.headers['x-pid']), body });
            })
            .on('error', reject);
        }),
      );
    }
    expect(new Set(streams.map((s) => s.pid)).size).toBe(2);
    const mark = run.events.length;
    run.child.kill('SIGHUP');
    const reload = await run.next('reload', mark, 60_000);
    // Without the signal each old worker's streams stay open until drainTimeoutMs (10 s by default),
    // where they are cut (or the worker killed): the reload line counts them. Told by what the drain
    // did, not by how long it took, which on a slow machine says little.
    expect(reload.cut).toBe(0);
    expect(reload.killed).toBeUndefined();
    for (const stream of streams) await expect(stream.body).resolves.toBe('start\nbye\n');
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  }, 60_000);
});
