// CPU-local mode's parts: the slot -> CPU tables, the addon's affinity calls (contract and errors),
// pinning every thread of a process, and the CPU-local program on a real SO_REUSEPORT group, where
// a connection made from a thread on CPU c (loopback handles its SYN on that CPU) lands on c's socket.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pinProcess, slotCpus, slotsByCpu, threadsOf } from '../lib/supervisor/slots/affinity';
import { loadBinding } from '../lib/binding';
import { cpuLocalProgram, flatten } from '../lib/supervisor/slots/steering';

const loaded = loadBinding();
if (!loaded.binding) throw loaded.error;
const binding = loaded.binding;
const own = binding.getCpuAffinity(0);
afterAll(() => binding.setCpuAffinity(0, own));

describe('slotCpus and slotsByCpu', () => {
  it.each<[string, number, number[], number[]]>([
    ['one slot per CPU', 2, [0, 1], [0, 1]],
    ['a restricted cpuset', 3, [2, 5, 9], [2, 5, 9]],
    ['more slots than CPUs wrap around', 5, [0, 1], [0, 1, 0, 1, 0]],
    ['fewer slots than CPUs', 1, [0, 1, 2, 3], [0]],
  ])('%s', (_name, slots, allowed, expected) => {
    expect(slotCpus(slots, allowed)).toEqual(expected);
  });

  it('refuses an empty CPU list', () => {
    expect(() => slotCpus(2, [])).toThrow(RangeError);
  });

  it.each<[string, number[], number[], [number, number[]][]]>([
    [
      'every slot present',
      [0, 1, 0, 1],
      [0, 1, 2, 3],
      [
        [0, [0, 2]],
        [1, [1, 3]],
      ],
    ],
    [
      'a closed slot is left out',
      [0, 1, 0, 1],
      [0, 1, 3],
      [
        [0, [0]],
        [1, [1, 3]],
      ],
    ],
    [
      'an unknown slot is left out',
      [4, 6],
      [0, 1, 2],
      [
        [4, [0]],
        [6, [1]],
      ],
    ],
  ])('%s', (_name, cpuOfSlot, present, expected) => {
    expect([...slotsByCpu(cpuOfSlot, present)]).toEqual(expected);
  });
});

describe('setCpuAffinity and getCpuAffinity', () => {
  afterEach(() => binding.setCpuAffinity(0, own));

  it("reads and sets this thread's CPUs", () => {
    expect(own.length).toBeGreaterThan(0);
    expect([...own].sort((a, b) => a - b)).toEqual(own);
    const cpu = own.at(-1) as number;
    binding.setCpuAffinity(0, [cpu]);
    expect(binding.getCpuAffinity(0)).toEqual([cpu]);
    expect(binding.getCpuAffinity(process.pid)).toEqual([cpu]);
  });

  it.each<[string, () => void, Record<string, unknown>]>([
    [
      'a process that does not exist',
      () => binding.setCpuAffinity(0x7ffffffe, [0]),
      { code: 'ESRCH', errno: -3, syscall: 'sched_setaffinity', pid: 0x7ffffffe },
    ],
    ['reading one that does not exist', () => binding.getCpuAffinity(0x7ffffffe), { code: 'ESRCH', syscall: 'sched_getaffinity', pid: 0x7ffffffe }],
    ['a CPU this machine does not have', () => binding.setCpuAffinity(0, [1023]), { code: 'EINVAL', syscall: 'sched_setaffinity', pid: 0 }],
    ['no CPU', () => binding.setCpuAffinity(0, []), { code: 'ERR_OUT_OF_RANGE' }],
    ['a CPU past the mask', () => binding.setCpuAffinity(0, [1024]), { code: 'ERR_OUT_OF_RANGE' }],
    ['a CPU that is no number', () => binding.setCpuAffinity(0, ['0' as unknown as number]), { code: 'ERR_INVALID_ARG_TYPE' }],
    ['a negative pid', () => binding.getCpuAffinity(-1), { code: 'ERR_OUT_OF_RANGE' }],
    ['a pid that is no number', () => binding.getCpuAffinity('1' as unknown as number), { code: 'ERR_INVALID_ARG_TYPE' }],
  ])('fails with a coded error for %s', (_name, call, fields) => {
    expect(call).toThrow(expect.objectContaining(fields));
  });
});

