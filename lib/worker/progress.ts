// The worker's progress cell (see supervisor/slots/progress-board.ts). Its first field: how many
// connections this worker has accepted from its own slot, stored into its cell of the supervisor's
// file on every accept; the file is mapped shared into both processes (the addon's mapShared), so a
// store is all a worker pays, with no syscall, no message and no timer. The supervisor sees the cell move and leaves
// the worker alone; it asks (a ping) only when connections wait for a worker whose cell stands still.
// Its load fields (open connections, connections shed, how busy its event loop was) are written by
// worker/balance.ts's timer.
import fs from 'node:fs';
import { type NativeBinding, loadBinding } from '../binding';

export const PROGRESS_ENV = 'REUSEPORT_PROGRESS';
/**
 * Float64 fields per cell (native byte order; both ends run on the same machine): 8, a cache line of
 * 64 bytes, so that two workers storing their counts on every accept never write the same line.
 */
export const CELL_FIELDS = 8;
/** The fields in use: connections accepted from the worker's own slot (stats count them from here); open connections; connections shed; event-loop utilisation (worker/balance.ts). The rest are spare. */
export const ACCEPTED_FIELD = 0;
export const OPEN_FIELD = 1;
export const SHED_FIELD = 2;
export const BUSY_FIELD = 3;
/** Bytes per cell. */
export const CELL_BYTES = CELL_FIELDS * 8;
/** Cells in a supervisor's file (workers alive at once, draining ones included; a worker past them has no cell and is pinged). */
export const BOARD_CELLS = 1024;
/** The file's size: it is this long from the start, so a mapped cell is never past its end. */
export const BOARD_BYTES = BOARD_CELLS * CELL_BYTES;

/**
 * The environment entry's value: the supervisor's fd of the file, the worker's cell, and the cell's
 * size (a copy of this package with another layout finds no cell, and is pinged instead).
 */
export function progressEnvValue(fd: number, cell: number): string {
  return `${fd}:${cell}:${CELL_BYTES}`;
}

/** Parses the entry (pure); undefined when missing, malformed, or of another cell size. */
export function parseProgressEnv(value: string | undefined): { fd: number; cell: number } | undefined {
  const match = /^(\d{1,9}):(\d{1,9}):(\d{1,4})$/.exec(value ?? '');
  if (!match || Number(match[3]) !== CELL_BYTES || Number(match[2]) >= BOARD_CELLS) return undefined;
  return { fd: Number(match[1]), cell: Number(match[2]) };
}

/** One worker's cell, mapped for writing. */
export class ProgressCell {
  readonly #fields: Float64Array;
  #accepted = 0;

  private constructor(fields: Float64Array) {
    this.#fields = fields;
  }

  /**
   * Maps the cell the supervisor (pid `supervisorPid`) assigned in `env`; undefined when it assigned
   * none, or the file cannot be opened or mapped (not Linux, another user, no addon): the worker then
   * answers pings only.
   */
  static open(env: NodeJS.ProcessEnv, supervisorPid: number, addon: () => NativeBinding | undefined = () => loadBinding().binding): ProgressCell | undefined {
    const where = parseProgressEnv(env[PROGRESS_ENV]);
    const binding = where && addon();
    if (!where || !binding) return undefined;
    let fd: number | undefined;
    try {
      fd = fs.openSync(`/proc/${supervisorPid}/fd/${where.fd}`, 'r+');
      // From the file's start (a mapping starts on a page), as far as the end of this cell.
      const end = (where.cell + 1) * CELL_BYTES;
      return new ProgressCell(new Float64Array(binding.mapShared(fd, end), where.cell * CELL_BYTES, CELL_FIELDS));
    } catch {
      return undefined;
    } finally {
      // The mapping outlives the fd.
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  /** One more connection accepted from the worker's own slot: stored at once (a store into shared memory, no syscall). */
  accepted(): void {
    this.#fields[ACCEPTED_FIELD] = ++this.#accepted;
  }

  /** The worker's load: its open connections, the connections it has shed so far, its event-loop utilisation (0-1). */
  load(open: number, shed: number, busy: number): void {
    this.#fields[OPEN_FIELD] = open;
    this.#fields[SHED_FIELD] = shed;
    this.#fields[BUSY_FIELD] = busy;
  }
}
