// Classic BPF programs for an SO_REUSEPORT group (Linux SO_ATTACH_REUSEPORT_CBPF): the kernel runs
// one for each new connection and takes the socket at the index it returns. Pure: builds numbers.

// Opcodes from linux/filter.h.
const LD = 0x00;
const LDX = 0x01;
const ALU = 0x04;
const JMP = 0x05;
const RET = 0x06;
const MISC = 0x07;
const H = 0x08;
const B = 0x10;
const ABS = 0x20;
const IMM = 0x00;
const LSH = 0x60;
const RSH = 0x70;
const OR = 0x40;
const AND = 0x50;
const XOR = 0xa0;
const MUL = 0x20;
const MOD = 0x90;
const MEM = 0x60;
const ST = 0x02;
const JA = 0x00;
const JEQ = 0x10;
const JGE = 0x30;
const K = 0x00;
const X = 0x08;
const A = 0x10;
const TAX = 0x00;
const TXA = 0x80;
/** Loads at this offset are relative to the network (IP) header: SKF_NET_OFF. */
const NET = 0x100000000 - 0x100000;

/** One instruction: [code, jt, jf, k]. */
export type Instruction = [number, number, number, number];

/** Loads at this offset read the CPU handling the packet: SKF_AD_OFF + SKF_AD_CPU. */
const AD_CPU = 0x100000000 - 0x1000 + 36;
const W = 0x00;
/** The kernel's limit on a classic BPF program (BPF_MAXINSNS). */
export const MAX_INSTRUCTIONS = 4096;
/** The most CPUs a CPU-local program maps (glibc's CPU_SETSIZE, as the addon's affinity calls). */
export const MAX_CPU = 1023;

function checkIndexes(indexes: readonly number[], what: string): void {
  if (indexes.length === 0) throw new RangeError(`a steering program needs at least one socket to steer to (${what})`);
  for (const index of indexes) {
    if (!Number.isInteger(index) || index < 0 || index > 0xffff) throw new RangeError(`bad socket index ${index}`);
  }
}

// Leaves A = a hash of the client's address and port, 0..count-1 (so a retransmitted SYN lands
// where the first one did), then returns the socket index at that position of `indexes`.
function hashToIndex(indexes: readonly number[]): Instruction[] {
  if (indexes.length === 1) return [[RET | K, 0, 0, indexes[0] as number]];
  const hash: Instruction[] = [
    [LD | B | ABS, 0, 0, NET], // A = first byte of the IP header
    [ALU | RSH | K, 0, 0, 4], // A = IP version
    [JMP | JEQ | K, 0, 4, 4], // IPv4 (also what a dual-stack socket sees for IPv4 clients)?
    [LD | H | ABS, 0, 0, NET + 20], // IPv4: A = TCP source port (a 20-byte IP header, as SYNs have)
    [MISC | TAX, 0, 0, 0], // X = port
    [LD | H | ABS, 0, 0, NET + 14], // A = low half of the source address
    [JMP | JA, 0, 0, 3], // to the mixing
    [LD | H | ABS, 0, 0, NET + 40], // IPv6: A = TCP source port
    [MISC | TAX, 0, 0, 0],
    [LD | H | ABS, 0, 0, NET + 38], // A = low half of the source address
    [ALU | LSH | K, 0, 0, 16], // A = address << 16 | port
    [ALU | OR | X, 0, 0, 0],
    [ALU | MUL | K, 0, 0, 0x9e3779b1], // Fibonacci hashing: consecutive ports spread out
    [ALU | RSH | K, 0, 0, 16],
    [ALU | MOD | K, 0, 0, indexes.length],
  ];
  // A is now 0..indexes.length-1: map it to the socket index with a chain of tests.
  const table: Instruction[] = [];
  indexes.forEach((index, position) => {
    if (position === indexes.length - 1) {
      table.push([RET | K, 0, 0, index]);
    } else {
      table.push([JMP | JEQ | K, 0, 1, position]);
      table.push([RET | K, 0, 0, index]);
    }
  });
  return [...hash, ...table];
}

/**
 * A program that spreads new connections over the sockets at `allowed` indexes of the group, by a
 * hash of the client's address and port (so a retransmitted SYN lands where the first one did).
 * Sockets at other indexes (a foreign socket that joined later) get none.
 */
export function steeringProgram(allowed: readonly number[]): Instruction[] {
  checkIndexes(allowed, 'allowed');
  return hashToIndex(allowed);
}

/**
 * A CPU-local program: a connection whose SYN is handled on CPU c goes to the socket(s) of `byCpu`'s
 * entry for c (hashed among them when there are several), so the worker pinned to c accepts it and
 * the connection stays on the CPU whose caches already hold it. A SYN handled on a CPU with no entry
 * is hashed over `fallback`. Sockets named nowhere get none.
 */
