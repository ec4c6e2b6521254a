// Runs a benchmark's command line (bench/run.mjs, or another bench/ script) as a user does, bounded and cleaned up after.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

export interface BenchRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node <script> args` (default bench/run.mjs), SIGTERM after `ms` (the bench then kills its servers
 * by pid) and SIGKILL 5 s later; resolves with exit code, signal and output.
 */
export function runBenchCli(args: string[], ms: number, script = 'bench/run.mjs'): Promise<BenchRun> {
  // An empty Node cache: the bench's "Node reusePort" configuration must not pick up another Node that
  // scripts/ci/node-matrix.sh cached on this machine (the suite runs every process on the Node under test).
  const noCachedNodes = mkdtempSync(path.join(os.tmpdir(), 'reuseport-bench-no-nodes-'));
  const cleanup = () => rmSync(noCachedNodes, { recursive: true, force: true });
  return new Promise<BenchRun>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, script), ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, REUSEPORT_CI_CACHE: noCachedNodes },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      // SIGTERM lets the bench kill its own servers by pid before it exits.
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      reject(new Error(`${script} did not finish within ${ms} ms\n${stderr}`));
    }, ms);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  }).finally(cleanup);
}

/** Whether a process with this pid exists (EPERM: it does, someone else's). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
