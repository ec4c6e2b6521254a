// The worker's progress cell (see supervisor/slots/progress-board.ts). Its first field: how many
// connections this worker has accepted, written into its cell of the supervisor's file at most every
// PROGRESS_MS while it accepts; one pwrite, no message, no timer. The supervisor sees the cell move and
// leaves the worker alone; it asks (a ping) only when connections wait for a worker whose cell stands
// still. Its load fields (open connections, connections shed, how busy its event loop was) are written
// by worker/balance.ts's timer.
import fs from 'node:fs';

export const PROGRESS_ENV = 'REUSEPORT_PROGRESS';
/** Float64 fields per cell (native byte order; both ends run on the same machine). */
export const CELL_FIELDS = 4;
/** The fields: connections accepted; open connections; connections shed; event-loop utilisation (worker/balance.ts). */
export const ACCEPTED_FIELD = 0;
export const OPEN_FIELD = 1;
export const SHED_FIELD = 2;
export const BUSY_FIELD = 3;
/** Bytes per cell. */
export const CELL_BYTES = CELL_FIELDS * 8;
/**
 * At most one write per this many ms (the supervisor looks every 40 ms while connections arrive, 20 ms
 * while a stall is under way). A worker that keeps accepting writes at least every 2 x PROGRESS_MS,
 * so its cell moves between any two looks. Each write is a pwrite through fs.writeSync (about 10-20 us
 * here): every 5 ms it cost a worker about 0.7% of its CPU under `wrk -c32` with a new connection per
 * request (perf); every 10 ms, half that.
 */
export const PROGRESS_MS = 10;

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
  if (!match || Number(match[3]) !== CELL_BYTES) return undefined;
  return { fd: Number(match[1]), cell: Number(match[2]) };
}

/** One worker's cell, open for writing. */
export class ProgressCell {
  readonly #fd: number;
  readonly #position: number;
  readonly #value = new Float64Array(1);
  readonly #bytes: Buffer;
  readonly #load = new Float64Array(3);
  readonly #loadBytes: Buffer;
  #lastWrite = Number.NEGATIVE_INFINITY;
  #accepted = 0;
  #broken = false;

  private constructor(fd: number, cell: number) {
    this.#fd = fd;
    this.#position = cell * CELL_BYTES;
    this.#bytes = Buffer.from(this.#value.buffer);
    this.#loadBytes = Buffer.from(this.#load.buffer);
  }

  /**
   * Opens the cell the supervisor (pid `supervisorPid`) assigned in `env`; undefined when it assigned
   * none or the file cannot be opened (not Linux, another user): the worker then answers pings only.
   */
  static open(env: NodeJS.ProcessEnv, supervisorPid: number): ProgressCell | undefined {
    const where = parseProgressEnv(env[PROGRESS_ENV]);
    if (!where) return undefined;
    try {
      return new ProgressCell(fs.openSync(`/proc/${supervisorPid}/fd/${where.fd}`, 'r+'), where.cell);
    } catch {
      return undefined;
    }
  }

  /** One more connection accepted: written now unless the last write was under PROGRESS_MS ago. */
  accepted(now = performance.now()): void {
    this.#accepted += 1;
    if (this.#broken || now - this.#lastWrite < PROGRESS_MS) return;
    this.#lastWrite = now;
    this.#value[0] = this.#accepted;
    this.#write(this.#bytes, ACCEPTED_FIELD);
  }

  /** The worker's load (one pwrite of the three fields): its open connections, the connections it has shed so far, its event-loop utilisation (0-1). */
  load(open: number, shed: number, busy: number): void {
    if (this.#broken) return;
    this.#load[0] = open;
    this.#load[1] = shed;
    this.#load[2] = busy;
    this.#write(this.#loadBytes, OPEN_FIELD);
  }

  #write(bytes: Buffer, field: number): void {
    try {
      fs.writeSync(this.#fd, bytes, 0, bytes.length, this.#position + field * 8);
    } catch {
      // The supervisor is gone (its file with it) or the disk is full: pings still work.
      this.#broken = true;
    }
  }
}
