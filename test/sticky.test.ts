// The sticky program (sticky: 'ip'): run in the project's classic-BPF interpreter over fixed address
// sets (every address of an IPv4 /16, a fixed list of IPv6 ones, IPv4 clients written as IPv6), for
// its spread over 2-8 slots and the share of clients that move when the slot count changes; then
// on a kernel SO_REUSEPORT group with real clients from 16 source addresses (127.0.0.10-25: Linux
// routes all of 127/8 to lo) and ::1, and 16 IPv6 addresses (fd00::10-25) in a network namespace the
// test makes, where every connection must land where the interpreter says.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { loadBinding } from '../lib/binding';
import { MAX_INSTRUCTIONS, MAX_STICKY_SLOTS, type StickyOptions, flatten, fmix32, stickyProgram } from '../lib/supervisor/slots/steering';
import { run } from './helpers/bpf';
import { namespaceUnavailable, runScenario } from './helpers/netns';

/** A SYN from an IPv4 address (a 32-bit number) and port, from its IP header on. */
function syn4(address: number, port = 40000): Buffer {
  const packet = Buffer.alloc(40);
  packet.writeUInt8(0x45, 0);
  packet.writeUInt32BE(address >>> 0, 12);
  packet.writeUInt32BE(0x7f000001, 16);
  packet.writeUInt16BE(port, 20);
  return packet;
}

/** A SYN from an IPv6 address (four 32-bit words) and port. */
function syn6(words: readonly number[], port = 40000): Buffer {
  const packet = Buffer.alloc(60);
  packet.writeUInt8(0x60, 0);
  words.forEach((word, i) => packet.writeUInt32BE(word >>> 0, 8 + 4 * i));
  packet.writeUInt32BE(1, 36);
  packet.writeUInt16BE(port, 40);
  return packet;
}

const slotsOf = (count: number) => Array.from({ length: count }, (_, slot) => slot);
const V4_SLASH_16 = Array.from({ length: 65_536 }, (_, host) => ((10 << 24) | (42 << 16) | host) >>> 0);
// A fixed list of 8192 IPv6 clients of 2001:db8::/32: 2048 hosts numbered 1.. in one /64 (DHCPv6),
// 2048 /64s with host ::1, 4096 SLAAC-like interface ids (fixed, derived by fmix32) in 256 /64s.
const V6_LIST: number[][] = [
  ...Array.from({ length: 2048 }, (_, i) => [0x20010db8, 0x00010000, 0, i + 1]),
  ...Array.from({ length: 2048 }, (_, i) => [0x20010db8, 0x00020000 | i, 0, 1]),
  ...Array.from({ length: 4096 }, (_, i) => [0x20010db8, 0x00030000 | (i >> 4), fmix32(i * 2 + 1) | 0x02000000, fmix32(i * 2 + 2)]),
];

function spread(program: ReturnType<typeof stickyProgram>, packets: Buffer[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const packet of packets) {
    const slot = run(program, packet);
    counts.set(slot, (counts.get(slot) ?? 0) + 1);
  }
  return counts;
}

