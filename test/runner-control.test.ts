// `reuseport reload | upgrade | stop --pid-file F` against real runners: each sends its signal,
// follows the outcome on the runner's health server and exits 0 only when it happened (reload: new
// pids; upgrade: the successor serves and the old runner exited; stop: the runner's own exit status,
// 1 when its drain cut a connection). A reload or upgrade whose new workers cannot listen (their port
// file says 99999) exits 1 with the reason.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fetchOnce } from './helpers/http';
import { SeenProcesses, alive } from './helpers/pids';
import { fixtures } from './helpers/processes';
import { freePort, runCliAsync, startRunner } from './helpers/runner';

const seen = new SeenProcesses();
const dirs: string[] = [];
afterEach(() => {
  seen.killAll();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

const worker = path.join(fixtures, 'supervised-worker.js');

async function service(extra: string[] = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-control-'));
  dirs.push(dir);
  const pidFile = path.join(dir, 'app.pid');
  const portFile = path.join(dir, 'port');
  const port = await freePort();
  fs.writeFileSync(portFile, String(port));
  const runner = startRunner(['start', worker, '-i', '2', '--pid-file', pidFile, '--json', ...extra], seen, { FIXTURE_PORT_FILE: portFile });
  const ready = await runner.next((line) => line.event === 'ready');
  return { runner, ready, pidFile, portFile, port };
}

const pidsOf = (text: string) => (/pids=([\d,]+)/.exec(text)?.[1] ?? '').split(',').map(Number);

describe('reuseport reload', () => {
  it('exits 0 once every slot runs a new worker, and says which', async () => {
    const { ready, pidFile, port } = await service();
    const result = await runCliAsync(['reload', '--pid-file', pidFile]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^reload pid=${ready.pid} pids=\\d+,\\d+ cut=0 was=${(ready.workers as number[]).join(',')}\\n$`));
    const pids = pidsOf(result.stdout);
    for (const pid of pids) seen.add(pid);
    expect(pids.some((pid) => (ready.workers as number[]).includes(pid))).toBe(false);
    expect(pids.map(String)).toContain(await fetchOnce(port));
  });

  it('exits 1 with the reason when the new workers cannot listen', async () => {
    const { ready, pidFile, portFile } = await service();
    fs.writeFileSync(portFile, '99999');
    const result = await runCliAsync(['reload', '--pid-file', pidFile, '--json']);
    expect(result.code).toBe(1);
    const outcome = JSON.parse(result.stdout) as { event: string; pid: number; error: string };
    expect(outcome).toMatchObject({ event: 'reload-failed', pid: ready.pid });
    expect(outcome.error).toMatch(/99999|before it listened/);
    expect(alive(ready.pid as number)).toBe(true);
  });
});

describe('reuseport upgrade', () => {
  it('exits 0 once the successor serves and the old runner has exited; the pid file names the successor', async () => {
    const { runner, ready, pidFile, port } = await service();
    const result = await runCliAsync(['upgrade', '--pid-file', pidFile]);
    expect(result.code).toBe(0);
    const to = Number(/to=(\d+)/.exec(result.stdout)?.[1]);
    seen.add(to);
    expect(result.stdout).toMatch(new RegExp(`^upgrade from=${ready.pid} to=${to} workers=\\d+,\\d+\\n$`));
    expect(await runner.exited).toEqual({ code: 0, signal: null });
    expect(fs.readFileSync(pidFile, 'utf8')).toBe(`${to}\n`);
    expect(await fetchOnce(port)).toMatch(/^\d+$/);
  });

  it('exits 1 with the reason when the successor cannot serve; the old runner keeps serving', async () => {
    const { ready, pidFile, portFile, port } = await service();
    fs.writeFileSync(portFile, '99999');
    const result = await runCliAsync(['upgrade', '--pid-file', pidFile]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      new RegExp(`^upgrade-failed pid=${ready.pid} error=".*the upgrade failed, this supervisor keeps serving: .*" code=ERR_REUSEPORT_UPGRADE_FAILED\\n$`),
    );
    expect(alive(ready.pid as number)).toBe(true);
    expect((ready.workers as number[]).map(String)).toContain(await fetchOnce(port));
  });
});

describe('reuseport stop', () => {
  it('exits 0 once the runner has exited 0 (nothing cut); the pid file is gone', async () => {
    const { runner, ready, pidFile } = await service();
    const result = await runCliAsync(['stop', '--pid-file', pidFile]);
    expect(result).toMatchObject({ code: 0, stdout: `stopped pid=${ready.pid} exitCode=0 cut=0 killed=-\n` });
    expect(await runner.exited).toEqual({ code: 0, signal: null });
    expect(fs.existsSync(pidFile)).toBe(false);
  });

  it("exits with the runner's own status, 1, when its drain cut a connection, and says so", async () => {
    const { runner, ready, pidFile, port } = await service(['--drain-timeout', '300']);
    // A request that outlives the drain timeout.
    const request = http.get({ host: '127.0.0.1', port, path: '/slow?ms=20000', agent: false });
    request.on('error', () => undefined);
    await new Promise((resolve) => request.once('socket', (socket) => socket.once('connect', resolve)));
    // Accepted by a worker before the stop: a connection still in the accept queue at the stop would
    // be refused, not cut. Its slot's count says so (at once from the worker's progress cell, else
    // on its next beat); a fixed sleep was too short on a loaded machine.
    const acceptedBy = Date.now() + 20_000;
    for (let i = 0; i < 200 && Date.now() < acceptedBy; i++) {
      const status = await runCliAsync(['status', '--pid-file', pidFile, '--json'], 10_000);
      const slots = status.code === 0 ? (JSON.parse(status.stdout).slots as { accepted: number; connections?: number }[]) : [];
      if (slots.some((slot) => slot.accepted > 0 || (slot.connections ?? 0) > 0)) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const result = await runCliAsync(['stop', '--pid-file', pidFile, '--json']);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ event: 'stopped', pid: ready.pid, exitCode: 1, cut: 1, killed: [] });
    expect(await runner.exited).toEqual({ code: 1, signal: null });
    request.destroy();
  });
});