export function cpuLocalProgram(byCpu: ReadonlyMap<number, readonly number[]>, fallback: readonly number[]): Instruction[] {
  checkIndexes(fallback, 'fallback');
  for (const [cpu, indexes] of byCpu) {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu > MAX_CPU) throw new RangeError(`bad CPU ${cpu}`);
    checkIndexes(indexes, `CPU ${cpu}`);
  }
  const entries = [...byCpu].sort(([a], [b]) => a - b);
  const program: Instruction[] = [[LD | W | ABS, 0, 0, AD_CPU]]; // A = the CPU handling this SYN
  // Two instructions per CPU: "is it c?" then the answer, or a jump to c's block of hashing.
  const blocks: { jumpAt: number; block: Instruction[] }[] = [];
  for (const [cpu, indexes] of entries) {
    program.push([JMP | JEQ | K, 0, 1, cpu]);
    if (indexes.length === 1) {
      program.push([RET | K, 0, 0, indexes[0] as number]);
    } else {
      blocks.push({ jumpAt: program.length, block: hashToIndex(indexes) });
      program.push([JMP | JA, 0, 0, 0]);
    }
  }
  program.push(...hashToIndex(fallback)); // no entry for this CPU
  for (const { jumpAt, block } of blocks) {
    (program[jumpAt] as Instruction)[3] = program.length - jumpAt - 1;
    program.push(...block);
  }
  if (program.length > MAX_INSTRUCTIONS)
    throw new RangeError(`a CPU-local program for ${entries.length} CPUs needs ${program.length} instructions, more than the kernel's ${MAX_INSTRUCTIONS}`);
  return program;
}

// Constants of murmur3's 32-bit finalizer (fmix32), whose rounds mix every bit into every other.
const FMIX1 = 0x85ebca6b;
const FMIX2 = 0xc2b2ae35;
// Folds the words of an IPv6 address together (an odd constant: no two addresses collide by it alone).
const FOLD = 0x9e3779b1;
// The per-slot score's constants (from xxHash32's primes).
const SCORE1 = 0x85ebca77;
const SCORE2 = 0xc2b2ae3d;

