// Processes a test saw (by pid) and kills afterwards, only while each pid is still the same process:
// a pid that exited may be reused by someone else's process, which must never be signalled.
import fs from 'node:fs';

/** A process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or undefined if it is gone. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** The parent pid of a process (field 4 of /proc/<pid>/stat), or undefined if it is gone. */
export function parentOf(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** Whether a process with this pid exists (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids seen by a test, each with the start time it had then. */
export class SeenProcesses {
  readonly #seen = new Map<number, string>();

  add(pid: number | undefined): void {
    if (!pid || this.#seen.has(pid)) return;
    const started = startTimeOf(pid);
    if (started) this.#seen.set(pid, started);
  }

  /** SIGKILLs every seen process that is still the same process, and forgets them all. */
  killAll(): void {
    for (const [pid, started] of this.#seen) {
      if (startTimeOf(pid) !== started) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    this.#seen.clear();
  }
}
