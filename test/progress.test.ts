// Progress cells on a real file: the supervisor's board (unlinked at once) and a worker's cell opened
// through /proc/<pid>/fd, here both in this process (pid = this one), as a forked worker opens its
// supervisor's. What the checks make of them is in stall-guard.test.ts; workers under load in supervisor.test.ts.
import type { Worker } from 'node:cluster';
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ProgressBoard, boardDirectory } from '../lib/supervisor/slots/progress-board';
import { BOARD_BYTES, BOARD_CELLS, CELL_BYTES, PROGRESS_ENV, ProgressCell, parseProgressEnv, progressEnvValue } from '../lib/worker/progress';

const boards: ProgressBoard[] = [];
afterEach(() => {
  for (const board of boards.splice(0)) board.close();
});

function openBoard(): ProgressBoard {
  const board = ProgressBoard.open();
  if (!(board instanceof ProgressBoard)) throw board;
  boards.push(board);
  return board;
}

// A cell for the next worker (a test failure if none could be given).
function assign(board: ProgressBoard): { cell: number; env: Record<string, string> } {
  const assigned = board.assign();
  if (!assigned) throw new Error('no cell was assigned');
  return assigned;
}

const workers = new Map<number, Worker>();
// The same fake worker for the same id (the board knows workers by identity).
const worker = (id: number): Worker => workers.get(id) ?? (workers.set(id, { id } as unknown as Worker).get(id) as Worker);

describe('the environment entry', () => {
  it.each([
    ['3:0:64', { fd: 3, cell: 0 }],
    ['27:12:64', { fd: 27, cell: 12 }],
    ['27:1023:64', { fd: 27, cell: 1023 }],
    // Another layout's entry (8-byte cells before the load fields, 32-byte ones before the cache-line
    // cells): no cell, pings instead.
    ['3:0', undefined],
    ['3:0:8', undefined],
    ['3:0:32', undefined],
    // Past the file's end.
    ['27:1024:64', undefined],
    [undefined, undefined],
    ['', undefined],
    ['3', undefined],
    ['3:', undefined],
    [':1', undefined],
    ['-3:1', undefined],
    ['3:1:2', undefined],
    ['3:1:64:1', undefined],
    ['1234567890:1:64', undefined],
    ['3:x', undefined],
  ])('%j -> %j', (value, expected) => {
    expect(parseProgressEnv(value)).toEqual(expected);
  });

  it('is what progressEnvValue writes', () => {
    expect(parseProgressEnv(progressEnvValue(19, 4))).toEqual({ fd: 19, cell: 4 });
  });
});

