// `reuseport doctor`: facts, plans, sysctls, and who holds a port, as text and as JSON.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { startFixture, stopAll } from './helpers/processes';

const cli = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
const run = (...args: string[]) =>
  promisify(execFile)(process.execPath, [cli, ...args], { timeout: 20_000, killSignal: 'SIGKILL' });

afterEach(() => stopAll());

describe('reuseport doctor', () => {
  it('prints the platform, the plans with reasons, and the sysctls', async () => {
    const { stdout } = await run('doctor');
    expect(stdout).toMatch(/^platform: +linux x64, kernel \S+/m);
    expect(stdout).toMatch(/^plan, one process: +reuseport \(backend: addon\)/m);
    expect(stdout).toMatch(/^ +- Linux .* is Linux >= 3\.9/m);
    expect(stdout).toMatch(/^somaxconn: +\d+$/m);
    expect(stdout).toMatch(/^tcp_migrate_req: +\d+$/m);
  });

  it('gives the same report as JSON', async () => {
    const { stdout } = await run('doctor', '--json');
    const report = JSON.parse(stdout);
    expect(report.facts).toMatchObject({ platform: 'linux', addon: true, role: 'none' });
    expect(report.plans.standalone).toMatchObject({ mode: 'reuseport', backend: 'addon' });
    expect(report.plans.worker.reasons.length).toBeGreaterThan(0);
    expect(typeof report.sysctl.somaxconn).toBe('number');
  });

  it('names the process that holds a port, and says it cannot be shared', async () => {
    const holder = startFixture('plain-listener.js');
    const { pid, port } = await holder.next<{ pid: number; port: number }>('ready');
    const { stdout } = await run('doctor', '--port', String(port));
    expect(stdout).toMatch(new RegExp(`127\\.0\\.0\\.1:${port} held by pid ${pid} \\(.*plain-listener\\.js\\); can share with us: no`));
    const report = JSON.parse((await run('doctor', '--port', String(port), '--json')).stdout);
    expect(report.port.holders).toMatchObject([{ address: '127.0.0.1', port, processes: [{ pid }], canShare: 'no' }]);
  });

  it('says a listenReusePort holder can be shared', async () => {
    const holder = startFixture('standalone-server.js', ['0', '127.0.0.1']);
    const ready = await holder.next<{ pid: number; info: { address: { port: number } } }>('ready');
    const report = JSON.parse((await run('doctor', '--port', String(ready.info.address.port), '--json')).stdout);
    expect(report.port.holders).toMatchObject([{ processes: [{ pid: ready.pid }], canShare: 'yes' }]);
  });

  it('rejects a port that is not one', async () => {
    await expect(run('doctor', '--port', '70000')).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/invalid/) });
  });
});