describe('pinProcess', () => {
  it('pins every thread of a running Node process, and threads it starts later follow', async () => {
    const cpu = own.at(-1) as number;
    const child = spawn(
      process.execPath,
      [
        '-e',
        'const { Worker } = require("node:worker_threads"); setInterval(() => {}, 1000); process.stdin.once("data", () => new Worker("setTimeout(() => {}, 30000)", { eval: true }))',
      ],
      {
        stdio: ['pipe', 'ignore', 'ignore'],
      },
    );
    try {
      // Node's own threads (V8 platform, libuv pool) exist once it has started: wait until there are at
      // least 4 and their number has not changed for 200 ms (a slow start, as under ASan, adds them late).
      const deadline = Date.now() + 10_000;
      let threads = threadsOf(child.pid as number);
      let steadySince = Date.now();
      while (Date.now() < deadline && (threads.length < 4 || Date.now() - steadySince < 200)) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        const seen = threadsOf(child.pid as number);
        if (seen.length !== threads.length) steadySince = Date.now();
        threads = seen;
      }
      expect(threads.length).toBeGreaterThanOrEqual(4);
      // Steady for 200 ms is no promise: a slow start can still add a thread, between our read and
      // pinProcess's own, or (from a thread not pinned yet) while it pins. Pin again until the
      // threads read before and after a pinning are the same, so its count is that of the threads.
      let pinned = 0;
      const pinning = Date.now() + 5_000;
      for (let i = 0; i < 20 && Date.now() < pinning; i++) {
        const before = threads.join();
        pinned = pinProcess(binding, child.pid as number, cpu);
        threads = threadsOf(child.pid as number);
        if (threads.join() === before) break;
      }
      expect(pinned).toBe(threads.length);
      for (const tid of threads) expect(binding.getCpuAffinity(tid)).toEqual([cpu]);
      // A worker thread started after the pinning inherits it.
      child.stdin?.write('go\n');
      const later = Date.now() + 5_000;
      while (threadsOf(child.pid as number).length <= threads.length && Date.now() < later) await new Promise((resolve) => setTimeout(resolve, 20));
      const now = threadsOf(child.pid as number);
      expect(now.length).toBeGreaterThan(threads.length);
      for (const tid of now) expect(binding.getCpuAffinity(tid)).toEqual([cpu]);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('pins nothing, and does not throw, for a process that has exited', async () => {
    const child = spawn('true');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(pinProcess(binding, child.pid as number, own[0] as number)).toBe(0);
  });
});

describe('the CPU-local program on a real SO_REUSEPORT group', () => {
  const cpus = own.slice(0, 2);
  const servers: net.Server[] = [];
  const counts: number[] = [];
  let port = 0;
  let first: { fd: number } | undefined;

  beforeAll(async () => {
    for (let index = 0; index < 3; index++) {
      const socket = binding.openListener({ address: '127.0.0.1', port, listen: false });
      port = socket.port;
      binding.listenSocket(socket.fd, 128);
      first ??= socket;
      counts[index] = 0;
      const server = net.createServer((connection) => {
        counts[index] = (counts[index] ?? 0) + 1;
        connection.end();
      });
      await new Promise<void>((resolve) => server.listen({ fd: socket.fd }, resolve));
      servers.push(server);
    }
  });
  afterAll(async () => {
    for (const server of servers) await new Promise((resolve) => server.close(resolve));
  });

  // Connects `count` times from this thread while it runs only on `cpu`; returns where they landed.
  async function connectFrom(cpu: number, count: number): Promise<number[]> {
    counts.fill(0);
    binding.setCpuAffinity(0, [cpu]);
    try {
      for (let i = 0; i < count; i++) {
        await new Promise<void>((resolve) => {
          const socket = net.connect(port, '127.0.0.1');
          socket.on('close', () => resolve());
          socket.on('error', () => resolve());
          socket.resume();
        });
      }
    } finally {
      binding.setCpuAffinity(0, own);
    }
    return [...counts];
  }

  it.runIf(cpus.length >= 2)('keeps each connection on the socket of the CPU that handled its SYN', async () => {
    const [a, b] = cpus as [number, number];
    binding.attachReusePortProgram(
      (first as { fd: number }).fd,
      flatten(
        cpuLocalProgram(
          new Map([
            [a, [0]],
            [b, [1]],
          ]),
          [2],
        ),
      ),
    );
    expect(await connectFrom(a, 60)).toEqual([60, 0, 0]);
    expect(await connectFrom(b, 60)).toEqual([0, 60, 0]);
  });

  it('hashes a CPU with no entry over the fallback sockets', async () => {
    const [a] = cpus as [number];
    binding.attachReusePortProgram((first as { fd: number }).fd, flatten(cpuLocalProgram(new Map([[a === 1023 ? 1022 : 1023, [2]]]), [0, 1])));
    const landed = await connectFrom(a, 90);
    expect(landed[2]).toBe(0);
    expect((landed[0] ?? 0) + (landed[1] ?? 0)).toBe(90);
    expect(Math.min(landed[0] ?? 0, landed[1] ?? 0)).toBeGreaterThan(15);
  });

  it("spreads a CPU's connections over its slots when it has several", async () => {
    const [a] = cpus as [number];
    binding.attachReusePortProgram((first as { fd: number }).fd, flatten(cpuLocalProgram(new Map([[a, [0, 2]]]), [1])));
    const landed = await connectFrom(a, 90);
    expect(landed[1]).toBe(0);
    expect(Math.min(landed[0] ?? 0, landed[2] ?? 0)).toBeGreaterThan(15);
  });
});
