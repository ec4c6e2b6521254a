// `reuseport start`: the runner over startCluster. Events on stdout, the pid file across an upgrade,
// SIGHUP reload, SIGUSR2 upgrade, SIGTERM exit 0; bad input (unknown flags, a missing script, one
// that exits at once, a pid file in a missing directory) exits non-zero with a message, leaving nothing.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { STICKY_SOURCES, stickySlotOf } from './helpers/bpf';
import { fetchFrom, fetchOnce } from './helpers/http';
import { exitAfterOutput } from './helpers/exit';
import { alive, parentOf, SeenProcesses } from './helpers/pids';
import { fixtures } from './helpers/processes';

const cli = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
const seen = new SeenProcesses();
const dirs: string[] = [];
afterEach(() => {
  seen.killAll();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

interface Event {
  event: string;
  pid?: number;
  from?: number;
  to?: number;
  workers?: number[];
  ports?: number[];
  pids?: number[];
  signal?: string;
  health?: number;
  slot?: number;
  lentTo?: number;
}

function run(args: string[]) {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  seen.add(child.pid);
  const events: Event[] = [];
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  child.stdout.on('data', (chunk: string) => {
    stdout += chunk;
    for (let end = stdout.indexOf('\n'); end >= 0; end = stdout.indexOf('\n')) {
      const line = stdout.slice(0, end);
      stdout = stdout.slice(end + 1);
      const event = JSON.parse(line) as Event;
      for (const pid of [event.pid, event.to, ...(event.workers ?? []), ...(event.pids ?? [])]) if (pid) seen.add(pid);
      events.push(event);
    }
  });
  const exited = exitAfterOutput(child).then(({ code }) => code);
  const next = async (match: (event: Event) => boolean, after = 0, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = events.slice(after).find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no such event within ${timeoutMs} ms: ${JSON.stringify(events)} ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return { child, events, next, exited, stderr: () => stderr };
}

// `reuseport status ...` run to its end (the runner it asks is another process).
function status(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [cli, 'status', ...args], { encoding: 'utf8', timeout: 20_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('reuseport start', () => {
  it('serves; SIGHUP reloads; SIGUSR2 upgrades the runner and the pid file names the successor; SIGTERM exits 0 and removes it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-runner-'));
    dirs.push(dir);
    const pidFile = path.join(dir, 'app.pid');
    const runner = run(['start', '--workers', '2', '--pid-file', pidFile, '--json', path.join(fixtures, 'supervised-worker.js')]);
    const ready = await runner.next((event) => event.event === 'ready');
    expect(ready.pid).toBe(runner.child.pid);
    expect(fs.readFileSync(pidFile, 'utf8')).toBe(`${runner.child.pid}\n`);
    // JSON types: the lists are arrays of numbers.
    expect(ready.workers).toEqual([expect.any(Number), expect.any(Number)]);
    expect(ready.ports).toEqual([expect.any(Number)]);
    const port = ready.ports?.[0] as number;
    expect(ready.workers?.map(String)).toContain(await fetchOnce(port));

    // `reuseport status` finds the runner's health server from the pid file alone.
    const json = status(['--pid-file', pidFile, '--json']);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout);
    expect(report).toMatchObject({ pid: ready.pid, ready: true, plan: { mode: 'reuseport' }, ports: [port], counts: { reloads: 0, upgrades: 0 } });
    expect(report.slots.map((slot: { pid: number }) => slot.pid)).toEqual(ready.workers);
    expect(report.serviceUptimeMs).toBeGreaterThanOrEqual(0);
    expect(report.slots[0].uptimeMs).toBeGreaterThanOrEqual(0);
    // Slot 0's stalls and 'served by' cells as the JSON report just said: on a busy machine the
    // fetch above can meet a worker silent for 80 ms, whose slot was then lent (a stall, not a bug).
    // No connection comes between the two reports, so no stall can begin; a loan may end meanwhile.
    const first = report.slots[0] as { stalls: number; lentTo?: number };
    const servedBy = first.lentTo === undefined ? 'own worker' : `(own worker|pid ${first.lentTo} \\(lent\\))`;
    const table = status(['--pid-file', pidFile]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(
      new RegExp(
        `^reuseport pid ${ready.pid}, up \\d+s \\(the service \\d+s\\): ready\nmode reuseport \\(addon\\), port ${port}; restarts 0, reloads 0, upgrades 0; balance: spread \\d+, 0 shed(, new connections by weight \\d+:\\d+)?\n\nslot +pid +uptime +accepted +open +shed +queued +peak +stalls +served by\n0 +\\d+ +\\d+s +\\d+ +\\d+ +0 +\\d+ +\\d+ +${first.stalls} +${servedBy}\n1 +`,
      ),
    );

    let at = runner.events.length;
    process.kill(ready.pid as number, 'SIGHUP');
    const reload = await runner.next((event) => event.event === 'reload', at);
    expect(reload.pids?.map(String)).toContain(await fetchOnce(port));

    at = runner.events.length;
    process.kill(ready.pid as number, 'SIGUSR2');
    const upgrade = await runner.next((event) => event.event === 'upgrade', at);
    const successor = await runner.next((event) => event.event === 'ready' && event.pid === upgrade.to, at);
    expect(upgrade.from).toBe(ready.pid);
    expect(await runner.exited).toBe(0);
    expect(fs.readFileSync(pidFile, 'utf8')).toBe(`${successor.pid}\n`);
    expect(successor.workers?.map(String)).toContain(await fetchOnce(port));
    // The successor kept the health socket; status through the pid file now names it, and counts
    // the service's reload and upgrade (the hand-over carried the counts and the service's start).
    const after = JSON.parse(status(['--pid-file', pidFile, '--json']).stdout);
    expect(after).toMatchObject({ pid: successor.pid, counts: { reloads: 1, upgrades: 1 }, serviceStartedAt: report.serviceStartedAt });
    expect(after.startedAt).toBeGreaterThan(report.startedAt);
    expect(after.serviceUptimeMs).toBeGreaterThan(after.uptimeMs);
    expect(status(['--pid-file', pidFile]).stdout).toMatch(
      /; restarts 0, reloads 1, upgrades 1; balance: spread \d+, \d+ shed(, new connections by weight \d+:\d+)?\n/,
    );
    expect(JSON.parse(status(['--health-port', String(ready.health), '--json']).stdout)).toMatchObject({ pid: successor.pid });

    at = runner.events.length;
    process.kill(successor.pid as number, 'SIGTERM');
    await runner.next((event) => event.event === 'shutdown' && event.pid === successor.pid, at);
    // It drains its workers, waits for their exits and exits itself: seconds on a loaded machine.
    const goneBy = Date.now() + 30_000;
    for (let i = 0; i < 3_000 && alive(successor.pid as number) && Date.now() < goneBy; i++) await new Promise((resolve) => setTimeout(resolve, 25));
    expect(alive(successor.pid as number)).toBe(false);
    expect(fs.existsSync(pidFile)).toBe(false);
    for (const pid of successor.workers ?? []) expect(alive(pid)).toBe(false);
  });

  it('lines a journal reads: key=value words without --json', async () => {
    const runner = spawn(process.execPath, [cli, 'start', '--workers', '1', path.join(fixtures, 'supervised-worker.js')], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    seen.add(runner.pid);
    const line = await new Promise<string>((resolve) => {
      let text = '';
      runner.stdout.setEncoding('utf8');
      runner.stdout.on('data', (chunk: string) => {
        text += chunk;
        if (text.includes('\n')) resolve(text.split('\n')[0] as string);
      });
    });
    expect(line).toMatch(new RegExp(`^ready pid=${runner.pid} mode=reuseport workers=\\d+ ports=\\d+ health=\\d+$`));
    for (const pid of line.match(/workers=(\d+)/)?.slice(1) ?? []) seen.add(Number(pid));
    runner.kill('SIGTERM');
    expect(await new Promise((resolve) => runner.once('exit', resolve))).toBe(0);
  });

  it.each([
    ['an unknown flag', ['start', '--bogus', 'x.js'], 2, /unknown option '--bogus'/],
    ['no script', ['start'], 2, /missing required argument 'script'/],
    ['a script that does not exist', ['start', path.join(fixtures, 'nope.js')], 2, /the script .*nope\.js does not exist/],
    [
      'a pid file in a missing directory',
      ['start', '--pid-file', '/nonexistent-dir/app.pid', path.join(fixtures, 'supervised-worker.js')],
      2,
      /the pid file's directory \/nonexistent-dir does not exist/,
    ],
    [
      'a bad worker count',
      ['start', '--workers', 'many', path.join(fixtures, 'supervised-worker.js')],
      2,
      /a count is an integer from 1 to 4096, max \(every CPU\) or -N/,
    ],
    [
      '--instances and --workers that disagree',
      ['start', '-i', '2', '-w', '3', path.join(fixtures, 'supervised-worker.js')],
      2,
      /--instances 2 and --workers 3 disagree/,
    ],
    [
      'a script that exits at once',
      ['start', '--workers', '2', path.join(fixtures, 'exits-at-once.js')],
      1,
      /reuseport start: .*exited \(3\) before it listened/,
    ],
  ])('%s: exits %s with a message, leaving no process behind', async (_name, args, code, message) => {
    const runner = run(args as string[]);
    expect(await runner.exited).toBe(code);
    expect(runner.stderr()).toMatch(message);
    // No worker of it is left: none is still its child, and none runs the script it was given
    // (only these tests start exits-at-once.js; the other scripts never got as far as a worker).
    const script = (args as string[]).at(-1) as string;
    const left = fs.readdirSync('/proc').filter((name) => {
      if (!/^\d+$/.test(name)) return false;
      if (parentOf(Number(name)) === runner.child.pid) return true;
      try {
        return script.endsWith('exits-at-once.js') && fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(script);
      } catch {
        return false;
      }
    });
    expect(left).toEqual([]);
  });
});

describe('reuseport start --sticky', () => {
  it('ip: each of 16 client addresses is served by the worker of its slot', async () => {
    const runner = run(['start', '--workers', '2', '--sticky', 'ip', '--json', path.join(fixtures, 'supervised-worker.js')]);
    const ready = await runner.next((event) => event.event === 'ready');
    const [port] = ready.ports as unknown as number[];
    const workers = (ready.workers as unknown as number[]).map(String);
    // Whether `slot` was lent out at some moment since line `mark`: a stall printed since, or one
    // printed before that no recover had ended by then.
    const lentSince = (slot: number, mark: number) => {
      const ofSlot = runner.events.flatMap((event, at) =>
        event.slot === slot && (event.event === 'stall' || event.event === 'recover') ? [{ ...event, at }] : [],
      );
      return ofSlot.filter((event) => event.at < mark).at(-1)?.event === 'stall' || ofSlot.some((event) => event.event === 'stall' && event.at >= mark);
    };
    for (const source of STICKY_SOURCES) {
      const slot = stickySlotOf(source, 2);
      for (let i = 0; i < 2; i++) {
        // Stall protection lends a slot whose worker is silent for 80 ms (a busy machine does that)
        // to the other worker, which then answers for it. Such an answer is asked again once the
        // stall is over, up to 3 tries in all; an answer from the wrong worker without a stall of
        // the slot since the first try (steering that does not hold) still fails.
        const mark = runner.events.length;
        let pid = await fetchFrom(port, source, { timeoutMs: 15_000 });
        for (let tries = 1; tries < 3 && pid !== workers[slot]; tries++) {
          // The stall line may come after the answer (another pipe): wait for it, briefly.
          const stallBy = Date.now() + 10_000;
          for (let n = 0; n < 500 && !lentSince(slot, mark) && Date.now() < stallBy; n++) await new Promise((resolve) => setTimeout(resolve, 20));
          if (!lentSince(slot, mark)) break;
          const stall = runner.events.reduce((last, event, at) => (event.event === 'stall' && event.slot === slot ? at : last), -1);
          await runner.next((event) => event.event === 'recover' && event.slot === slot, stall + 1, 30_000);
          pid = await fetchFrom(port, source, { timeoutMs: 15_000 });
        }
        expect({ source, pid }).toEqual({ source, pid: workers[slot] });
      }
    }
    process.kill(runner.child.pid as number, 'SIGTERM');
    expect(await runner.exited).toBe(0);
  });

  it.each([
    ['not ip', ['--sticky', 'port'], /options\.sticky/],
    ['with --cpu-local', ['--sticky', 'ip', '--cpu-local'], /cannot be used with cpuLocal/],
  ])('%s: exits 1 with the reason, before any worker starts', async (_name, flags, message) => {
    const runner = run(['start', '--workers', '1', ...flags, '--json', path.join(fixtures, 'supervised-worker.js')]);
    expect(await runner.exited).toBe(1);
    expect(runner.stderr()).toMatch(message);
    expect(runner.events).toEqual([]);
  });
});

describe('reuseport status: bad input', () => {
  it.each([
    ['no target', [], /give one of --pid-file, --pid or --health-port/],
    ['two targets', ['--pid', '1', '--health-port', '1'], /give one of --pid-file, --pid or --health-port/],
    ['a pid file that does not exist', ['--pid-file', '/nonexistent-dir/app.pid'], /cannot read the pid file \/nonexistent-dir\/app\.pid/],
    ['a pid that is not running', ['--pid', '4194304'], /no process 4194304 is running/],
    ['a process without a health server (this test)', ['--pid', String(process.pid)], new RegExp(`process ${process.pid} serves no health server`)],
    ['a port where nothing answers', ['--health-port', '1'], /no reuseport health server answers GET \/status on 127\.0\.0\.1:1/],
  ])('%s: exits 2 with a message', (_name, args, message) => {
    const result = status(args as string[]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });

  it('a bad pid is refused by the parser (exit 2, as every usage error)', () => {
    const result = status(['--pid', 'abc']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/a pid is a positive integer/);
  });
});
