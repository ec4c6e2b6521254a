// Reading /proc/net/tcp{,6}: addresses decoded as inet_ntop prints them, and real holders found;
// the addon's sock_diag answer agrees with /proc for real listeners.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import dgram from 'node:dgram';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { loadBinding } from '../lib/binding';
import { findPortHolders, listeningSocketsFromProc, listeningSocketsOn, parseListeningSockets } from '../lib/ports/port-holders';

const header = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
const row = (local: string, state: string, inode: string, uid = '1000', queued = 0) =>
  `   0: ${local} 00000000:0000 ${state} 00000000:${queued.toString(16).toUpperCase().padStart(8, '0')} 00:00000000 00000000  ${uid}        0 ${inode} 1 0000000000000000 100 0 0 10 0`;

describe('parseListeningSockets', () => {
  it.each<[string, string, 4 | 6, string]>([
    ['127.0.0.1', '0100007F:1F40', 4, '127.0.0.1'],
    ['0.0.0.0', '00000000:1F40', 4, '0.0.0.0'],
    ['10.1.2.3', '0302010A:1F40', 4, '10.1.2.3'],
    ['::', '00000000000000000000000000000000:1F40', 6, '::'],
    ['::1', '00000000000000000000000001000000:1F40', 6, '::1'],
    ['fe80::1', '000080FE000000000000000001000000:1F40', 6, 'fe80::1'],
    ['an IPv4-mapped address', '0000000000000000FFFF00000100007F:1F40', 6, '::ffff:127.0.0.1'],
    ['2001:db8::8:800:200c:417a', 'B80D012000000000000808007A410C20:1F40', 6, '2001:db8::8:800:200c:417a'],
  ])('decodes %s', (_name, local, family, expected) => {
    const [socket] = parseListeningSockets([header, row(local, '0A', '77')].join('\n'), family, 8000);
    expect(socket).toEqual({ address: expected, port: 8000, family, uid: 1000, inode: '77', queued: 0 });
  });

  it('keeps only listening sockets on the port', () => {
    const table = [header, row('0100007F:1F40', '0A', '1'), row('0100007F:1F41', '0A', '2'), row('0100007F:1F40', '01', '3')].join('\n');
    expect(parseListeningSockets(table, 4, 8000).map((s) => s.inode)).toEqual(['1']);
  });

  it('reads the accept-queue depth of a listening socket', () => {
    const [socket] = parseListeningSockets([header, row('0100007F:1F40', '0A', '9', '0', 300)].join('\n'), 4, 8000);
    expect(socket?.queued).toBe(300);
  });

  it('ignores blank and short lines', () => {
    expect(parseListeningSockets(`${header}\n\n   0: junk\n`, 4, 8000)).toEqual([]);
  });
});

describe('parseListeningSockets for UDP', () => {
  const udpTable = [
    '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
    '  123: 0100007F:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 4242 2 0000000000000000 0',
    '  124: 0100007F:1F90 0100007F:0035 01 00000000:00000000 00:00000000 00000000  1000        0 4243 2 0000000000000000 0',
    '  125: 0100007F:1F91 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 4244 2 0000000000000000 0',
  ].join('\n');

  it('keeps the unconnected sockets bound to the port (state 07), not connected ones nor other ports', () => {
    expect(parseListeningSockets(udpTable, 4, 8080, 'udp')).toEqual([{ address: '127.0.0.1', port: 8080, family: 4, uid: 1000, inode: '4242', queued: 0 }]);
  });

  it('a TCP reading of the same table finds no listener', () => {
    expect(parseListeningSockets(udpTable, 4, 8080)).toEqual([]);
  });
});

describe('datagramSockets (sock_diag) against /proc/net/udp', () => {
  it('lists the same UDP sockets, IPv4 and IPv6, with their inodes, and this process as their holder', async () => {
    const sockets = [dgram.createSocket('udp4'), dgram.createSocket('udp6')];
    await new Promise<void>((resolve) => sockets[0]!.bind(0, '127.0.0.1', resolve));
    const port = sockets[0]!.address().port;
    try {
      await new Promise<void>((resolve, reject) => {
        sockets[1]!.once('error', reject);
        sockets[1]!.bind(port, '::1', resolve);
      });
      const key = (s: { address: string; inode: string }) => `${s.address} ${s.inode}`;
      const diag = loadBinding().binding!.datagramSockets(port).map(key).sort();
      expect(diag).toHaveLength(2);
      expect(listeningSocketsFromProc(port, '/proc', 'udp').map(key).sort()).toEqual(diag);
      const holders = findPortHolders(port, '/proc', 'udp');
      expect(holders.map((h) => h.processes.map((p) => p.pid))).toEqual([[process.pid], [process.pid]]);
    } finally {
      for (const socket of sockets) socket.close();
    }
  });
});

describe('findPortHolders', () => {
  it('finds this process holding a listener', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    try {
      const holders = findPortHolders(port);
      expect(holders).toHaveLength(1);
      expect(holders[0]).toMatchObject({ address: '127.0.0.1', port, family: 4, uid: process.getuid?.() });
      expect(holders[0]?.processes.map((p) => p.pid)).toEqual([process.pid]);
      expect(holders[0]?.processes[0]?.command).toContain('node');
    } finally {
      server.close();
    }
  });

  it('finds nobody on a free port', () => {
    expect(findPortHolders(1)).toEqual([]);
  });
});

