// The steering program a group of slot sockets gets (pure): sticky by the client's address, by the
// balancer's weights, CPU-local, or a hash over the allowed slots, each returning the sockets'
// indexes in the kernel's group (SocketGroup.order), with the key that tells whether the program
// attached now is already this one. slot-sockets.ts attaches it.
import { slotsByCpu } from './affinity';
import type { SocketGroup } from './socket-group';
import { kernelIndexes } from './socket-group';
import { type Instruction, type StickyOptions, cpuLocalProgram, steeringProgram, stickyProgram } from './steering';
import { weightedProgram } from './weighted';

/** How a supervisor steers: sticky, CPU-local (each slot's CPU), by weights (by slot), else by hash. */
export interface ProgramChoice {
  sticky?: StickyOptions;
  cpuOfSlot?: readonly number[];
  weights?: ReadonlyMap<number, number>;
}

/**
 * The program over `allowed` (slots with a socket in the group) and its key (pure). The program is
 * built only when asked for: the balancer steers every group on each change of weights, and a group
 * whose key is the one attached keeps its program. Sticky: by the
 * client's address over the slots in slot order (a sticky group holds every slot's socket in slot
 * order). Weighted where every allowed slot has a weight and the mode is not CPU-local. CPU-local:
 * each CPU to its slots, a CPU with no slot hashed over all. Else a hash over them.
 */
export function groupProgram(
  group: Pick<SocketGroup, 'order'>,
  allowed: readonly number[],
  choice: ProgramChoice,
): { key: string; program: () => Instruction[] } {
  if (choice.sticky) return { key: allowed.join(','), program: () => stickyProgram(allowed, choice.sticky) };
  const indexes = kernelIndexes(group, allowed);
  const weights = allowed.map((slot) => choice.weights?.get(slot));
  if (!choice.cpuOfSlot && weights.every((weight) => weight !== undefined)) {
    return { key: allowed.map((slot, i) => `${slot}:${weights[i]}`).join(','), program: () => weightedProgram(indexes, weights as number[]) };
  }
  const key = allowed.join(',');
  const { cpuOfSlot } = choice;
  if (!cpuOfSlot) return { key, program: () => steeringProgram(indexes) };
  return {
    key,
    program: () => cpuLocalProgram(new Map([...slotsByCpu(cpuOfSlot, allowed)].map(([cpu, slots]) => [cpu, kernelIndexes(group, slots)])), indexes),
  };
}
