// The weighted steering program, run in the classic-BPF interpreter with chosen random numbers, and
// the choice of weights from the loads.
import { describe, expect, it } from 'vitest';
import { type Instruction, MAX_INSTRUCTIONS, opcodes as op } from '../lib/supervisor/slots/steering';
import { AD_RANDOM, type SteeringLoad, WEIGHT_SHARE, WEIGHT_STEP, steeringWeights, weightedProgram } from '../lib/supervisor/slots/weighted';
import { run } from './helpers/bpf';

const SYN = Buffer.alloc(40, 0x45);

// The socket the weights' buckets give a random number: r % total, then the first bucket it is under.
function expected(indexes: number[], weights: number[], random: number): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let left = (random >>> 0) % total;
  for (let i = 0; i < indexes.length; i++) {
    left -= weights[i] as number;
    if (left < 0) return indexes[i] as number;
  }
  throw new Error('no bucket');
}

describe('weightedProgram', () => {
  it.each<[string, number[], number[]]>([
    ['two sockets, 1:3', [0, 1], [1, 3]],
    ['two sockets, equal', [0, 1], [32, 32]],
    ['three sockets, one at the floor', [0, 1, 2], [2, 40, 22]],
    ['sockets not in order, a gap (a port only some slots listen on)', [3, 0, 5], [10, 1, 7]],
    ['eight sockets', [0, 1, 2, 3, 4, 5, 6, 7], [2, 4, 6, 8, 10, 12, 14, 16]],
  ])('%s: each random number lands in its bucket, and the counts are the weights', (_name, indexes, weights) => {
    const program = weightedProgram(indexes, weights);
    const total = weights.reduce((a, b) => a + b, 0);
    const counts = new Map<number, number>();
    // 50 full rounds of the modulus: each socket gets exactly 50 times its weight.
    for (let random = 0; random < total * 50; random++) {
      const socket = run(program, SYN, 0, random);
      expect(socket).toBe(expected(indexes, weights, random));
      counts.set(socket, (counts.get(socket) ?? 0) + 1);
    }
    indexes.forEach((index, i) => expect(counts.get(index)).toBe((weights[i] as number) * 50));
    // The edges of every bucket, and the largest random numbers the kernel can give.
    let edge = 0;
    for (const [i, weight] of weights.entries()) {
      expect(run(program, SYN, 0, edge)).toBe(indexes[i]);
      expect(run(program, SYN, 0, edge + weight - 1)).toBe(indexes[i]);
      edge += weight;
    }
    for (const random of [0xffffffff, 0xfffffffe, 0x80000000, 0x7fffffff]) expect(run(program, SYN, 0, random)).toBe(expected(indexes, weights, random));
  });

  it('is a random load, a modulus by the total, tests against the running sums and returns', () => {
    const program = weightedProgram([0, 1, 2], [5, 6, 7]);
    expect(program).toEqual<Instruction[]>([
      [op.LD | op.W | op.ABS, 0, 0, AD_RANDOM],
      [op.ALU | op.MOD | op.K, 0, 0, 18],
      [op.JMP | op.JGE | op.K, 1, 0, 5],
      [op.RET | op.K, 0, 0, 0],
      [op.JMP | op.JGE | op.K, 1, 0, 11],
      [op.RET | op.K, 0, 0, 1],
      [op.RET | op.K, 0, 0, 2],
    ]);
    expect(AD_RANDOM).toBe(0xfffff000 + 56);
  });

  it('one socket: returns it, with no random load', () => {
    expect(weightedProgram([4], [9])).toEqual([[op.RET | op.K, 0, 0, 4]]);
  });

  it('fits the kernel limit for 2000 sockets', () => {
    const indexes = Array.from({ length: 2000 }, (_, i) => i);
    const program = weightedProgram(
      indexes,
      indexes.map(() => 2),
    );
    expect(program.length).toBe(2 + 2 * 2000 - 1);
    expect(program.length).toBeLessThanOrEqual(MAX_INSTRUCTIONS);
  });

  it.each<[string, number[], number[]]>([
    ['no socket', [], []],
    ['fewer weights than sockets', [0, 1], [1]],
    ['a weight of 0 (a socket left out)', [0, 1], [0, 4]],
    ['a negative weight', [0, 1], [-1, 4]],
    ['a fractional weight', [0, 1], [1.5, 4]],
    ['a weight past 65535', [0, 1], [1, 70000]],
    ['a socket twice', [0, 0], [1, 1]],
    ['a bad index', [0, -1], [1, 1]],
  ])('refuses %s', (_name, indexes, weights) => {
    expect(() => weightedProgram(indexes, weights)).toThrow(RangeError);
  });
});

