// `reuseport` run as a user runs it: the built CLI (dist/cli/main.js) in a child process, its lines
// read as they come (JSON objects with --json, else words), every pid it names kept to be killed.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { exitAfterOutput } from './exit';
import type { SeenProcesses } from './pids';

export const cli = path.join(__dirname, '..', '..', 'dist', 'cli', 'main.js');

/** A line the runner printed: its JSON object, or for a words line { event, text }. */
export interface RunnerLine {
  event: string;
  text?: string;
  [field: string]: unknown;
}

export interface Runner {
  child: ChildProcess;
  lines: RunnerLine[];
  next(match: (line: RunnerLine) => boolean, after?: number, timeoutMs?: number): Promise<RunnerLine>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
  stderr(): string;
}

/** Starts `reuseport ...args` (as another user with `as`, on the Node at `as.execPath` if given); the pids it names are added to `seen`. */
export function startRunner(
  args: string[],
  seen: SeenProcesses,
  env: NodeJS.ProcessEnv = {},
  as: { uid?: number; gid?: number; execPath?: string } = {},
): Runner {
  const { execPath = process.execPath, ...ids } = as;
  const child = spawn(execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, ...ids });
  seen.add(child.pid);
  const lines: RunnerLine[] = [];
  let all = '';
  let partial = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => (stderr += chunk));
  child.stdout?.on('data', (chunk: string) => {
    all += chunk;
    partial += chunk;
    for (let end = partial.indexOf('\n'); end >= 0; end = partial.indexOf('\n')) {
      const text = partial.slice(0, end);
      partial = partial.slice(end + 1);
      let line: RunnerLine;
      try {
        line = JSON.parse(text) as RunnerLine;
      } catch {
        line = { event: text.split(' ')[0] ?? '', text };
      }
      for (const key of ['pid', 'to']) if (typeof line[key] === 'number') seen.add(line[key] as number);
      for (const key of ['workers', 'pids']) if (Array.isArray(line[key])) for (const pid of line[key] as number[]) seen.add(pid);
      lines.push(line);
    }
  });
  const exited = exitAfterOutput(child);
  const next = async (match: (line: RunnerLine) => boolean, after = 0, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = lines.slice(after).find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no such line within ${timeoutMs} ms: ${all} ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return { child, lines, next, exited, stdout: () => all, stderr: () => stderr };
}

/** `reuseport ...args` run to its end (bounded). */
export function runCli(args: string[], timeoutMs = 60_000): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** `reuseport ...args` run to its end, asynchronously (the runner it talks to is this test's child). */
export function runCliAsync(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export { freePort } from './ports';
