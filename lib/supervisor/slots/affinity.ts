// CPU-local mode: which CPU each worker slot is pinned to, which slots serve each CPU, and the
// pinning itself (Linux sched_setaffinity through the addon, for every thread of a worker).
import fs from 'node:fs';
import type { NativeBinding } from '../../binding';

/** Slot i's CPU: the allowed CPUs in turn (slot 0 on the first, ...; more slots than CPUs wrap). */
export function slotCpus(slots: number, allowed: readonly number[]): number[] {
  if (allowed.length === 0) throw new RangeError('no CPU to pin workers to');
  return Array.from({ length: slots }, (_, slot) => allowed[slot % allowed.length] as number);
}

/**
 * For the CPU-local program: each CPU and the group indexes of the slots pinned to it, among the
 * slots `present` in the group (a slot whose socket was closed is left out).
 */
export function slotsByCpu(cpuOfSlot: readonly number[], present: readonly number[]): Map<number, number[]> {
  const table = new Map<number, number[]>();
  for (const slot of present) {
    const cpu = cpuOfSlot[slot];
    if (cpu === undefined) continue;
    table.set(cpu, [...(table.get(cpu) ?? []), slot]);
  }
  return table;
}

/** The thread ids of a process (Linux /proc/<pid>/task); [pid] where that cannot be read. */
export function threadsOf(pid: number): number[] {
  try {
    return fs
      .readdirSync(`/proc/${pid}/task`)
      .map(Number)
      .filter((tid) => Number.isInteger(tid) && tid > 0);
  } catch {
    return [pid];
  }
}

/**
 * Pins every thread of process `pid` to `cpu` (threads it starts later inherit the mask of the one
 * that starts them). Returns how many threads were pinned; a thread that ended meanwhile is skipped.
 */
export function pinProcess(binding: NativeBinding, pid: number, cpu: number): number {
  let pinned = 0;
  for (const tid of threadsOf(pid)) {
    try {
      binding.setCpuAffinity(tid, [cpu]);
      pinned += 1;
    } catch (error) {
      if ((error as { code?: string }).code !== 'ESRCH') throw error;
    }
  }
  return pinned;
}
