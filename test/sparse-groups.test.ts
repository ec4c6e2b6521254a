// Sparse groups: a port's group holds a socket only for each slot whose worker listens there, so a
// slot's socket sits at the place in the kernel's SO_REUSEPORT group where it joined, not at its slot
// number. Where a handed-over group's sockets go in a successor (handedLayout), and which program a
// group gets over its sockets' places (groupProgram). Pure tables.
import { describe, expect, it } from 'vitest';
import { parseHandover } from '../lib/supervisor/deploy/handover';
import { handedLayout } from '../lib/supervisor/deploy/slot-handover';
import { slotsByCpu } from '../lib/supervisor/slots/affinity';
import { groupProgram } from '../lib/supervisor/slots/group-program';
import { cpuLocalProgram, steeringProgram, stickyProgram } from '../lib/supervisor/slots/steering';
import { weightedProgram } from '../lib/supervisor/slots/weighted';

type Handed = { slot: number; index?: number; steerable: boolean };

describe('where a handed-over group goes in the successor', () => {
  it.each<[string, Handed[], { order: number[]; known: boolean; slotOf: [number, number][] }]>([
    [
      "every slot's socket, joined in the order 1, 2, 0: renumbered by place, so a surplus is at the end",
      [
        { slot: 0, index: 2, steerable: false },
        { slot: 1, index: 0, steerable: false },
        { slot: 2, index: 1, steerable: false },
      ],
      {
        order: [0, 1, 2],
        known: true,
        slotOf: [
          [1, 0],
          [2, 1],
          [0, 2],
        ],
      },
    ],
    [
      'every slot in slot order: unchanged',
      [
        { slot: 0, index: 0, steerable: true },
        { slot: 1, index: 1, steerable: true },
      ],
      {
        order: [0, 1],
        known: true,
        slotOf: [
          [0, 0],
          [1, 1],
        ],
      },
    ],
    ["slot 0's admin port: slot 0's alone", [{ slot: 0, index: 0, steerable: false }], { order: [0], known: true, slotOf: [[0, 0]] }],
    [
      "slot 1's own port: stays slot 1's (its worker listens there), at place 0",
      [{ slot: 1, index: 0, steerable: false }],
      { order: [1], known: true, slotOf: [[1, 1]] },
    ],
    [
      "slots 2 and 0 of three, joined 2 then 0: kept, in the kernel's order",
      [
        { slot: 0, index: 1, steerable: false },
        { slot: 2, index: 0, steerable: false },
      ],
      {
        order: [2, 0],
        known: true,
        slotOf: [
          [2, 2],
          [0, 0],
        ],
      },
    ],
    [
      "from a predecessor of 0.2 (no indexes), steered, slots 0..2: slot order is the kernel's",
      [
        { slot: 1, steerable: true },
        { slot: 0, steerable: true },
        { slot: 2, steerable: true },
      ],
      {
        order: [0, 1, 2],
        known: true,
        slotOf: [
          [0, 0],
          [1, 1],
          [2, 2],
        ],
      },
    ],
    [
      'from systemd (no indexes, not steered): the order is unknown, the slots kept',
      [
        { slot: 0, steerable: false },
        { slot: 1, steerable: false },
      ],
      {
        order: [0, 1],
        known: false,
        slotOf: [
          [0, 0],
          [1, 1],
        ],
      },
    ],
    [
      'indexes with a gap (not the whole group): unknown',
      [
        { slot: 0, index: 0, steerable: false },
        { slot: 1, index: 2, steerable: false },
      ],
      {
        order: [0, 1],
        known: false,
        slotOf: [
          [0, 0],
          [1, 1],
        ],
      },
    ],
  ])('%s', (_name, sockets, expected) => {
    const { order, known, slotOf } = handedLayout(sockets);
    expect({ order, known, slotOf: [...slotOf] }).toEqual(expected);
  });
});

describe("a group's program, over its sockets' places in the kernel's group", () => {
  const weights = new Map([
    [0, 10],
    [1, 30],
  ]);
  it.each<[string, number[], number[], Parameters<typeof groupProgram>[2], { key: string; program: number[][] }]>([
    ['a hash, slots joined 1 then 0', [1, 0], [0, 1], {}, { key: '0,1', program: steeringProgram([1, 0]) }],
    ['a hash over the one slot that listens', [1], [1], {}, { key: '1', program: steeringProgram([0]) }],
    ['weights, slots joined 1 then 0', [1, 0], [0, 1], { weights }, { key: '0:10,1:30', program: weightedProgram([1, 0], [10, 30]) }],
    ['a slot without a weight: a hash again', [0, 1], [0, 1], { weights: new Map([[0, 10]]) }, { key: '0,1', program: steeringProgram([0, 1]) }],
    [
      'CPU-local ignores weights',
      [1, 0],
      [0, 1],
      { cpuOfSlot: [0, 1], weights },
      {
        key: '0,1',
        program: cpuLocalProgram(
          new Map([
            [0, [1]],
            [1, [0]],
          ]),
          [1, 0],
        ),
      },
    ],
    ['sticky: every slot, in slot order', [0, 1, 2], [0, 1, 2], { sticky: {} }, { key: '0,1,2', program: stickyProgram([0, 1, 2]) }],
  ])('%s', (_name, order, allowed, choice, expected) => {
    const { key, program } = groupProgram({ order }, allowed, choice);
    expect({ key, program: program() }).toEqual(expected);
  });

  it('CPU-local maps each CPU to its slots at their places', () => {
    const { program } = groupProgram({ order: [2, 0, 1] }, [0, 1, 2], { cpuOfSlot: [0, 1, 0] });
    expect(program()).toEqual(
      cpuLocalProgram(new Map([...slotsByCpu([0, 1, 0], [0, 1, 2])].map(([cpu, slots]) => [cpu, slots.map((slot) => [2, 0, 1].indexOf(slot))])), [1, 2, 0]),
    );
  });
});

describe("a hand-over's socket places", () => {
  const socket = {
    fd: 4,
    slot: 0,
    address: '127.0.0.1',
    port: 3000,
    requestedAddress: '127.0.0.1',
    requestedPort: 3000,
    ipv6Only: false,
    steerable: true,
    group: false,
  };
  const text = (extra: object) => JSON.stringify({ from: 100, ready: 3, sockets: [{ ...socket, ...extra }] });
  it.each<[string, object, number | undefined]>([
    ['from an older runner: no index', {}, undefined],
    ['index 0', { index: 0 }, 0],
    ['index 4095', { index: 4095 }, 4095],
  ])('%s: adopted', (_name, extra, index) => {
    expect(parseHandover(text(extra)).sockets[0]?.index).toBe(index);
  });
  it.each<[string, unknown]>([
    ['a string', '1'],
    ['negative', -1],
    ['past 4095', 4096],
    ['a fraction', 0.5],
  ])('index %s: ERR_REUSEPORT_HANDOVER', (_name, index) => {
    expect(() => parseHandover(text({ index }))).toThrow(
      expect.objectContaining({ code: 'ERR_REUSEPORT_HANDOVER', message: expect.stringMatching(/"index" must be an integer 0\.\.4095/) }),
    );
  });
});