describe('stickyProgram in the interpreter', () => {
  const v4Packets = V4_SLASH_16.map((address) => syn4(address));
  const v6Packets = V6_LIST.map((words) => syn6(words));
  // The slot of every /16 address under the program for `count` slots, run once per count.
  const v4Slots = new Map<number, Uint16Array>();
  const slotsOfV4 = (count: number): Uint16Array => {
    let slots = v4Slots.get(count);
    if (!slots) {
      const program = stickyProgram(slotsOf(count));
      slots = Uint16Array.from(v4Packets, (packet) => run(program, packet));
      v4Slots.set(count, slots);
    }
    return slots;
  };

  it.each([2, 3, 4, 5, 6, 7, 8])('spreads the 65,536 addresses of a /16 and 8192 IPv6 ones over %i slots, every slot within a tenth of the mean', (count) => {
    const v4 = new Map<number, number>();
    for (const slot of slotsOfV4(count)) v4.set(slot, (v4.get(slot) ?? 0) + 1);
    const v6 = spread(stickyProgram(slotsOf(count)), v6Packets);
    for (const [counts, total] of [
      [v4, v4Packets.length],
      [v6, v6Packets.length],
    ] as const) {
      expect([...counts.keys()].sort((a, b) => a - b)).toEqual(slotsOf(count));
      const mean = total / count;
      for (const n of counts.values()) expect(Math.abs(n - mean)).toBeLessThan(mean * 0.1);
    }
  });

  it('keeps an address on its slot whatever the source port (the port is not hashed)', () => {
    const program = stickyProgram(slotsOf(5));
    for (const address of V4_SLASH_16.slice(0, 256)) {
      const slot = run(program, syn4(address, 32768));
      for (const port of [32770, 40001, 60999]) expect(run(program, syn4(address, port))).toBe(slot);
    }
    for (const words of V6_LIST.slice(0, 256)) {
      const slot = run(program, syn6(words, 32768));
      expect(run(program, syn6(words, 51000))).toBe(slot);
    }
  });

  it('sends an IPv4 client written as IPv6 (::ffff:a.b.c.d) where the IPv4 packet goes', () => {
    const program = stickyProgram(slotsOf(4));
    const counts = new Map<number, number>();
    for (const address of V4_SLASH_16.slice(0, 4096)) {
      const slot = run(program, syn4(address));
      expect(run(program, syn6([0, 0, 0xffff, address]))).toBe(slot);
      counts.set(slot, (counts.get(slot) ?? 0) + 1);
    }
    expect(counts.size).toBe(4);
    // ::a.b.c.d (no ffff) is an IPv6 address of its own, hashed as one.
    const differ = V4_SLASH_16.slice(0, 256).filter((address) => run(program, syn6([0, 0, 0, address])) !== run(program, syn4(address))).length;
    expect(differ).toBeGreaterThan(100);
  });

  it.each<[number, number]>([
    [2, 3],
    [3, 4],
    [4, 5],
    [7, 8],
    [4, 3],
    [8, 4],
    [2, 8],
  ])('moves only the clients the change must move, %i -> %i slots (rendezvous), where mod N moves most', (from, to) => {
    const before = slotsOfV4(from);
    const after = slotsOfV4(to);
    let moved = 0;
    let movedByMod = 0;
    for (const [i, packet] of v4Packets.entries()) {
      const a = before[i] as number;
      const b = after[i] as number;
      if (a !== b) {
        moved += 1;
        // Growing: a client moves only to a new slot; shrinking: only a removed slot's clients move.
        if (to > from) expect(b).toBeGreaterThanOrEqual(from);
        else expect(a).toBeGreaterThanOrEqual(to);
      }
      const hash = fmix32(packet.readUInt32BE(12));
      if (hash % from !== hash % to) movedByMod += 1;
    }
    const ideal = Math.abs(to - from) / Math.max(from, to);
    const fraction = moved / v4Packets.length;
    expect(Math.abs(fraction - ideal)).toBeLessThan(ideal * 0.1);
    // For comparison, a hash mod N (today's steering maps its hash that way) moves 1 - gcd-ish shares: most.
    if (Math.abs(to - from) === 1) expect(movedByMod / v4Packets.length).toBeGreaterThan(0.5);
  });

  it("spreads a removed slot's clients over the others (its second choices), evenly", () => {
    const before = slotsOfV4(5);
    const after = slotsOfV4(4);
    const landed = new Map<number, number>();
    for (const [i, slot5] of before.entries()) {
      if (slot5 !== 4) continue;
      const slot = after[i] as number;
      landed.set(slot, (landed.get(slot) ?? 0) + 1);
    }
    const moved = [...landed.values()].reduce((a, b) => a + b, 0);
    expect(landed.size).toBe(4);
    for (const n of landed.values()) expect(Math.abs(n - moved / 4)).toBeLessThan((moved / 4) * 0.1);
  });

  it('hashes only the first ipv6Prefix bits of an IPv6 address: a /64 stays on one slot, and /64s still spread', () => {
    const whole = stickyProgram(slotsOf(4));
    const by64 = stickyProgram(slotsOf(4), { ipv6Prefix: 64 });
    const host = (net64: number, id: number) => [0x20010db8, 0x00030000 | net64, fmix32(id), fmix32(id + 7)];
    for (let net64 = 0; net64 < 64; net64++) {
      const slot = run(by64, syn6(host(net64, 0)));
      for (let id = 1; id < 16; id++) expect(run(by64, syn6(host(net64, id)))).toBe(slot);
    }
    // Without the prefix, the privacy addresses of one /64 land on different slots.
    expect(new Set(Array.from({ length: 16 }, (_, id) => run(whole, syn6(host(0, id))))).size).toBeGreaterThan(1);
    const nets = Array.from({ length: 8192 }, (_, i) => syn6([0x20010db8, i, fmix32(i), 1]));
    const counts = spread(by64, nets);
    for (const n of counts.values()) expect(Math.abs(n - 2048)).toBeLessThan(2048 * 0.1);
    // IPv4 is hashed whole either way.
    for (const address of V4_SLASH_16.slice(0, 64)) expect(run(by64, syn4(address))).toBe(run(whole, syn4(address)));
  });

  it.each([1, 12, 48, 56, 127])('takes a prefix of %i bits', (ipv6Prefix) => {
    const program = stickyProgram(slotsOf(3), { ipv6Prefix });
    const counts = spread(program, v6Packets.slice(0, 64));
    expect([...counts.keys()].every((slot) => slot >= 0 && slot < 3)).toBe(true);
  });

  it('returns only the slots it is given, which need not start at 0', () => {
    const program = stickyProgram([3, 5, 9]);
    const counts = spread(program, v4Packets.slice(0, 3000));
    expect([...counts.keys()].sort((a, b) => a - b)).toEqual([3, 5, 9]);
    expect(run(stickyProgram([7]), syn4(1))).toBe(7);
  });

  it(`fits the kernel's limit for ${MAX_STICKY_SLOTS} slots, and says so past it`, () => {
    expect(stickyProgram(slotsOf(MAX_STICKY_SLOTS)).length).toBeLessThanOrEqual(MAX_INSTRUCTIONS);
    expect(MAX_STICKY_SLOTS).toBeGreaterThanOrEqual(256);
    expect(() => stickyProgram(slotsOf(MAX_STICKY_SLOTS + 1))).toThrow(/more than the kernel's 4096/);
  });

  it.each<[string, number[], StickyOptions]>([
    ['no slot', [], {}],
    ['a negative slot', [-1], {}],
    ['a slot twice', [1, 1], {}],
    ['a prefix of 0', [0, 1], { ipv6Prefix: 0 }],
    ['a prefix of 129', [0, 1], { ipv6Prefix: 129 }],
    ['a prefix of 6.5', [0, 1], { ipv6Prefix: 6.5 }],
  ])('refuses %s', (_name, slots, options) => {
    expect(() => stickyProgram(slots, options)).toThrow(RangeError);
  });
});

describe('stickyProgram on a real SO_REUSEPORT group', () => {
  const loaded = loadBinding();
  if (!loaded.binding) throw loaded.error;
  const binding = loaded.binding;
  const SOURCES = Array.from({ length: 16 }, (_, i) => `127.0.0.${10 + i}`);

  // Opens `count` sockets of one group on `address`, attaches the sticky program, and records which
  // socket accepted each connection from which client address.
  async function group(address: string, count: number, ipv6Only: boolean) {
    const accepted: { index: number; from: string }[] = [];
    const servers: net.Server[] = [];
    let port = 0;
    const fds: number[] = [];
    for (let index = 0; index < count; index++) {
      const socket = binding.openListener({ address, port, ipv6Only, listen: false });
      port = socket.port;
      fds.push(socket.fd);
    }
    for (const [index, fd] of fds.entries()) {
      binding.listenSocket(fd, 64);
      const server = net.createServer((c) => {
        accepted.push({ index, from: (c.remoteAddress ?? '').replace(/^::ffff:/, '') });
        c.end();
      });
      server.listen({ fd });
      servers.push(server);
    }
    binding.attachReusePortProgram(fds[0] as number, flatten(stickyProgram(slotsOf(count))));
    return { port, accepted, close: () => servers.forEach((server) => server.close()) };
  }

  function connect(port: number, host: string, localAddress: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const socket = net.connect({ port, host, localAddress });
      socket.setTimeout(5_000, () => socket.destroy(new Error(`no answer from ${host}:${port} for ${localAddress}`)));
      socket.on('close', () => resolve());
      socket.on('error', reject);
      socket.resume();
    });
  }

  const ipv4 = (text: string) => text.split('.').reduce((word, part) => ((word << 8) | Number(part)) >>> 0, 0);

  it.each<[string, string, boolean]>([
    ['IPv4 clients on 127.0.0.1', '127.0.0.1', false],
    ['IPv4 clients on a dual-stack socket (::)', '::', false],
  ])('%s: every connection of 16 source addresses lands on the socket the interpreter picks', async (_name, address, ipv6Only) => {
    const program = stickyProgram(slotsOf(4));
    const g = await group(address, 4, ipv6Only);
    try {
      for (let round = 0; round < 3; round++) {
        for (const source of SOURCES) await connect(g.port, '127.0.0.1', source);
      }
      expect(g.accepted).toHaveLength(48);
      for (const { index, from } of g.accepted) expect({ from, index }).toEqual({ from, index: run(program, syn4(ipv4(from))) });
      // 16 addresses over 4 sockets: more than one is used (the interpreter agrees, so this is the hash, not luck).
      expect(new Set(g.accepted.map(({ index }) => index)).size).toBeGreaterThan(1);
    } finally {
      g.close();
    }
  });

  it('IPv6: every connection from ::1 lands on the socket the interpreter picks', async () => {
    const program = stickyProgram(slotsOf(4));
    const g = await group('::1', 4, true);
    try {
      for (let i = 0; i < 12; i++) await connect(g.port, '::1', '::1');
      const expected = run(program, syn6([0, 0, 0, 1]));
      expect(g.accepted.map(({ index }) => index)).toEqual(Array.from({ length: 12 }, () => expected));
    } finally {
      g.close();
    }
  });
});

describe('stickyProgram on the kernel with 16 IPv6 client addresses (a network namespace)', () => {
  it.each([128, 64])('prefix %i: every connection lands where the interpreter says', async (ipv6Prefix) => {
    const why = await namespaceUnavailable();
    if (why) throw new Error(`this test needs a network namespace: ${why}`);
    const report = await runScenario<{ accepted: { index: number; from: string }[] }>({ slots: 4, ipv6Prefix }, 0, 30_000, 'sticky-ipv6.js');
    expect(report.accepted).toHaveLength(48);
    const program = stickyProgram(slotsOf(4), { ipv6Prefix });
    for (const { index, from } of report.accepted) {
      const host = Number.parseInt(from.split(':').at(-1) as string, 16);
      expect({ from, index }).toEqual({ from, index: run(program, syn6([0xfd000000, 0, 0, host])) });
    }
    const used = new Set(report.accepted.map(({ index }) => index)).size;
    // The whole address: 16 hosts over 4 sockets use more than one; by the /64 (all of fd00::/64): one.
    if (ipv6Prefix === 128) expect(used).toBeGreaterThan(1);
    else expect(used).toBe(1);
  });
});
