// The workers' output under `reuseport start`, with real runners and workers: raw (the workers write
// to the runner's own stdout: the same pipe, no relay) when stdout is not a terminal; prefixed with
// `[slot pid]` on a terminal (a pty made by util-linux `script`) or with --prefix-output; one JSON
// object per line with --json. A reader of the runner's stdout that stalls stops the workers' writes
// (as an inherited stdout would) but not the supervisor: its health server answers meanwhile, and
// every line arrives, in order, once the reader reads again.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fetchPath } from './helpers/http';
import { SeenProcesses } from './helpers/pids';
import { fixtures } from './helpers/processes';
import { cli, freePort, startRunner } from './helpers/runner';

const seen = new SeenProcesses();
afterEach(() => seen.killAll());

const app = path.join(fixtures, 'runner-app.js');

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('worker output', () => {
  it("raw when stdout is not a terminal: each worker writes to the runner's own stdout (no pipe between)", async () => {
    const port = await freePort();
    const runner = startRunner(['start', app, '-i', '2'], seen, { PORT: String(port) });
    const ready = await runner.next((line) => line.event === 'ready');
    const workers = (/workers=([\d,]+)/.exec(ready.text ?? '')?.[1] ?? '').split(',').map(Number);
    for (const pid of workers) seen.add(pid);
    await until('both listening lines', () => (runner.stdout().split(`listening on ${port}\n`).length === 3 ? true : undefined));
    expect(runner.stdout()).not.toMatch(/\[\d+ \d+\]/);
    const own = fs.readlinkSync(`/proc/${runner.child.pid}/fd/1`);
    for (const pid of workers) expect(fs.readlinkSync(`/proc/${pid}/fd/1`)).toBe(own);
    runner.child.kill('SIGTERM');
    expect(await runner.exited).toEqual({ code: 0, signal: null });
  });

  it('--prefix-output: every line as [slot pid] line, stdout to stdout and stderr to stderr', async () => {
    const port = await freePort();
    const runner = startRunner(['start', app, '-i', '2', '--prefix-output'], seen, { PORT: String(port) });
    const ready = await runner.next((line) => line.event === 'ready');
    const workers = (/workers=([\d,]+)/.exec(ready.text ?? '')?.[1] ?? '').split(',').map(Number);
    for (const pid of workers) seen.add(pid);
    // stdout and stderr are two pipes: neither one's lines say the other's have arrived.
    await until('both stderr and both stdout lines', () =>
      workers.every((pid) => runner.stderr().includes(`stderr line from ${pid}`)) && runner.stdout().split(`listening on ${port}\n`).length === 3
        ? true
        : undefined,
    );
    for (const [slot, pid] of workers.entries()) {
      expect(runner.stdout()).toContain(`[${slot} ${pid}] listening on ${port}\n`);
      expect(runner.stderr()).toContain(`[${slot} ${pid}] stderr line from ${pid}\n`);
    }
    runner.child.kill('SIGTERM');
    expect(await runner.exited).toEqual({ code: 0, signal: null });
  });

  it('--json: one object per line, { event: "output", slot, pid, stream, line }', async () => {
    const port = await freePort();
    const runner = startRunner(['start', app, '-i', '2', '--json'], seen, { PORT: String(port) });
    const ready = await runner.next((line) => line.event === 'ready');
    const workers = ready.workers as number[];
    for (const [slot, pid] of workers.entries()) {
      await runner.next(
        (line) => line.event === 'output' && line.pid === pid && line.slot === slot && line.stream === 'stdout' && line.line === `listening on ${port}`,
      );
      await runner.next((line) => line.event === 'output' && line.pid === pid && line.stream === 'stderr' && line.line === `stderr line from ${pid}`);
    }
    // Every line of stdout is JSON.
    expect(runner.lines.every((line) => line.text === undefined)).toBe(true);
    runner.child.kill('SIGTERM');
    expect(await runner.exited).toEqual({ code: 0, signal: null });
  });

  it('prefixed by default when stdout is a terminal (a pty from util-linux script)', async () => {
    const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
    expect(hasScript, 'util-linux script is needed (Debian: bsdutils, an essential package)').toBe(true);
    const port = await freePort();
    const child = spawn('script', ['-qfec', `${JSON.stringify(process.execPath)} ${JSON.stringify(cli)} start ${JSON.stringify(app)} -i 1`, '/dev/null'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PORT: String(port) },
    });
    seen.add(child.pid);
    let text = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    const runnerPid = await until('the ready line', () => {
      const pid = /ready pid=(\d+)/.exec(text)?.[1];
      return pid ? Number(pid) : undefined;
    });
    seen.add(runnerPid);
    const worker = Number(/workers=(\d+)/.exec(text)?.[1]);
    seen.add(worker);
    await until('the prefixed line', () => (text.includes(`[0 ${worker}] listening on ${port}\r\n`) ? true : undefined));
    process.kill(runnerPid, 'SIGTERM');
    expect(await new Promise((resolve) => child.once('exit', resolve))).toBe(0);
  });

  it('a terminal that stops reading stops the output, not the supervisor; every line then arrives in order', async () => {
    const port = await freePort();
    const healthPort = await freePort();
    // The runner on a pty (script); the test stops reading script's output, so the pty fills up.
    const child = spawn(
      'script',
      ['-qfec', `${JSON.stringify(process.execPath)} ${JSON.stringify(cli)} start ${JSON.stringify(app)} -i 1 --health-port ${healthPort}`, '/dev/null'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, PORT: String(port) },
      },
    );
    seen.add(child.pid);
    let text = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    const runnerPid = await until('the ready line', () => {
      const pid = /ready pid=(\d+)/.exec(text)?.[1];
      return pid ? Number(pid) : undefined;
    });
    seen.add(runnerPid);
    const worker = Number(/workers=(\d+)/.exec(text)?.[1]);
    seen.add(worker);
    await until('the listening line', () => (text.includes('listening on') ? true : undefined));
    child.stdout.pause();
    // 40,000 lines of 100 bytes: 4 MB, far past every buffer on the way (the pty, script's pipe, the relay's bound).
    const lines = 40_000;
    const spammed = fetchPath(port, `/spam?n=${lines}`, { timeoutMs: 30_000 });
    // The worker's writes go to its pipe (Node buffers them in the worker): it answers.
    expect(Number(await spammed)).toBeGreaterThan(0);
    // The supervisor's writes wait on the thread pool; its event loop answers all along the stall (a
    // blocking write of the relayed lines would hold it in the kernel's tty write until the test
    // reads again, below: no answer at all). How fast it answers is no part of this: a loaded
    // machine can take seconds, hence the generous timeout.
    for (let i = 0; i < 10; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(JSON.parse(await fetchPath(healthPort, '/live', { timeoutMs: 15_000 }))).toEqual({ live: true });
    }
    const prefix = `[0 ${worker}] `;
    const spam = () => text.split('\r\n').filter((line) => line.startsWith(prefix) && line.endsWith('x'));
    expect(spam().length).toBeLessThan(lines);
    child.stdout.resume();
    await until('every line', () => (spam().length === lines ? true : undefined), 30_000);
    expect(spam().every((line, i) => line[prefix.length] === String(i % 10))).toBe(true);
    process.kill(runnerPid, 'SIGTERM');
    expect(await new Promise((resolve) => child.once('exit', resolve))).toBe(0);
  });
});

