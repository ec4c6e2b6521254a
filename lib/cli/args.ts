// The command line's values and its two syntaxes, as pure functions: ports, counts, durations, pids,
// the worker count (`-i max`, `-i -1` as PM2 has them), and how a `reuseport start` command line is
// read. Since 0.2 runner options go anywhere before `--` and the script's own arguments after it
// (PM2's way); before, everything after the script was the script's. An upgrade's successor reruns
// its predecessor's command line, so the hand-over says which syntax that line was written in.
import os from 'node:os';
import { InvalidArgumentError } from 'commander';
import { HANDOVER_ENV } from '../supervisor/deploy/handover';
import type { ModeChoice } from '../plan/plan';
import { splitNodeArgs } from './launchers';
import { parseSize } from '../supervisor/liveness/memory';

/** The exit code of every usage error (a bad flag, value, target or script). */
export const USAGE_EXIT = 2;

/**
 * How a `reuseport start` command line is read. 'options-anywhere': runner options anywhere before
 * `--`, the script's arguments after it (this version). 'options-before-script': options only before
 * the script, everything after it the script's (0.1, whose hand-over names no syntax).
 */
export type CommandSyntax = 'options-anywhere' | 'options-before-script';

export const COMMAND_SYNTAX: CommandSyntax = 'options-anywhere';

/**
 * The syntax to read this process's command line with: this version's, unless it is an upgrade's
 * successor whose predecessor wrote its line in another (a 0.1 predecessor names none: 0.1's syntax).
 */
export function commandSyntaxFor(env: NodeJS.ProcessEnv): CommandSyntax {
  const text = env[HANDOVER_ENV];
  if (text === undefined) return COMMAND_SYNTAX;
  let said: unknown;
  try {
    said = (JSON.parse(text) as { commandSyntax?: unknown } | null)?.commandSyntax;
  } catch {
    // A malformed hand-over is refused by startCluster, with its reason; read the line as ours meanwhile.
    return COMMAND_SYNTAX;
  }
  return said === 'options-anywhere' ? 'options-anywhere' : 'options-before-script';
}

export function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) throw new InvalidArgumentError('a port is an integer from 0 to 65535.');
  return port;
}

export const MAX_WORKERS = 4096;

/**
 * A worker count as PM2's `-i` takes it: N (1..4096), `max` or 0 (every CPU this process may use),
 * -N (all of them but N, at least 1).
 */
export function parseWorkers(value: string, cpus: number = os.availableParallelism()): number {
  if (value === 'max' || value === '0') return cpus;
  if (/^-\d+$/.test(value)) return Math.max(1, cpus - Number(value.slice(1)));
  const count = Number(value);
  if (!/^\d+$/.test(value) || count > MAX_WORKERS) {
    throw new InvalidArgumentError(`a count is an integer from 1 to ${MAX_WORKERS}, max (every CPU) or -N (every CPU but N).`);
  }
  return count;
}

/** A plain count, 1..4096. */
export function parseCount(value: string): number {
  const count = Number(value);
  if (!/^\d+$/.test(value) || count < 1 || count > MAX_WORKERS) throw new InvalidArgumentError(`a count is an integer from 1 to ${MAX_WORKERS}.`);
  return count;
}

/** How many restarts in a row: a whole number, 0 (never restart a crash) up to 2^31 - 1. */
export function parseRestarts(value: string): number {
  const count = Number(value);
  if (!/^\d+$/.test(value) || count > 2_147_483_647)
    throw new InvalidArgumentError('a number of restarts is a whole number (0: a worker that dies young is not restarted).');
  return count;
}

export function parseMs(value: string): number {
  const ms = Number(value);
  if (!/^\d+$/.test(value) || ms > 2_147_483_647) throw new InvalidArgumentError('a duration is a whole number of milliseconds.');
  return ms;
}

export function parseMode(value: string): ModeChoice {
  if (!['auto', 'reuseport', 'round-robin', 'shared', 'exclusive'].includes(value))
    throw new InvalidArgumentError('one of auto, reuseport, round-robin, shared, exclusive.');
  return value as ModeChoice;
}

export function parsePid(value: string): number {
  const pid = Number(value);
  if (!/^\d+$/.test(value) || pid < 1 || pid > 4_194_304) throw new InvalidArgumentError('a pid is a positive integer.');
  return pid;
}

/** An environment variable's name (`--instance-var`), as a shell takes it. */
export function parseEnvName(value: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(value)) throw new InvalidArgumentError('a variable name is letters, digits and _, not starting with a digit.');
  return value;
}

/** `--node-args "<flags>"`: Node's flags for every worker, split as a shell splits words; the first must be a flag. */
export function parseNodeArgs(value: string): string[] {
  let words: string[];
  try {
    words = splitNodeArgs(value);
  } catch (error) {
    throw new InvalidArgumentError(`${(error as Error).message}.`);
  }
  if (words.length === 0 || !words[0]?.startsWith('-'))
    throw new InvalidArgumentError('Node flags, beginning with one: "--import tsx", "--max-old-space-size=512".');
  return words;
}

/** `--max-memory-restart <size>`, PM2's syntax (200M, 1G, 512K, bytes), in bytes. */
export function parseMemorySize(value: string): number {
  const bytes = parseSize(value);
  if (bytes === undefined)
    throw new InvalidArgumentError(`a size is a number of bytes with K, M or G after it, as PM2 writes it (200M, 1G): '${value}' is not one.`);
  return bytes;
}

/** What to say of a flag `reuseport start` does not know (with this version's syntax). */
export function unknownStartOption(flag: string): string {
  return (
    `reuseport start: unknown option '${flag}'. Runner options go anywhere before \`--\`; ` +
    `the script's own arguments go after it: reuseport start [options] <script> -- ${flag} ...`
  );
}
