// PID 1 duties: the runner as PID 1 of a new pid namespace (a container without an init), or with
// --subreaper, reaps the orphans of an app that leaves one every 20 ms, and never a child of its own
// (its workers still exit and are replaced as usual; SIGTERM still stops it with 0). The decision as
// a table, and the reaper over a fake addon.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OrphanReaper, orphanVerdict, REAP_BATCH, reaperRole } from '../lib/supervisor/deploy/reaper';
import { SeenProcesses } from './helpers/pids';
import { fixtures } from './helpers/processes';
import { cli, freePort, startRunner } from './helpers/runner';

const seen = new SeenProcesses();
afterEach(() => seen.killAll());

// Every process's [pid, state, ppid, name] from /proc/<pid>/stat.
function processes(): { pid: number; state: string; ppid: number; name: string }[] {
  const found = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const close = stat.lastIndexOf(')');
    const [state = '', ppid = '0'] = stat.slice(close + 2).split(' ');
    found.push({ pid: Number(entry), state, ppid: Number(ppid), name: stat.slice(stat.indexOf('(') + 1, close) });
  }
  return found;
}

// For `ms`: every 100 ms, the zombies whose parent is `parent` and whether any sleep was its child.
// Watches `parent`'s children every 100 ms for `ms`: the longest any one stayed a zombie (from the
// first check that saw it so to the last), which says the parent keeps up. (The most zombies at one
// check says little: it counts orphans that exited a moment before, which a busy machine, the
// parent's loop or its SIGCHLD a little late, leaves many of at one instant.)
async function watchChildren(parent: number, ms: number): Promise<{ longestZombieMs: number; orphansSeen: number; checks: number }> {
  let longestZombieMs = 0;
  const zombieSince = new Map<number, number>();
  const orphans = new Set<number>();
  let checks = 0;
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const now = Date.now();
    const children = processes().filter((each) => each.ppid === parent);
    const zombies = children.filter((each) => each.state === 'Z');
    // A pid that is no zombie at this check is forgotten (reaped, or a new process with a reused pid).
    for (const pid of [...zombieSince.keys()]) if (!zombies.some((each) => each.pid === pid)) zombieSince.delete(pid);
    for (const { pid } of zombies) {
      const since = zombieSince.get(pid) ?? now;
      zombieSince.set(pid, since);
      longestZombieMs = Math.max(longestZombieMs, now - since);
    }
    for (const each of children) if (each.name === 'sleep') orphans.add(each.pid);
    checks += 1;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { longestZombieMs, orphansSeen: orphans.size, checks };
}

const canUnshare = process.platform === 'linux' && spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status === 0;

