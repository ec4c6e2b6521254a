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
const MUL = 0x20;
const MOD = 0x90;
const JA = 0x00;
const JEQ = 0x10;
const K = 0x00;
const X = 0x08;
const TAX = 0x00;
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
  if (program.length > MAX_INSTRUCTIONS) throw new RangeError(`a CPU-local program for ${entries.length} CPUs needs ${program.length} instructions, more than the kernel's ${MAX_INSTRUCTIONS}`);
  return program;
}

/** The program as the flat array the addon takes. */
export function flatten(program: Instruction[]): number[] {
  return program.flat();
}

export const opcodes = { LD, LDX, ALU, JMP, RET, MISC, W, H, B, ABS, IMM, LSH, RSH, OR, MUL, MOD, JA, JEQ, K, X, TAX, NET, AD_CPU } as const;
