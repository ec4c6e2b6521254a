// Many real processes on one port: standalone, cluster workers, and a privilege error in a child.
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { countResponses } from './helpers/http';
import { fixtures, spawnFixture, startFixture, stopAll } from './helpers/processes';
import { freePort } from './helpers/ports';
import { listeningInodes, socketInodesOf } from './helpers/proc-net';

interface Ready {
  pid: number;
  info: { mode: string; backend: string; address: { port: number } };
}

afterEach(() => stopAll());

describe('standalone processes', () => {
  it('three processes share one port and each serves some of 300 new connections', async () => {
    const first = startFixture('standalone-server.js', ['0', '127.0.0.1']);
    const ready = [await first.next<Ready>('ready')];
    const port = ready[0]!.info.address.port;
    const others = [1, 2].map(() => startFixture('standalone-server.js', [String(port), '127.0.0.1']));
    for (const other of others) ready.push(await other.next<Ready>('ready'));

    expect(ready.map((r) => r.info.mode)).toEqual(['reuseport', 'reuseport', 'reuseport']);
    expect(ready.map((r) => r.info.address.port)).toEqual([port, port, port]);

    const counts = await countResponses(port, 300);
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(300);
    expect([...counts.keys()].sort()).toEqual(ready.map((r) => String(r.pid)).sort());
  });
});

describe('cluster workers', () => {
  it("each worker accepts on its own socket; the primary holds none, yet gets node:cluster's 'listening' for each", async () => {
    // A port from below the ephemeral range: a port-0 probe's pick could be taken by another test's
    // process before the workers listen (EADDRINUSE, and no 'ready').
    const primary = startFixture('cluster-server.js', ['3', String(await freePort())]);
    const ready = await primary.next<{ pid: number; port: number; workers: Ready[] }>('ready');
    const workerPids = ready.workers.map((w) => w.pid);
    expect(ready.workers.map((w) => w.info.mode)).toEqual(['reuseport', 'reuseport', 'reuseport']);

    // Three listening sockets on the port, one in each worker, none in the primary. Only 127.0.0.1's
    // rows: another process may listen on the same port number over IPv6.
    const inodes = listeningInodes(ready.port, true);
    expect(inodes).toHaveLength(3);
    const owners = inodes.map((inode) => workerPids.filter((pid) => socketInodesOf(pid).has(inode)));
    expect(owners.map((o) => o.length)).toEqual([1, 1, 1]);
    expect(new Set(owners.flat())).toEqual(new Set(workerPids));
    const primarySockets = socketInodesOf(ready.pid);
    expect(inodes.filter((inode) => primarySockets.has(inode))).toEqual([]);

    const counts = await countResponses(ready.port, 300);
    expect([...counts.values()].reduce((a, b) => a + b, 0)).toBe(300);
    expect([...counts.keys()].sort()).toEqual(workerPids.map(String).sort());

    primary.child.send({ type: 'report' });
    const report = await primary.next<{ listeningEvents: number }>('report');
    // The workers tell the primary they listen (as node:cluster's own listen does), without its socket.
    expect(report.listeningEvents).toBe(3);

    for (const pid of workerPids) process.kill(pid, 'SIGKILL');
  });
});

describe('privileges', () => {
  it('a port below 1024 as a non-root user rejects with EACCES and every field', async () => {
    const port = 81;
    const fixture = path.join(fixtures, 'unprivileged-listen.js');
    // As root, drop to nobody inside a fresh network namespace whose unprivileged-port floor is
    // the kernel default, so the outcome does not depend on this host's sysctl.
    const child =
      process.getuid?.() === 0
        ? spawnFixture('unshare', [
            '--net',
            '--',
            'sh',
            '-c',
            'ip link set lo up && sysctl -qw net.ipv4.ip_unprivileged_port_start=1024 && exec "$0" "$@"',
            process.execPath,
            fixture,
            String(port),
          ])
        : startFixture('unprivileged-listen.js', [String(port)]);
    const result = await child.next<{ uid: number; error?: Record<string, unknown> }>('result');
    expect(result.uid).not.toBe(0);
    expect(result.error).toMatchObject({
      code: 'EACCES',
      errno: -os.constants.errno.EACCES,
      syscall: 'bind',
      address: '127.0.0.1',
      port,
    });
    expect(String(result.error?.message)).toMatch(/CAP_NET_BIND_SERVICE/);
  });
});
