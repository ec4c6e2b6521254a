// The raw binding never crashes: 10,000 random calls of each native function (random types, sizes,
// negative and huge numbers, closed and foreign fds) throw a TypeError or RangeError with a code, or an OS error, and the
// process's fd count is unchanged afterwards.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import util from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBinding } from '../lib/binding';
import { type NotifyReceiver, startNotifyReceiver } from './helpers/notify-receiver';
import { openFdCount } from './helpers/proc-net';

const loaded = loadBinding();
if (!loaded.binding) throw loaded.error;
const binding = loaded.binding as unknown as Record<string, (...args: unknown[]) => unknown>;

// A small deterministic generator (mulberry32), so a failure can be replayed from its seed.
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomValue(random: () => number, depth = 0): unknown {
  const pick = Math.floor(random() * 22);
  switch (pick) {
    case 0:
      return undefined;
    case 1:
      return null;
    case 2:
      return Math.floor(random() * 70000);
    case 3:
      return -Math.floor(random() * 2 ** 40);
    case 4:
      return 2 ** (10 + Math.floor(random() * 60));
    case 5:
      return [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 1.5, Number.MAX_SAFE_INTEGER][Math.floor(random() * 6)];
    case 6:
      return ['127.0.0.1', '::1', '::', '0.0.0.0', '192.0.2.1', 'fe80::1%lo', 'localhost', '', '999.1.1.1', '::zz'][Math.floor(random() * 10)];
    case 7:
      return 'x'.repeat(Math.floor(random() * 5000));
    case 8:
      return String.fromCharCode(...Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 0x10000)));
    case 9:
      return random() < 0.5;
    case 10:
      return BigInt(Math.floor(random() * 1e9));
    case 11:
      return Symbol('fuzz');
    case 12:
      return () => 1;
    case 13:
      return Buffer.alloc(Math.floor(random() * 64));
    case 14:
      return depth > 2 ? {} : Array.from({ length: Math.floor(random() * 4) }, () => randomValue(random, depth + 1));
    case 15:
      return new Proxy(
        {},
        {
          get: () => {
            throw new Error('trap');
          },
        },
      );
    default:
      return depth > 2 ? {} : randomSpec(random, depth + 1);
  }
}

// An object shaped like openListener's options, each field random, often plausible.
function randomSpec(random: () => number, depth = 0): Record<string, unknown> {
  const spec: Record<string, unknown> = {};
  for (const key of ['address', 'port', 'ipv6Only', 'listen', 'backlog']) if (random() < 0.8) spec[key] = randomValue(random, depth + 1);
  if (random() < 0.6) spec.address = ['127.0.0.1', '::1', '::', '192.0.2.1'][Math.floor(random() * 4)];
  if (random() < 0.6) spec.port = random() < 0.5 ? 0 : Math.floor(random() * 65536);
  if (random() < 0.5) spec.ipv6Only = random() < 0.5;
  if (random() < 0.5) spec.listen = random() < 0.5;
  if (random() < 0.5) spec.backlog = Math.floor(random() * 1000);
  return spec;
}

const accepted = new Set(['ERR_INVALID_ARG_TYPE', 'ERR_OUT_OF_RANGE']);

// fd functions get small fds (open files, pipes, IPC and sockets of this process), closed ones, and junk.
function randomFdCall(random: () => number): unknown[] {
  const fd = random() < 0.7 ? Math.floor(random() * 64) : randomValue(random);
  const second =
    random() < 0.5
      ? Array.from({ length: 4 * Math.floor(random() * 6) }, () => (random() < 0.8 ? Math.floor(random() * 300) : randomValue(random)))
      : randomValue(random);
  return [fd, second];
}