describe('ProgressBoard', () => {
  it('lives on tmpfs where there is one, else in the temporary directory', () => {
    expect(boardDirectory(() => true, '/var/tmp')).toBe('/dev/shm');
    expect(boardDirectory(() => false, '/var/tmp')).toBe('/var/tmp');
  });

  it('says why there is none off Linux', () => {
    const board = ProgressBoard.open('darwin');
    expect(board).toBeInstanceOf(Error);
    expect((board as Error).message).toMatch(/Linux only.*darwin/);
  });

  it('says why there is none when its directory cannot be written', () => {
    const board = ProgressBoard.open('linux', '/nonexistent-reuseport-dir');
    expect(board).toBeInstanceOf(Error);
    expect((board as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('leaves no file behind: the file is unlinked as soon as it is open', () => {
    const board = openBoard();
    const { env } = assign(board);
    const { fd } = parseProgressEnv(env[PROGRESS_ENV]) as { fd: number };
    const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
    expect(target).toMatch(/reuseport-\d+-[0-9a-f]{16} \(deleted\)$/);
    expect(fs.existsSync(target.replace(/ \(deleted\)$/, ''))).toBe(false);
    expect((fs.fstatSync(fd).mode & 0o777).toString(8)).toBe('600');
  });

  it('sees a cell move when its worker accepts, and stand still when it does not', () => {
    const board = openBoard();
    const first = assign(board);
    const second = assign(board);
    expect([first.cell, second.cell]).toEqual([0, 1]);
    board.bind(worker(1), first.cell);
    board.bind(worker(2), second.cell);
    const one = ProgressCell.open(first.env, process.pid) as ProgressCell;
    const two = ProgressCell.open(second.env, process.pid) as ProgressCell;
    expect(one).toBeInstanceOf(ProgressCell);

    one.accepted();
    board.read();
    expect([board.moved(worker(1)), board.moved(worker(2))]).toEqual([true, false]);
    board.read();
    expect(board.moved(worker(1))).toBe(false);

    two.accepted();
    board.read();
    expect([board.moved(worker(1)), board.moved(worker(2))]).toEqual([false, true]);
  });

  it('a cell moves on every accept: a store into the mapped file, seen by the next read', () => {
    const board = openBoard();
    const assigned = assign(board);
    board.bind(worker(1), assigned.cell);
    const cell = ProgressCell.open(assigned.env, process.pid) as ProgressCell;
    for (let accept = 1; accept <= 3; accept++) {
      cell.accepted();
      board.read();
      expect(board.moved(worker(1))).toBe(true);
      expect(board.loads().get(worker(1))?.accepted).toBe(accept);
    }
  });

  it('is a file of BOARD_BYTES from the start, so a mapped cell is never past its end', () => {
    const board = openBoard();
    const { env } = assign(board);
    const { fd } = parseProgressEnv(env[PROGRESS_ENV]) as { fd: number };
    expect(fs.fstatSync(fd).size).toBe(BOARD_BYTES);
    expect(BOARD_BYTES).toBe(BOARD_CELLS * CELL_BYTES);
    // 64-byte cells: two workers storing on every accept never write the same cache line.
    expect(CELL_BYTES).toBe(64);
  });

  it('gives no cell past BOARD_CELLS workers alive at once (those are pinged), and the first released one again', () => {
    const board = openBoard();
    for (let i = 0; i < BOARD_CELLS; i++) board.bind(worker(1000 + i), assign(board).cell);
    expect(board.assign()).toBeUndefined();
    board.release(worker(1007));
    expect(board.assign()?.cell).toBe(7);
  });

  it('says why there is none without the addon, which maps the file', () => {
    const board = ProgressBoard.open('linux', '/dev/shm', () => undefined);
    expect(board).toBeInstanceOf(Error);
    expect((board as Error).message).toMatch(/native addon/);
  });

  it("shows each worker's load (open connections, connections shed, accepted so far) apart from its accepts' comparison", () => {
    const board = openBoard();
    const first = assign(board);
    const second = assign(board);
    board.bind(worker(1), first.cell);
    board.bind(worker(2), second.cell);
    const one = ProgressCell.open(first.env, process.pid) as ProgressCell;
    const two = ProgressCell.open(second.env, process.pid) as ProgressCell;
    expect([...board.loads().values()]).toEqual([
      { open: 0, shed: 0, busy: 0, accepted: 0 },
      { open: 0, shed: 0, busy: 0, accepted: 0 },
    ]);
    one.load(3, 1, 0.5);
    two.load(1, 0, 0.25);
    expect(board.loads().get(worker(1))).toEqual({ open: 3, shed: 1, busy: 0.5, accepted: 0 });
    expect(board.loads().get(worker(2))).toEqual({ open: 1, shed: 0, busy: 0.25, accepted: 0 });
    // Reading the loads leaves the accept counts' comparison alone, and a load is not an accept.
    board.read();
    one.accepted();
    board.loads();
    board.read();
    expect([board.moved(worker(1)), board.moved(worker(2))]).toEqual([true, false]);
    two.load(5, 2, 1);
    board.read();
    expect(board.moved(worker(2))).toBe(false);
    expect(board.loads().get(worker(1))).toEqual({ open: 3, shed: 1, busy: 0.5, accepted: 1 });
  });

  it("a released cell starts the next worker's load from zero too", () => {
    const board = openBoard();
    const first = assign(board);
    board.bind(worker(1), first.cell);
    (ProgressCell.open(first.env, process.pid) as ProgressCell).load(7, 4, 0.75);
    board.release(worker(1));
    const again = assign(board);
    board.bind(worker(2), again.cell);
    expect(board.loads().get(worker(2))).toEqual({ open: 0, shed: 0, busy: 0, accepted: 0 });
    expect(board.loads().has(worker(1))).toBe(false);
  });

  it('gives no cell once closed', () => {
    const board = openBoard();
    board.close();
    expect(board.assign()).toBeUndefined();
    board.read();
  });

  it('a worker without a cell is neither moving nor still', () => {
    const board = openBoard();
    board.read();
    expect(board.moved(worker(9))).toBeUndefined();
  });

  it('gives a released cell to the next worker, from zero', () => {
    const board = openBoard();
    const first = assign(board);
    board.bind(worker(1), first.cell);
    (ProgressCell.open(first.env, process.pid) as ProgressCell).accepted();
    board.release(worker(1));
    const again = assign(board);
    expect(again.cell).toBe(first.cell);
    board.bind(worker(2), again.cell);
    board.read();
    board.read();
    expect(board.moved(worker(2))).toBe(false);
    expect(board.moved(worker(1))).toBeUndefined();
  });
});

describe('ProgressCell.open', () => {
  it('has no cell without the entry, with a malformed one, or with an fd the supervisor does not have', () => {
    expect(ProgressCell.open({}, process.pid)).toBeUndefined();
    expect(ProgressCell.open({ [PROGRESS_ENV]: 'nonsense' }, process.pid)).toBeUndefined();
    expect(ProgressCell.open({ [PROGRESS_ENV]: progressEnvValue(999_999, 0) }, process.pid)).toBeUndefined();
  });

  it('has no cell without the addon, or when the fd is no regular file (mapShared refuses it)', () => {
    const board = openBoard();
    const { env } = assign(board);
    expect(ProgressCell.open(env, process.pid, () => undefined)).toBeUndefined();
    // fd 0 of this process: a pipe or a terminal, never a regular file.
    expect(ProgressCell.open({ [PROGRESS_ENV]: progressEnvValue(0, 0) }, process.pid)).toBeUndefined();
  });

  it('leaves no fd open in the worker: the mapping outlives it', () => {
    const board = openBoard();
    const assigned = assign(board);
    board.bind(worker(1), assigned.cell);
    const before = fs.readdirSync('/proc/self/fd').length;
    const cell = ProgressCell.open(assigned.env, process.pid) as ProgressCell;
    expect(fs.readdirSync('/proc/self/fd').length).toBe(before);
    cell.accepted();
    board.read();
    expect(board.moved(worker(1))).toBe(true);
  });

  it('has no cell when the supervisor is gone', () => {
    const board = openBoard();
    const { env } = assign(board);
    // A pid above the kernel's limit is no process.
    const limit = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
    expect(ProgressCell.open(env, limit + 1)).toBeUndefined();
  });
});
