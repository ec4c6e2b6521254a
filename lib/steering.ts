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

/**
 * A program that spreads new connections over the sockets at `allowed` indexes of the group, by a
 * hash of the client's address and port (so a retransmitted SYN lands where the first one did).
 * Sockets at other indexes (a stalled slot; a foreign socket that joined later) get none.
 */
export function steeringProgram(allowed: readonly number[]): Instruction[] {
  if (allowed.length === 0) throw new RangeError('a steering program needs at least one socket to steer to');
  for (const index of allowed) {
    if (!Number.isInteger(index) || index < 0 || index > 0xffff) throw new RangeError(`bad socket index ${index}`);
  }
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
    [ALU | MOD | K, 0, 0, allowed.length],
  ];
  // A is now 0..allowed.length-1: map it to the socket index with a chain of tests.
  const table: Instruction[] = [];
  allowed.forEach((index, position) => {
    if (position === allowed.length - 1) {
      table.push([RET | K, 0, 0, index]);
    } else {
      table.push([JMP | JEQ | K, 0, 1, position]);
      table.push([RET | K, 0, 0, index]);
    }
  });
  return [...hash, ...table];
}

/** The program as the flat array the addon takes. */
export function flatten(program: Instruction[]): number[] {
  return program.flat();
}

export const opcodes = { LD, LDX, ALU, JMP, RET, MISC, H, B, ABS, IMM, LSH, RSH, OR, MUL, MOD, JA, JEQ, K, X, TAX, NET } as const;
