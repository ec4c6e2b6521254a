// Reading /proc/net/tcp{,6}: addresses decoded as inet_ntop prints them, and real holders found.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { findPortHolders, parseListeningSockets } from '../lib/port-holders';

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