describe('orphans', () => {
  it.each([
    [1, false, 'pid 1'],
    [1, true, 'pid 1'],
    [4242, true, 'subreaper'],
    [4242, false, undefined],
  ])('pid %i, subreaper %s: %s', (pid, subreaper, role) => {
    expect(reaperRole(pid, subreaper)).toBe(role);
  });

  it.each([
    [0, [], 'none'],
    [12, [], 'reap'],
    [12, [12, 13], 'ours'],
    [14, [12, 13], 'reap'],
  ])('a peek that found %i, own %j: %s', (pid, own, verdict) => {
    expect(orphanVerdict(pid, new Set(own))).toBe(verdict);
  });

  it('reaps foreign exited children in one pass and stops at one of its own, which it never waits for', () => {
    const exited = [21, 22, 7, 23];
    const reaped: number[] = [];
    const fake = {
      peekExitedChild: () => exited[0] ?? 0,
      reapChild: (pid: number) => {
        reaped.push(pid);
        exited.splice(exited.indexOf(pid), 1);
        return pid;
      },
    };
    const reaper = new OrphanReaper(fake, () => new Set([7]));
    expect(reaper.reap()).toBe(2);
    expect(reaped).toEqual([21, 22]);
    // Once libuv has waited for its own (7 is gone), the next pass goes on.
    exited.splice(0, 1);
    expect(reaper.reap()).toBe(1);
    expect(reaped).toEqual([21, 22, 23]);
    expect(reaper.reaped).toBe(3);
  });

  it(`reaps at most ${REAP_BATCH} in one pass, and none when the peek fails`, () => {
    let next = 100;
    const reapChild = (pid: number) => {
      next += 1;
      return pid;
    };
    const reaper = new OrphanReaper({ peekExitedChild: () => next, reapChild }, () => new Set());
    expect(reaper.reap()).toBe(REAP_BATCH);
    const failing = new OrphanReaper(
      {
        peekExitedChild: () => {
          throw new Error('waitid ECHILD');
        },
        reapChild: () => 0,
      },
      () => new Set(),
    );
    expect(failing.reap()).toBe(0);
  });

  it.skipIf(!canUnshare)(
    'as PID 1 of a new pid namespace: no orphan stays a zombie for 2 s over 4 s of orphans, an upgrade is refused, and SIGTERM stops it with 0',
    async () => {
      const port = await freePort();
      const child = spawn(
        'unshare',
        ['--pid', '--fork', '--mount-proc', process.execPath, cli, 'start', '-i', '2', '--json', path.join(fixtures, 'orphan-app.js')],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, PORT: String(port) },
        },
      );
      seen.add(child.pid);
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      // The runner, PID 1 inside: unshare's child, by its pid out here.
      const deadline = Date.now() + 30_000;
      let runner: number | undefined;
      while (!runner || !stdout.includes('"event":"ready"')) {
        if (Date.now() > deadline) throw new Error(`no ready runner within 30 s: ${stdout} ${stderr}`);
        runner ??= processes().find((each) => each.ppid === child.pid)?.pid;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      seen.add(runner);
      const watched = await watchChildren(runner, 4_000);
      // The orphans were the runner's to reap (reparented to it), and it kept up: none stayed a zombie
      // for 2 s (it reaps on SIGCHLD and every 150 ms; 100 orphans a second exit here). How many are
      // zombies at one check is no measure: a runner descheduled for half a second on a busy machine
      // sees 50, and catches up. Without a reaper they stay zombies for the whole 4 s.
      expect(watched.orphansSeen).toBeGreaterThan(0);
      expect(watched.longestZombieMs).toBeLessThan(2_000);
      // An upgrade would end the namespace with this PID 1: refused, and it serves on.
      process.kill(runner, 'SIGUSR2');
      const refusedBy = Date.now() + 10_000;
      while (!/"event":"upgrade-failed"[^\n]*PID 1/.test(stdout) && Date.now() < refusedBy) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(stdout).toMatch(/"event":"upgrade-failed"[^\n]*PID 1/);
      expect(stdout).not.toContain('"event":"upgrade",');
      process.kill(runner, 'SIGTERM');
      expect(await exited).toBe(0);
      expect(stderr).not.toContain('REUSEPORT_NO_REAPER');
    },
    60_000,
  );

  it('--subreaper: the orphans come to the runner, which reaps them, and its own workers are still replaced when they die', async () => {
    const port = await freePort();
    const runner = startRunner(['start', '-i', '2', '--subreaper', '--json', path.join(fixtures, 'orphan-app.js')], seen, { PORT: String(port) });
    const ready = await runner.next((line) => line.event === 'ready', 0, 30_000);
    const watched = await watchChildren(runner.child.pid as number, 3_000);
    // As PID 1 above: none stayed a zombie for 2 s.
    expect(watched.orphansSeen).toBeGreaterThan(0);
    expect(watched.longestZombieMs).toBeLessThan(2_000);
    // A worker of its own that dies: libuv still gets its exit (the runner says so and replaces it).
    const [victim] = ready.workers as number[];
    const mark = runner.lines.length;
    process.kill(victim as number, 'SIGKILL');
    await runner.next((line) => line.event === 'exit' && line.pid === victim, mark, 20_000);
    await runner.next((line) => line.event === 'listening' && line.replaces === victim, mark, 20_000);
    runner.child.kill('SIGTERM');
    expect((await runner.exited).code).toBe(0);
  }, 60_000);
});