// Calls binding[name] 10,000 times with makeArgs' arguments: every call returns, or throws a coded
// argument error or an OS error (never anything else, never a crash); the fd count ends as it began.
function fuzz(name: string, seed: number, makeArgs: (random: () => number) => unknown[]): void {
  const random = generator(seed);
  const fn = binding[name] as (...args: unknown[]) => unknown;
  const before = openFdCount();
  const outcomes = new Map<string, number>();
  for (let i = 0; i < 10_000; i++) {
    const args = makeArgs(random);
    let outcome: string;
    try {
      const result = fn(...args) as { fd?: number } | number;
      if (typeof result === 'object' && result !== null && typeof result.fd === 'number') fs.closeSync(result.fd);
      outcome = 'returned';
    } catch (error) {
      const { code, syscall } = error as { code?: string; syscall?: string };
      const isArgumentError = (error instanceof TypeError || error instanceof RangeError) && accepted.has(code ?? '');
      const isSystemError = typeof syscall === 'string' && typeof code === 'string';
      const fromProxy = (error as Error).message === 'trap';
      if (!isArgumentError && !isSystemError && !fromProxy) throw new Error(`call ${i} threw an uncoded error: ${String(error)}`);
      outcome = code ?? 'trap';
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }
  expect(openFdCount()).toBe(before);
  console.log(`${name}: ${JSON.stringify(Object.fromEntries(outcomes))}`);
}

const fdFunctions = new Set([
  'listenSocket',
  'attachReusePortProgram',
  'acceptQueue',
  'listeningSockets',
  'socketInfo',
  'clearDatagramReuseAddr',
  'datagramSockets',
  'mapShared',
]);

describe.each([
  'openListener',
  'probeReusePort',
  'listenSocket',
  'attachReusePortProgram',
  'acceptQueue',
  'listeningSockets',
  'socketInfo',
  'openDatagram',
  'clearDatagramReuseAddr',
  'datagramSockets',
  'mapShared',
])('%s under 10,000 random calls', (name) => {
  it('never crashes, throws only coded errors, and leaks no fd', () => {
    fuzz(name, name.length * 7919, (random) => {
      // Most calls get an options-shaped object, so the checks past the first one are reached too.
      const args = fdFunctions.has(name)
        ? randomFdCall(random)
        : random() < 0.7
          ? [randomSpec(random)]
          : Array.from({ length: Math.floor(random() * 3) }, () => randomValue(random));
      // Never listen on a port of someone else's: other test files run beside this one, and a
      // listener that joins their SO_REUSEPORT group would take (and drop) their connections.
      for (const arg of args) {
        if (arg && typeof arg === 'object' && !Array.isArray(arg) && !util.types.isProxy(arg)) {
          const spec = arg as Record<string, unknown>;
          if (spec.listen !== false && spec.port !== 0) spec.port = 0;
          // A bound UDP socket on a used port would join another test's group and take its datagrams.
          if (name === 'openDatagram' && typeof spec.port === 'number') spec.port = 0;
          if (name === 'openDatagram' && random() < 0.5) spec.bind = random() < 0.5 ? false : randomValue(random);
        }
      }
      return args;
    });
  });
});

// bindDatagram gets an unbound UDP socket of its own (from openDatagram({ bind: false })) half the
// time, else a random fd; the address and port are random, the port 0 whenever it is a valid one (a
// used port would join another test's group). Its own socket is closed after a failed call, and after
// a successful one (as the returned fd).
describe('bindDatagram under 10,000 random calls', () => {
  it('never crashes, throws only coded errors, and leaks no fd', () => {
    const random = generator(20_260);
    const fresh = new Set<number>();
    const bindDatagram = binding.bindDatagram as (...args: unknown[]) => { fd: number };
    const openDatagram = binding.openDatagram as (spec: unknown) => { fd: number };
    const before = openFdCount();
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 10_000; i++) {
      let fd: unknown = random() < 0.7 ? Math.floor(random() * 64) : randomValue(random);
      if (random() < 0.5) {
        fd = openDatagram({ address: random() < 0.5 ? '127.0.0.1' : '::1', port: 0, bind: false }).fd;
        fresh.add(fd as number);
      }
      const address = random() < 0.7 ? ['127.0.0.1', '::1', '::', '0.0.0.0', '192.0.2.1', '', '::zz'][Math.floor(random() * 7)] : randomValue(random);
      const port = random() < 0.8 ? 0 : randomValue(random);
      const args = [fd, address, typeof port === 'number' && Number.isInteger(port) && port >= 0 && port <= 65535 ? 0 : port];
      let outcome: string;
      try {
        bindDatagram(...args);
        outcome = 'returned';
      } catch (error) {
        const { code, syscall } = error as { code?: string; syscall?: string };
        const isArgumentError = (error instanceof TypeError || error instanceof RangeError) && accepted.has(code ?? '');
        const isSystemError = typeof syscall === 'string' && typeof code === 'string';
        if (!isArgumentError && !isSystemError && (error as Error).message !== 'trap') throw new Error(`call ${i} threw an uncoded error: ${String(error)}`);
        outcome = code ?? 'trap';
      }
      if (typeof fd === 'number' && fresh.delete(fd)) fs.closeSync(fd);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    expect(openFdCount()).toBe(before);
    expect(outcomes.get('returned')).toBeGreaterThan(0);
    console.log(`bindDatagram: ${JSON.stringify(Object.fromEntries(outcomes))}`);
  });
});

// Affinity calls only ever name this thread (0) or a child this test starts and stops: a random pid
// could be any process of the machine (these tests may run as root).
describe.each(['setCpuAffinity', 'getCpuAffinity'])('%s under 10,000 random calls', (name) => {
  let child: ReturnType<typeof spawn>;
  let own: number[];
  beforeAll(() => {
    own = loaded.binding?.getCpuAffinity(0) ?? [];
    child = spawn('sleep', ['60'], { stdio: 'ignore' });
  });
  afterAll(() => {
    if (child.pid) process.kill(child.pid, 'SIGKILL');
    if (own.length) loaded.binding?.setCpuAffinity(0, own);
  });

  it('never crashes, throws only coded errors, and leaks no fd', () => {
    fuzz(name, name.length * 104729, (random) => {
      const pidPick = random();
      const pid = pidPick < 0.4 ? 0 : pidPick < 0.7 ? child.pid : randomValue(random);
      // Junk that is a number could name a real process: only negative or fractional ones are kept.
      const safePid = typeof pid === 'number' && pid > 0 && Number.isInteger(pid) && pid !== child.pid ? -pid : pid;
      const cpus =
        random() < 0.6
          ? Array.from({ length: Math.floor(random() * 5) }, () => (random() < 0.8 ? Math.floor(random() * 4) : randomValue(random)))
          : randomValue(random);
      return [safePid, cpus];
    });
  });
});

// notify only ever reaches a sink this test starts, or addresses where nothing is bound: names in a
// fresh directory and abstract names with this run's prefix. A random address could be a real
// socket of the machine (systemd's own among them), and the random fds would go along.
describe('notify under 10,000 random calls', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-fuzz-notify-'));
  const prefix = `@reuseport-fuzz-${process.pid}-${Date.now().toString(36)}-`;
  let sink: NotifyReceiver | undefined;
  beforeAll(async () => {
    sink = await startNotifyReceiver(path.join(dir, 'sink.sock'), { count: 0, quiet: true });
  });
  afterAll(async () => {
    await sink?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  // A junk string that reads as an address is moved inside the fence; anything else is kept.
  function fenced(value: unknown): unknown {
    if (typeof value !== 'string') return value;
    if (value.startsWith('/')) return `${dir}/${value.slice(1).replaceAll('/', '_')}`;
    if (value.startsWith('@')) return `${prefix}${value.slice(1)}`;
    return value;
  }

  it('never crashes, throws only coded errors, and leaks no fd', () => {
    const messages = ['READY=1', 'READY=1\nMAINPID=1', 'FDSTORE=1\nFDNAME=fuzz', 'STOPPING=1', 'STATUS=fuzz'];
    const open = fs.readdirSync('/proc/self/fd').map(Number);
    fuzz('notify', 'notify'.length * 7919, (random) => {
      const pick = random();
      const address =
        pick < 0.4
          ? sink?.address
          : pick < 0.6
            ? path.join(dir, `n${Math.floor(random() * 100)}.sock`)
            : pick < 0.75
              ? `${prefix}${Math.floor(random() * 100)}`
              : fenced(randomValue(random));
      const message = random() < 0.75 ? messages[Math.floor(random() * messages.length)] : randomValue(random);
      // Mostly a few fds, open or closed, sometimes around SCM_MAX_FD; sometimes junk.
      const count = random() < 0.05 ? 250 + Math.floor(random() * 8) : Math.floor(random() * 6);
      const fd = () => (random() < 0.7 ? open[Math.floor(random() * open.length)] : Math.floor(random() * 64));
      const fds = random() < 0.85 ? Array.from({ length: count }, () => (random() < 0.98 ? fd() : randomValue(random))) : randomValue(random);
      return [address, message, fds].slice(0, random() < 0.9 ? 3 : Math.floor(random() * 3));
    });
  });
});