describe('event lines', () => {
  it("a worker killed is told by 'exit', and its replacement's 'listening' line says which pid it replaces (no 'recover')", async () => {
    const port = await freePort();
    const runner = startRunner(['start', app, '-i', '2', '--json'], seen, { PORT: String(port) });
    const ready = await runner.next((line) => line.event === 'ready');
    const [victim] = ready.workers as number[];
    const at = runner.lines.length;
    process.kill(victim as number, 'SIGKILL');
    const exit = await runner.next((line) => line.event === 'exit', at);
    expect(exit).toMatchObject({ slot: 0, pid: victim, code: null, signal: 'SIGKILL' });
    const replaced = await runner.next((line) => line.event === 'listening' && line.slot === 0, at);
    expect(replaced).toMatchObject({ slot: 0, port, replaces: victim });
    seen.add(replaced.pid as number);
    // Served by the replacement; then nothing says the victim stalled, or that a stall ended that
    // no stall line began: its death lent slot 0 out, which is no stall. (On a busy machine a live
    // worker silent for 80 ms is a stall, told by a stall line and then a recover for its slot.)
    expect(await fetchPath(port, '/pid')).toMatch(/^\d+$/);
    runner.child.kill('SIGTERM');
    expect(await runner.exited).toEqual({ code: 0, signal: null });
    const stalls = runner.lines.filter((line) => line.event === 'recover' || line.event === 'stall');
    expect(stalls.filter((line) => line.event === 'stall' && line.pid === victim)).toEqual([]);
    const unexplained = stalls.filter(
      (line, i) =>
        line.event === 'recover' &&
        stalls
          .slice(0, i)
          .filter((each) => each.slot === line.slot)
          .at(-1)?.event !== 'stall',
    );
    expect(unexplained).toEqual([]);
  });
});