describe('listeningSockets (sock_diag) against /proc', () => {
  const binding = loadBinding().binding;
  if (!binding) throw new Error('the addon did not load');

  it('lists the same sockets, addresses, owners, inodes and queues as /proc, for IPv4, IPv6 and dual-stack', async () => {
    const sockets = [binding.openListener({ address: '127.0.0.1', port: 0, backlog: 8 })];
    const port = (sockets[0] as { port: number }).port;
    sockets.push(binding.openListener({ address: '127.0.0.1', port }));
    const v6 = binding.openListener({ address: '::1', port: 0 });
    const dual = binding.openListener({ address: '::', port: 0 });
    const clients: net.Socket[] = [];
    try {
      // Our own sockets, by inode: another process may listen on the same port number (an IPv4
      // listener beside our ::1 one, say), and its rows are not ours to assert on.
      const ours = new Set([...sockets, v6, dual].map((socket) => String(fs.fstatSync(socket.fd).ino)));
      const own = <T extends { inode: string }>(rows: T[]) => rows.filter((row) => ours.has(row.inode));
      const queued = () => own(binding.listeningSockets(port)).reduce((sum, s) => sum + s.queued, 0);
      // Two connections waiting in an accept queue: both tables count them. A client's connect can
      // complete before the listener has taken the final ACK (loopback's receive runs later on a
      // loaded machine): wait until the queue holds both, up to 5 s.
      for (let i = 0; i < 2; i++) {
        const client = net.connect(port, '127.0.0.1');
        clients.push(client);
        await new Promise((resolve) => client.once('connect', resolve));
      }
      const deadline = Date.now() + 5_000;
      for (let i = 0; i < 500 && Date.now() < deadline && queued() < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(queued()).toBe(2);
      const byInode = (a: { inode: string }, b: { inode: string }) => a.inode.localeCompare(b.inode);
      for (const p of [port, v6.port, dual.port]) {
        // The three readings are compared once sock_diag's reads before and after /proc's agree: the
        // table is then settled (another process's listener on the port may come or go meanwhile).
        let fromKernel = binding.listeningSockets(p).sort(byInode);
        let fromProc = listeningSocketsFromProc(p).sort(byInode);
        let fromEither = listeningSocketsOn(p).sort(byInode);
        const settling = Date.now() + 5_000;
        for (let i = 0; i < 50 && Date.now() < settling; i++) {
          const again = binding.listeningSockets(p).sort(byInode);
          if (JSON.stringify(again) === JSON.stringify(fromKernel)) break;
          fromKernel = again;
          fromProc = listeningSocketsFromProc(p).sort(byInode);
          fromEither = listeningSocketsOn(p).sort(byInode);
        }
        expect(own(fromKernel).length).toBeGreaterThan(0);
        expect(fromProc).toEqual(fromKernel);
        expect(fromEither).toEqual(fromKernel);
      }
      expect(own(binding.listeningSockets(v6.port))).toEqual([expect.objectContaining({ family: 6, address: '::1', uid: process.getuid?.() })]);
      expect(own(binding.listeningSockets(dual.port))).toEqual([expect.objectContaining({ family: 6, address: '::' })]);
      // Port 0 lists every listener, ours among them.
      const all = binding.listeningSockets(0).map((s) => s.port);
      for (const p of [port, v6.port, dual.port]) expect(all).toContain(p);
    } finally {
      for (const client of clients) client.destroy();
      for (const socket of [...sockets, v6, dual]) fs.closeSync(socket.fd);
    }
  });

  it('finds nobody on a port nobody listens on', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    expect(binding.listeningSockets(port)).toEqual([]);
  });

  it.each<[string, unknown, string]>([
    ['a port that is no number', '80', 'ERR_INVALID_ARG_TYPE'],
    ['a negative port', -1, 'ERR_OUT_OF_RANGE'],
    ['a port past 65535', 65536, 'ERR_OUT_OF_RANGE'],
    ['a fractional port', 1.5, 'ERR_OUT_OF_RANGE'],
  ])('refuses %s', (_name, port, code) => {
    expect(() => binding.listeningSockets(port as number)).toThrow(expect.objectContaining({ code }));
  });
});

describe('scripts/listener-scan-cost.mjs', () => {
  it("times both ways of finding a port's listeners as TIME_WAIT rows pile up, and they agree", async () => {
    const script = path.join(__dirname, '..', 'scripts', 'listener-scan-cost.mjs');
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [script, '--connections', '200'], { timeout: 60_000 }, (error, out, err) =>
        error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out),
      );
    });
    const steps = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { connectionsMade: number; procMs: number; sockDiagMs: number; sameAnswer: boolean });
    expect(steps.map((s) => s.connectionsMade)).toEqual([0, 50, 100, 200]);
    for (const step of steps) {
      expect(step.sameAnswer).toBe(true);
      expect(step.procMs).toBeGreaterThan(0);
      expect(step.sockDiagMs).toBeGreaterThan(0);
    }
  });
});
