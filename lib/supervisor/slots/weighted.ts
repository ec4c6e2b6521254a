// Steering by load: a classic BPF program that picks among an SO_REUSEPORT group's sockets by weight,
// and the choice of weights from the workers' loads (both pure). The supervisor's balancer rebuilds
// the program from the loads (balancer.ts); slot-sockets.ts attaches it to each group.
import { type Instruction, opcodes as op } from './steering';

/** Loads at this offset read a random 32-bit number (SKF_AD_OFF + SKF_AD_RANDOM). */
export const AD_RANDOM = 0x100000000 - 0x1000 + 56;
/** Each serving slot's weight when the loads are equal (2 slots: 32 and 32 of 64). */
export const WEIGHT_SHARE = 32;
/** Weights are multiples of this (the least weight a serving slot gets, so none is ever left out). */
export const WEIGHT_STEP = 2;
/** The weights in force are kept until one slot's new weight is this far from its old one (hysteresis). */
export const WEIGHT_HYSTERESIS = 4;
/**
 * How strongly a slot's deviation from the mean load moves its weight: 50% under the mean is GAIN *
 * 50% over its share. At 0.5 the weights of two slots are at most 16:48 (1:3): the loads are read
 * every LOAD_MS and the program swapped at most every 250 ms, so under short connections they are
 * already old when they steer; a stronger gain (1.5 was tried: 2:80 for 4/0) herded the new
 * connections onto one worker and back, and a client that reconnects at once found the same worker
 * 90% of the time.
 */
export const WEIGHT_GAIN = 0.5;
/** A mean of open connections at or under this is noise (one connection on one of two workers), not a load to steer by. */
export const OPEN_FLOOR = 1;
/** Event-loop utilisation under which the workers' loops count as idle (their differences are noise then). */
export const BUSY_FLOOR = 0.05;
/** The most a weight may be (the program compares A with their sum, which must stay small). */
const MAX_WEIGHT = 0xffff;

/**
 * A program that sends each new connection to one of the sockets at `indexes` (their places in the
 * group) with a probability proportional to its weight: A = a random number (the kernel's, per
 * packet), A %= the weights' sum, then A is compared with the running sums and the first bucket it
 * falls under names the socket. Every listed socket has a weight of at least 1, so none is left out.
 * The choice is not tied to the client: a retransmitted SYN that the first one's request did not
 * catch (it was dropped) may land elsewhere, where it is as welcome.
 */
export function weightedProgram(indexes: readonly number[], weights: readonly number[]): Instruction[] {
  if (indexes.length === 0) throw new RangeError('a weighted program needs at least one socket to steer to');
  if (weights.length !== indexes.length) throw new RangeError(`${indexes.length} socket(s) but ${weights.length} weight(s)`);
  for (const index of indexes) {
    if (!Number.isInteger(index) || index < 0 || index > 0xffff) throw new RangeError(`bad socket index ${index}`);
  }
  if (new Set(indexes).size !== indexes.length) throw new RangeError(`a weighted program's sockets must differ (${indexes.join(',')})`);
  for (const weight of weights) {
    if (!Number.isInteger(weight) || weight < 1 || weight > MAX_WEIGHT) throw new RangeError(`bad weight ${weight}: an integer 1-${MAX_WEIGHT}`);
  }
  if (indexes.length === 1) return [[op.RET | op.K, 0, 0, indexes[0] as number]];
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  const program: Instruction[] = [
    [op.LD | op.W | op.ABS, 0, 0, AD_RANDOM], // A = random
    [op.ALU | op.MOD | op.K, 0, 0, total], // A = 0..total-1
  ];
  let below = 0;
  indexes.forEach((index, position) => {
    below += weights[position] as number;
    // A under the running sum: this socket's bucket; else over its return to the next test.
    if (position < indexes.length - 1) program.push([op.JMP | op.JGE | op.K, 1, 0, below]);
    program.push([op.RET | op.K, 0, 0, index]);
  });
  return program;
}

/** A serving slot's load as the steering weighs it: open connections, smoothed event-loop utilisation (0-1), connections accepted since the last look. */
export interface SteeringLoad {
  open: number;
  busy: number;
  accepted?: number;
}

/**
 * Whether every slot's connections turn over by themselves (pure): each accepted since the last look
 * at least as many as it holds open. Open counts are then a snapshot of connections a few
 * milliseconds old, whose differences are noise that would swap the program for nothing.
 */
export function churning(loads: readonly SteeringLoad[]): boolean {
  return loads.length > 0 && loads.every((load) => (load.accepted ?? 0) >= Math.max(load.open, 1));
}

// Each load's deviation from the mean, relative to the mean, in -1..1 (0 when the mean is 0 or under `floor`).
function deviations(values: number[], floor: number): number[] {
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
  if (mean <= floor) return values.map(() => 0);
  return values.map((value) => Math.max(-1, Math.min(1, (mean - value) / mean)));
}

/**
 * The steering weights of the serving slots from their loads (pure): each slot's WEIGHT_SHARE,
 * moved up when its load is under the mean and down when over it (its deviation from the mean in
 * open connections plus, when the loops are not idle, in event-loop utilisation, each relative to
 * the mean, together within -1..1, times WEIGHT_GAIN), in steps of WEIGHT_STEP and never under
 * WEIGHT_STEP: equal loads give equal
 * weights, and no serving slot gets none. While every slot's connections turn over by themselves
 * (churning), only event-loop use counts. `previous` (the weights in force, same order) is kept
 * while every new weight is within WEIGHT_HYSTERESIS of it, so that small moves of the loads do not
 * rebuild the program.
 */
export function steeringWeights(loads: readonly SteeringLoad[], previous?: readonly number[]): number[] {
  if (loads.length === 0) return [];
  const byOpen = churning(loads)
    ? loads.map(() => 0)
    : deviations(
        loads.map((load) => load.open),
        OPEN_FLOOR,
      );
  const byBusy = deviations(
    loads.map((load) => load.busy),
    BUSY_FLOOR,
  );
  const weights = loads.map((_, i) => {
    const deviation = Math.max(-1, Math.min(1, (byOpen[i] as number) + (byBusy[i] as number)));
    const weight = WEIGHT_STEP * Math.round((WEIGHT_SHARE * (1 + WEIGHT_GAIN * deviation)) / WEIGHT_STEP);
    return Math.max(WEIGHT_STEP, weight);
  });
  if (previous && previous.length === weights.length && weights.every((weight, i) => Math.abs(weight - (previous[i] as number)) < WEIGHT_HYSTERESIS)) {
    return [...previous];
  }
  return weights;
}