/** murmur3's fmix32, as the program computes it (a slot's seed is this of slot + 1). */
export function fmix32(value: number): number {
  let h = value >>> 0;
  h = Math.imul(h ^ (h >>> 16), FMIX1) >>> 0;
  h = Math.imul(h ^ (h >>> 13), FMIX2) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The seed of a slot's score in a sticky program: it depends on the slot alone, never on how many there are. */
export function stickySeed(slot: number): number {
  return fmix32(Math.imul(slot + 1, FOLD));
}

/** What a sticky program hashes of a client's address. */
export interface StickyOptions {
  /** How many leading bits of an IPv6 address count (1-128, default 128): 64 keeps a host whose privacy addresses change within its /64 on one slot. */
  ipv6Prefix?: number;
}

// A small assembler: jumps name their targets, resolved once the program is laid out.
class Assembly {
  readonly program: Instruction[] = [];
  readonly #labels = new Map<string, number>();
  readonly #fixups: { at: number; field: 1 | 2 | 3; label: string }[] = [];

  emit(code: number, k = 0): void {
    this.program.push([code, 0, 0, k >>> 0]);
  }

  jump(code: number, k: number, whenTrue: string, whenFalse: string): void {
    this.#fixups.push({ at: this.program.length, field: 1, label: whenTrue }, { at: this.program.length, field: 2, label: whenFalse });
    this.emit(code, k);
  }

  always(label: string): void {
    this.#fixups.push({ at: this.program.length, field: 3, label });
    this.emit(JMP | JA);
  }

  label(name: string): void {
    this.#labels.set(name, this.program.length);
  }

  resolve(): Instruction[] {
    for (const { at, field, label } of this.#fixups) {
      const target = this.#labels.get(label);
      if (target === undefined) throw new Error(`no label ${label}`);
      const offset = target - at - 1;
      if (offset < 0 || (field !== 3 && offset > 255)) throw new RangeError(`a jump from ${at} to ${label} is out of reach`);
      (this.program[at] as Instruction)[field] = offset;
    }
    return this.program;
  }
}

// Instructions before the slots' scores and after them (the whole program is FIXED + PER_SLOT * slots - 4 at most).
const STICKY_FIXED = 45;
const STICKY_PER_SLOT = 14;
/** The most slots a sticky program can choose among within the kernel's limit of 4096 instructions. */
export const MAX_STICKY_SLOTS = Math.floor((MAX_INSTRUCTIONS - STICKY_FIXED + 4) / STICKY_PER_SLOT);

/**
 * A sticky program: every connection from one client address goes to one of `slots` (their indexes
 * in the group), chosen by rendezvous hashing: each slot scores a hash of the address mixed with
 * the slot's own seed, and the highest score wins. A slot's score does not depend on the others, so
 * adding a slot moves only the clients it now wins (1/N of them), and removing one moves only its
 * own clients. The port is not hashed. IPv4 packets (also what a dual-stack socket sees of an IPv4
 * client) hash the 32-bit address; IPv6 ones the address (its first `ipv6Prefix` bits), and an IPv4
 * address written as IPv6 (::ffff:a.b.c.d) hashes as that IPv4 address. Sockets named nowhere get none.
 */
export function stickyProgram(slots: readonly number[], options: StickyOptions = {}): Instruction[] {
  checkIndexes(slots, 'slots');
  if (new Set(slots).size !== slots.length) throw new RangeError(`a sticky program's slots must differ (${slots.join(',')})`);
  if (slots.length > MAX_STICKY_SLOTS)
    throw new RangeError(
      `a sticky program for ${slots.length} slots needs more than the kernel's ${MAX_INSTRUCTIONS} instructions (at most ${MAX_STICKY_SLOTS} slots)`,
    );
  const prefix = options.ipv6Prefix ?? 128;
  if (!Number.isInteger(prefix) || prefix < 1 || prefix > 128) throw new RangeError(`bad IPv6 prefix ${prefix}: an integer 1-128`);
  if (slots.length === 1) return [[RET | K, 0, 0, slots[0] as number]];
  const asm = new Assembly();
  asm.emit(LD | B | ABS, NET); // A = first byte of the IP header
  asm.emit(ALU | RSH | K, 4); // A = IP version
  asm.jump(JMP | JEQ | K, 4, 'v4', 'v6');
  asm.label('v6');
  // ::ffff:a.b.c.d is an IPv4 client: hash it as one.
  asm.emit(LD | W | ABS, NET + 8);
  asm.jump(JMP | JEQ | K, 0, 'mapped1', 'v6hash');
  asm.label('mapped1');
  asm.emit(LD | W | ABS, NET + 12);
  asm.jump(JMP | JEQ | K, 0, 'mapped2', 'v6hash');
  asm.label('mapped2');
  asm.emit(LD | W | ABS, NET + 16);
  asm.jump(JMP | JEQ | K, 0xffff, 'mapped', 'v6hash');
  asm.label('v6hash');
  // The words of the source address (bytes 8-23 of the IPv6 header) within the prefix, folded.
  const words = Math.ceil(prefix / 32);
  for (let i = 0; i < words; i++) {
    asm.emit(LD | W | ABS, NET + 8 + 4 * i);
    const bits = Math.min(32, prefix - 32 * i);
    if (bits < 32) asm.emit(ALU | AND | K, (0xffffffff << (32 - bits)) >>> 0);
    if (i > 0) asm.emit(ALU | XOR | X);
    asm.emit(ALU | MUL | K, FOLD);
    if (i < words - 1) asm.emit(MISC | TAX);
  }
  asm.always('mix');
  asm.label('mapped');
  asm.emit(LD | W | ABS, NET + 20);
  asm.always('mix');
  asm.label('v4');
  asm.emit(LD | W | ABS, NET + 12); // the IPv4 source address
  asm.label('mix');
  // M[0] = fmix32(A): the address's hash.
  for (const [shift, factor] of [
    [16, FMIX1],
    [13, FMIX2],
    [16, 0],
  ] as const) {
    asm.emit(MISC | TAX);
    asm.emit(ALU | RSH | K, shift);
    asm.emit(ALU | XOR | X);
    if (factor) asm.emit(ALU | MUL | K, factor);
  }
  asm.emit(ST, 0);
  // Each slot's score: a second mixing of the hash with the slot's seed; M[1] = the best so far, M[2] = its slot.
  slots.forEach((slot, position) => {
    asm.emit(LD | MEM, 0);
    asm.emit(ALU | XOR | K, stickySeed(slot));
    asm.emit(ALU | MUL | K, SCORE1);
    asm.emit(MISC | TAX);
    asm.emit(ALU | RSH | K, 15);
    asm.emit(ALU | XOR | X);
    asm.emit(ALU | MUL | K, SCORE2);
    if (position > 0) {
      asm.emit(MISC | TAX); // X = this slot's score
      asm.emit(LD | MEM, 1); // A = the best so far
      asm.jump(JMP | JGE | X, 0, `next${position}`, `take${position}`); // ties stay with the lower slot
      asm.label(`take${position}`);
      asm.emit(MISC | TXA);
    }
    asm.emit(ST, 1);
    asm.emit(LD | IMM, slot);
    asm.emit(ST, 2);
    asm.label(`next${position}`);
  });
  asm.emit(LD | MEM, 2);
  asm.emit(RET | A);
  const program = asm.resolve();
  if (program.length > MAX_INSTRUCTIONS)
    throw new RangeError(`a sticky program for ${slots.length} slots needs ${program.length} instructions, more than the kernel's ${MAX_INSTRUCTIONS}`);
  return program;
}

/** The program as the flat array the addon takes. */
export function flatten(program: Instruction[]): number[] {
  return program.flat();
}

export const opcodes = {
  LD,
  LDX,
  ALU,
  JMP,
  RET,
  MISC,
  ST,
  W,
  H,
  B,
  ABS,
  IMM,
  MEM,
  LSH,
  RSH,
  OR,
  AND,
  XOR,
  MUL,
  MOD,
  JA,
  JEQ,
  JGE,
  K,
  X,
  A,
  TAX,
  TXA,
  NET,
  AD_CPU,
} as const;
