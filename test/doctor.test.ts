// `reuseport doctor`: facts, plans, sysctls, and who holds a port, as text and as JSON.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { noAddonOnWindows } from '../lib/binding';
import { collectDoctorReport, formatDoctorReport } from '../lib/cli/doctor';
import type { Facts } from '../lib/plan/facts';
import { startFixture, stopAll } from './helpers/processes';

const cli = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
const run = (...args: string[]) => promisify(execFile)(process.execPath, [cli, ...args], { timeout: 20_000, killSignal: 'SIGKILL' });

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

  it('with --udp lists the UDP sockets bound to a port: a bindReusePort one can be shared, a plain one is not tested', async () => {
    const holder = startFixture('udp-server.js', ['standalone', '0']);
    const ready = await holder.next<{ pid: number; info: { address: { port: number } } }>('ready');
    const port = ready.info.address.port;
    const plain = startFixture('udp-plain.js');
    const other = await plain.next<{ pid: number; port: number }>('ready');
    const report = JSON.parse((await run('doctor', '--udp', '--port', String(port), '--json')).stdout);
    expect(report.port).toMatchObject({ port, protocol: 'udp', holders: [{ address: '127.0.0.1', port, processes: [{ pid: ready.pid }], canShare: 'yes' }] });
    expect(report.udpPlans.standalone).toMatchObject({ mode: 'reuseport', backend: 'addon' });
    const { stdout } = await run('doctor', '--udp', '--port', String(other.port));
    expect(stdout).toMatch(new RegExp(`^port ${other.port} \\(UDP\\):$`, 'm'));
    expect(stdout).toMatch(new RegExp(`127\\.0\\.0\\.1:${other.port} held by pid ${other.pid} \\(.*udp-plain\\.js\\); can share with us: unknown`));
    expect(stdout).toMatch(/^UDP plan, one process: +reuseport \(backend: addon\)/m);
    // Without --udp the same port has no TCP listener.
    expect((await run('doctor', '--port', String(other.port))).stdout).toContain('nothing listens on it');
  });

  it('rejects a port that is not one', async () => {
    // A usage error: exit 2, as every one.
    await expect(run('doctor', '--port', '70000')).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/invalid/) });
  });
});

describe('collectDoctorReport off Linux (injected facts)', () => {
  const windowsFacts: Facts = {
    platform: 'win32',
    release: '10.0.22631',
    nodeReusePort: false,
    nodeUdpReusePort: false,
    addon: false,
    addonError: noAddonOnWindows,
    role: 'none',
    override: undefined,
  };

  it.each<[name: string, facts: Facts, reads: string[]]>([
    ['Windows reads no Linux sysctl, even where a /proc can be seen (Wine through z:)', windowsFacts, []],
    ['macOS reads none either', { ...windowsFacts, platform: 'darwin', release: '23.1.0', addonError: 'no addon' }, []],
    [
      'Linux reads both',
      { ...windowsFacts, platform: 'linux', release: '6.18.0', addon: true, addonError: undefined },
      ['net.core.somaxconn', 'net.ipv4.tcp_migrate_req'],
    ],
  ])('%s', (_name, facts, reads) => {
    const asked: string[] = [];
    const report = collectDoctorReport({ port: 1 }, { facts: () => facts, readSysctl: (name) => (asked.push(name), 0) });
    expect(asked).toEqual(reads);
    if (reads.length === 0) {
      expect(report.sysctl).toEqual({ somaxconn: undefined, tcpMigrateReq: undefined });
      expect(report.port).toMatchObject({ holders: [], unread: expect.stringContaining("Linux's /proc") });
    }
  });

  it('on Windows says plainly there is no SO_REUSEPORT: no warning, no toolchain advice, no "yes" for reusePort', () => {
    const text = formatDoctorReport(collectDoctorReport({}, { facts: () => windowsFacts, readSysctl: () => 0 }));
    expect(text).toMatch(/^addon: +none: Windows has no SO_REUSEPORT/m);
    expect(text).toMatch(/honours reusePort: no/);
    expect(text).not.toMatch(/warning:|C\+\+|rebuild|unknown error/);
  });
});
