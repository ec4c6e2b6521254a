// The runner's pid file, in a directory other users may write to (/run, /tmp, a shared app dir):
// its path is checked before anything starts (a symlink, a directory or any other non-regular file is
// refused), it is written through a temporary file of an unpredictable name opened with O_EXCL and
// O_NOFOLLOW, then renamed over the path (a rename never follows a symlink), and it is read bounded.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from './usage-error';

/** The most a pid file is read: a pid and its newline fit many times over. */
export const PID_FILE_MAX_BYTES = 64;

/** How many temporary names writePidFile tries before it gives up (each is new and random). */
const TEMP_ATTEMPTS = 8;

/**
 * Checks a pid file's path before anything is started (`--pid-file`): a file name, in a directory that
 * exists, and nothing there yet but a regular file (a symbolic link is refused, not followed).
 * Returns the absolute path.
 */
export function checkPidFilePath(value: string, command = 'start'): string {
  if (value === '') throw new UsageError(`reuseport ${command}: --pid-file needs a file name, not ''`);
  const file = path.resolve(value);
  const dir = path.dirname(file);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UsageError(`reuseport ${command}: the pid file's directory ${dir} does not exist`);
  refuseOddFile(file, command);
  return file;
}

// What is at the path now, if anything, must be a regular file.
function refuseOddFile(file: string, command: string): void {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(file);
  } catch {
    return;
  }
  if (stat.isSymbolicLink()) throw new UsageError(`reuseport ${command}: the pid file ${file} is a symbolic link: refused (name the file itself)`);
  if (stat.isDirectory()) throw new UsageError(`reuseport ${command}: the pid file ${file} is a directory`);
  if (!stat.isFile()) throw new UsageError(`reuseport ${command}: the pid file ${file} is not a regular file`);
}

/** A temporary name beside `file` that no other user can guess. */
export function temporaryName(file: string): string {
  return `${file}.${crypto.randomBytes(8).toString('hex')}.tmp`;
}

/**
 * Writes `pid` to `file`: into a new temporary file beside it (O_CREAT | O_EXCL | O_NOFOLLOW: a name
 * planted first, a symlink above all, is never opened; another name is tried), then renamed over
 * `file`, so a reader never sees half a pid. A symbolic link or directory at `file` is refused.
 */
export function writePidFile(file: string, pid = process.pid, nameFor: (file: string) => string = temporaryName, command = 'start'): void {
  refuseOddFile(file, command);
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  for (let attempt = 1; ; attempt++) {
    const temporary = nameFor(file);
    let fd: number;
    try {
      fd = fs.openSync(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST' && attempt < TEMP_ATTEMPTS) continue;
      throw error;
    }
    try {
      fs.writeSync(fd, `${pid}\n`);
      fs.closeSync(fd);
      fs.renameSync(temporary, file);
    } catch (error) {
      fs.rmSync(temporary, { force: true });
      throw error;
    }
    return;
  }
}

/**
 * The pid a pid file names. Only a regular file is read (a FIFO, /dev/zero or a directory is a
 * usage error, opened without blocking), and at most PID_FILE_MAX_BYTES of it.
 */
export function readPidFile(file: string, command = 'status'): number {
  const where = path.resolve(file);
  let text: string;
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
    if (!fs.fstatSync(fd).isFile()) throw new UsageError(`reuseport ${command}: the pid file ${where} is not a regular file`);
    const buffer = Buffer.alloc(PID_FILE_MAX_BYTES + 1);
    const length = fs.readSync(fd, buffer, 0, buffer.length, 0);
    if (length > PID_FILE_MAX_BYTES)
      throw new UsageError(`reuseport ${command}: the pid file ${where} holds no pid (it is longer than ${PID_FILE_MAX_BYTES} bytes)`);
    text = buffer.toString('utf8', 0, length);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`reuseport ${command}: cannot read the pid file ${where} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  const trimmed = text.trim();
  const pid = /^\d{1,10}$/.test(trimmed) ? Number(trimmed) : Number.NaN;
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new UsageError(`reuseport ${command}: the pid file ${where} holds no pid`);
  return pid;
}

/** Removes the pid file while it names `pid` (after an upgrade it names the successor); a link is left alone. */
export function removePidFile(file: string, pid = process.pid): void {
  try {
    if (fs.lstatSync(file).isFile() && readPidFile(file) === pid) fs.rmSync(file);
  } catch {
    // gone already, or not ours
  }
}
