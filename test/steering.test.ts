// The steering program: run in a small classic-BPF interpreter on IPv4 and IPv6 SYNs, and for real
// on a kernel SO_REUSEPORT group.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadBinding } from '../lib/binding';
import { type Instruction, MAX_INSTRUCTIONS, cpuLocalProgram, flatten, steeringProgram } from '../lib/supervisor/slots/steering';
import { run } from './helpers/bpf';

function syn(family: 4 | 6, sourcePort: number, sourceLow: number): Buffer {
  const header = family === 4 ? 20 : 40;
  const packet = Buffer.alloc(header + 20);
  packet.writeUInt8(family === 4 ? 0x45 : 0x60, 0);
  packet.writeUInt16BE(sourceLow, family === 4 ? 14 : 38);
  packet.writeUInt16BE(sourcePort, header);
  return packet;
}

describe('steeringProgram', () => {
  it.each<[string, number[], 4 | 6]>([
    ['all of three sockets, IPv4', [0, 1, 2], 4],
    ['two of three (one stalled), IPv4', [0, 2], 4],
    ['one socket, IPv6', [1], 6],
    ['four of five, IPv6', [0, 1, 3, 4], 6],
  ])('%s: every connection goes to an allowed socket, evenly', (_name, allowed, family) => {
    const program = steeringProgram(allowed);
    const counts = new Map<number, number>();
    // Ephemeral ports step by 2 on Linux: the hash must not map them all to a few sockets.
    for (let port = 32768; port < 32768 + 3000 * 2; port += 2) {
      const index = run(program, syn(family, port, 0x0001));
      counts.set(index, (counts.get(index) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual([...allowed].sort());
    const share = 3000 / allowed.length;
    for (const count of counts.values()) expect(Math.abs(count - share)).toBeLessThan(share * 0.2);
  });

  it('sends a retransmitted SYN where the first one went', () => {
    const program = steeringProgram([0, 1, 2]);
    expect(run(program, syn(4, 40000, 7))).toBe(run(program, syn(4, 40000, 7)));
  });

  it.each([[[]], [[-1]], [[1.5]], [[70000]]])('refuses %j', (allowed) => {
    expect(() => steeringProgram(allowed)).toThrow(RangeError);
  });
});

describe('cpuLocalProgram', () => {
  // Which sockets the connections of 3000 ephemeral ports go to, from a SYN handled on `cpu`.
  function spread(program: Instruction[], cpu: number, family: 4 | 6 = 4): Map<number, number> {
    const counts = new Map<number, number>();
    for (let port = 32768; port < 32768 + 3000 * 2; port += 2) {
      const index = run(program, syn(family, port, 0x0001), cpu);
      counts.set(index, (counts.get(index) ?? 0) + 1);
    }
    return counts;
  }

  it.each<[string, [number, number[]][], number[], [cpu: number, sockets: number[]][]]>([
    [
      'one slot per CPU',
      [
        [0, [0]],
        [1, [1]],
      ],
      [0, 1],
      [
        [0, [0]],
        [1, [1]],
      ],
    ],
    [
      'CPUs that are not 0..n-1 (a restricted cpuset)',
      [
        [3, [0]],
        [7, [1]],
        [12, [2]],
      ],
      [0, 1, 2],
      [
        [3, [0]],
        [7, [1]],
        [12, [2]],
        [5, [0, 1, 2]],
      ],
    ],
    [
      "more slots than CPUs: hashed among the CPU's slots",
      [
        [0, [0, 2]],
        [1, [1, 3]],
      ],
      [0, 1, 2, 3],
      [
        [0, [0, 2]],
        [1, [1, 3]],
      ],
    ],
    [
      'a CPU with no slot falls back to the hash over all',
      [[0, [0]]],
      [0, 1],
      [
        [0, [0]],
        [1, [0, 1]],
        [9, [0, 1]],
      ],
    ],
  ])('%s', (_name, table, fallback, expected) => {
    const program = cpuLocalProgram(new Map(table), fallback);
    for (const [cpu, sockets] of expected) {
      for (const family of [4, 6] as const) {
        const counts = spread(program, cpu, family);
        expect([...counts.keys()].sort()).toEqual([...sockets].sort());
        const share = 3000 / sockets.length;
        for (const count of counts.values()) expect(Math.abs(count - share)).toBeLessThan(share * 0.2);
      }
    }
  });

  it('fits the kernel limit for 1024 CPUs, and says so past it', () => {
    const table = new Map(Array.from({ length: 1024 }, (_, cpu) => [cpu, [cpu % 64]] as [number, number[]]));
    expect(cpuLocalProgram(table, [0]).length).toBeLessThanOrEqual(MAX_INSTRUCTIONS);
    const wide = new Map(Array.from({ length: 1024 }, (_, cpu) => [cpu, [cpu, cpu + 1024]] as [number, number[]]));
    expect(() => cpuLocalProgram(wide, [0])).toThrow(/more than the kernel's 4096/);
  });

  it.each<[string, [number, number[]][], number[]]>([
    ['no fallback', [[0, [0]]], []],
    ['a CPU with no socket', [[0, []]], [0]],
    ['a negative CPU', [[-1, [0]]], [0]],
    ['a CPU past 1023', [[1024, [0]]], [0]],
    ['a bad index', [[0, [1.5]]], [0]],
  ])('refuses %s', (_name, table, fallback) => {
    expect(() => cpuLocalProgram(new Map(table), fallback)).toThrow(RangeError);
  });
});

describe('on a real SO_REUSEPORT group', () => {
  const loaded = loadBinding();
  if (!loaded.binding) throw loaded.error;
  const binding = loaded.binding;

  function connectMany(port: number, count: number): Promise<void> {
    let chain = Promise.resolve();
    for (let i = 0; i < count; i++) {
      chain = chain.then(
        () =>
          new Promise<void>((resolve) => {
            const socket = net.connect(port, '127.0.0.1');
            socket.on('close', () => resolve());
            socket.on('error', () => resolve());
            socket.resume();
          }),
      );
    }
    return chain;
  }

  it('keeps new connections off excluded sockets, and off a socket that joins later', async () => {
    const counts = [0, 0, 0, 0];
    const servers: net.Server[] = [];
    let port = 0;
    const listen = (index: number) => {
      const socket = binding.openListener({ address: '127.0.0.1', port, listen: false });
      port = socket.port;
      binding.listenSocket(socket.fd, 64);
      const server = net.createServer((c) => {
        counts[index] = (counts[index] ?? 0) + 1;
        c.end();
      });
      server.listen({ fd: socket.fd });
      servers.push(server);
      return socket;
    };
    try {
      const [first] = [listen(0), listen(1), listen(2)];
      binding.attachReusePortProgram(first.fd, flatten(steeringProgram([0, 2])));
      listen(3); // joins after the program: index 3, never chosen
      await connectMany(port, 300);
      expect(counts[1]).toBe(0);
      expect(counts[3]).toBe(0);
      expect((counts[0] ?? 0) + (counts[2] ?? 0)).toBe(300);
      expect(Math.min(counts[0] ?? 0, counts[2] ?? 0)).toBeGreaterThan(100);
    } finally {
      for (const server of servers) server.close();
    }
  });

  it.each<[string, () => number]>([['a file that is no socket', () => fs.openSync('/dev/null', 'r')]])('refuses %s', (_name, open) => {
    const fd = open();
    try {
      expect(() => binding.attachReusePortProgram(fd, flatten(steeringProgram([0])))).toThrow(
        expect.objectContaining({ code: 'ENOTSOCK', syscall: 'setsockopt', fd }),
      );
      expect(() => binding.listenSocket(fd, 1)).toThrow(expect.objectContaining({ code: 'ENOTSOCK', syscall: 'listen', fd }));
    } finally {
      fs.closeSync(fd);
    }
  });

  it('refuses a TCP socket without SO_REUSEPORT', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
    try {
      expect(() => binding.attachReusePortProgram(fd, flatten(steeringProgram([0])))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    } finally {
      server.close();
    }
  });
});

describe('acceptQueue', () => {
  const loaded = loadBinding();
  if (!loaded.binding) throw loaded.error;
  const binding = loaded.binding;

  it('counts connections waiting to be accepted, and gives the limit', async () => {
    const socket = binding.openListener({ address: '127.0.0.1', port: 0, backlog: 17 });
    const clients: net.Socket[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const client = net.connect(socket.port, '127.0.0.1');
        clients.push(client);
        await new Promise((resolve) => client.once('connect', resolve));
      }
      expect(binding.acceptQueue(socket.fd)).toEqual({ queued: 3, limit: 17 });
    } finally {
      for (const client of clients) client.destroy();
      fs.closeSync(socket.fd);
    }
  });

  it('refuses a socket that is not listening', () => {
    const socket = binding.openListener({ address: '127.0.0.1', port: 0, listen: false });
    try {
      expect(() => binding.acceptQueue(socket.fd)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'getsockopt' }));
    } finally {
      fs.closeSync(socket.fd);
    }
  });
});

describe('scripts/steering-swaps.mjs', () => {
  it('replaces the program under load and reports every connection of each run', async () => {
    const script = path.join(__dirname, '..', 'scripts', 'steering-swaps.mjs');
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [script, '--rate', '300', '--period-ms', '20', '--duration-ms', '600'], { timeout: 60_000 }, (error, out, err) =>
        error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out),
      );
    });
    const runs = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { swap: string; swaps: number; sent: number; failed: number; perSocket: number[] });
    expect(runs.map((r) => r.swap)).toEqual(['never', 'rotate', 'same']);
    for (const r of runs) {
      expect(r.sent).toBe(180);
      expect(r.failed).toBe(0);
      expect(r.perSocket.reduce((a, b) => a + b, 0)).toBe(180);
    }
    expect(runs[0]?.swaps).toBe(0);
    expect(runs[1]?.swaps).toBeGreaterThan(10);
    expect(runs[2]?.swaps).toBeGreaterThan(10);
  });
});