const open = (...opens: number[]): SteeringLoad[] => opens.map((count) => ({ open: count, busy: 0.2 }));

describe('steeringWeights', () => {
  it.each<[string, SteeringLoad[], number[] | undefined, number[]]>([
    ['equal loads: equal weights', open(2, 2), undefined, [32, 32]],
    ['equal loads of three', open(5, 5, 5), undefined, [32, 32, 32]],
    ['no connections at all', open(0, 0), undefined, [32, 32]],
    ['3/1: the slot with 1 gets more', open(3, 1), undefined, [24, 40]],
    ['4/0: the most two weights differ, 1:3', open(4, 0), undefined, [16, 48]],
    ['1/0: one open connection is noise, not a load', open(1, 0), undefined, [32, 32]],
    ['one of three over the mean', open(6, 3, 3), undefined, [24, 36, 36]],
    [
      'equal connections, one loop busier: the idler slot gets more',
      [
        { open: 2, busy: 0.6 },
        { open: 2, busy: 0.2 },
      ],
      undefined,
      [24, 40],
    ],
    [
      'loops under the idle floor: their differences are noise',
      [
        { open: 2, busy: 0.04 },
        { open: 2, busy: 0.01 },
      ],
      undefined,
      [32, 32],
    ],
    [
      'fewer connections but a busier loop: they cancel out',
      [
        { open: 1, busy: 0.6 },
        { open: 3, busy: 0.2 },
      ],
      undefined,
      [32, 32],
    ],
    ['a small move keeps the weights in force (hysteresis)', open(11, 9), [32, 32], [32, 32]],
    ['the same small move from no weights: quantised', open(11, 9), undefined, [30, 34]],
    ['a larger move rebuilds them', open(13, 7), [32, 32], [28, 36]],
    ['back to equal from a skew', open(2, 2), [16, 48], [32, 32]],
    ['weights in force for another set of slots are not kept', open(2, 2, 2), [32, 32], [32, 32, 32]],
    ['one slot', open(7), undefined, [32]],
    ['none', [], undefined, []],
    [
      'short connections turning over (more accepted than open) on both: 20/12 open is noise, equal weights',
      [
        { open: 20, busy: 0.9, accepted: 500 },
        { open: 12, busy: 0.9, accepted: 480 },
      ],
      undefined,
      [32, 32],
    ],
    [
      'short connections, one loop busier: only the loops count',
      [
        { open: 20, busy: 0.9, accepted: 500 },
        { open: 12, busy: 0.3, accepted: 480 },
      ],
      undefined,
      [24, 40],
    ],
    [
      'one slot of pooled connections (none accepted): open connections count',
      [
        { open: 3, busy: 0.01, accepted: 0 },
        { open: 1, busy: 0.01, accepted: 5 },
      ],
      undefined,
      [24, 40],
    ],
  ])('%s', (_name, loads, previous, weights) => {
    expect(steeringWeights(loads, previous)).toEqual(weights);
  });

  it('never gives a serving slot less than the floor, and always multiples of the step', () => {
    let seed = 7;
    const next = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    for (let round = 0; round < 500; round++) {
      const loads = Array.from({ length: 1 + Math.floor(next() * 8) }, () => ({ open: Math.floor(next() * 100), busy: next() }));
      const weights = steeringWeights(loads);
      expect(weights).toHaveLength(loads.length);
      for (const weight of weights) {
        expect(weight).toBeGreaterThanOrEqual(WEIGHT_STEP);
        expect(weight % WEIGHT_STEP).toBe(0);
      }
      // A program can always be built from them.
      expect(() =>
        weightedProgram(
          loads.map((_, i) => i),
          weights,
        ),
      ).not.toThrow();
      // Lower load (of the same busyness) never means a lower weight.
      const same = loads.map((load) => ({ ...load, busy: 0.3 }));
      const sameWeights = steeringWeights(same);
      for (let i = 0; i < same.length; i++) {
        for (let j = 0; j < same.length; j++) {
          if ((same[i] as SteeringLoad).open < (same[j] as SteeringLoad).open) expect(sameWeights[i]).toBeGreaterThanOrEqual(sameWeights[j] as number);
        }
      }
    }
    expect(WEIGHT_SHARE).toBe(32);
  });
});
