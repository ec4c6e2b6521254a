// A small classic-BPF interpreter for the steering programs' tests (test/steering.test.ts, test/sticky.test.ts,
// test/weighted.test.ts).
import { type Instruction, opcodes as op, stickyProgram } from '../../lib/supervisor/slots/steering';
import { AD_RANDOM } from '../../lib/supervisor/slots/weighted';

// Just the classic BPF these programs use; `packet` starts at the IP header (SKF_NET_OFF), `cpu` is
// what the ancillary load SKF_AD_CPU reads, `random` what SKF_AD_RANDOM reads. An instruction it does
// not know is an error.
export function run(program: Instruction[], packet: Buffer, cpu = 0, random = 0): number {
  let a = 0;
  let x = 0;
  const memory = new Array<number>(16).fill(0);
  for (let pc = 0; pc < program.length; pc++) {
    const [code, jt, jf, k] = program[pc] as Instruction;
    const cls = code & 0x07;
    if (cls === op.LD) {
      const mode = code & 0xe0;
      if (mode === op.IMM) a = k;
      else if (mode === op.MEM) a = memory[k] as number;
      else if (mode === op.ABS && k === op.AD_CPU) a = cpu;
      else if (mode === op.ABS && k === AD_RANDOM) a = random >>> 0;
      else if (mode === op.ABS) {
        const offset = k - op.NET;
        const size = code & 0x18;
        a = size === op.B ? packet.readUInt8(offset) : size === op.H ? packet.readUInt16BE(offset) : packet.readUInt32BE(offset);
      } else throw new Error(`ld ${code}`);
    } else if (cls === op.ST) {
      memory[k] = a;
    } else if (cls === op.ALU) {
      const operand = code & op.X ? x : k;
      switch (code & 0xf0) {
        case op.RSH:
          a = a >>> operand;
          break;
        case op.LSH:
          a = (a << operand) >>> 0;
          break;
        case op.OR:
          a = (a | operand) >>> 0;
          break;
        case op.AND:
          a = (a & operand) >>> 0;
          break;
        case op.XOR:
          a = (a ^ operand) >>> 0;
          break;
        case op.MUL:
          a = Math.imul(a, operand) >>> 0;
          break;
        case op.MOD:
          a = a % operand;
          break;
        default:
          throw new Error(`alu ${code}`);
      }
    } else if (cls === op.MISC) {
      if ((code & 0xf8) === op.TXA) a = x;
      else if ((code & 0xf8) === op.TAX) x = a;
      else throw new Error(`misc ${code}`);
    } else if (cls === op.JMP) {
      const operand = code & op.X ? x : k;
      switch (code & 0xf0) {
        case op.JA:
          pc += k;
          break;
        case op.JEQ:
          pc += a === operand ? jt : jf;
          break;
        case op.JGE:
          pc += a >= operand ? jt : jf;
          break;
        default:
          throw new Error(`jmp ${code}`);
      }
    } else if (cls === op.RET) {
      return (code & 0x18) === op.A ? a : k;
    } else {
      throw new Error(`op ${code}`);
    }
  }
  throw new Error('fell off the end');
}

/** The slot a sticky program over slots 0..slots-1 picks for an IPv4 client ("127.0.0.10"), by the interpreter. */
export function stickySlotOf(source: string, slots: number): number {
  const packet = Buffer.alloc(40);
  packet.writeUInt8(0x45, 0);
  source.split('.').forEach((part, i) => packet.writeUInt8(Number(part), 12 + i));
  return run(stickyProgram(Array.from({ length: slots }, (_, slot) => slot)), packet);
}

/** The 16 client addresses the sticky tests connect from (Linux routes all of 127/8 to lo). */
export const STICKY_SOURCES = Array.from({ length: 16 }, (_, i) => `127.0.0.${10 + i}`);
