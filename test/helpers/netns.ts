// Runs a scenario inside a network namespace made for it, with net.ipv4.tcp_migrate_req set there.
import { spawn } from 'node:child_process';
import path from 'node:path';

/** Whether this process may make network namespaces (root, or user namespaces as a mapped root). */
export function namespaceCommand(): string[] {
  return process.getuid?.() === 0 ? ['unshare', '--net'] : ['unshare', '--user', '--map-root-user', '--net'];
}

/** Runs test/scenarios/<runner> (run.js: reloads, crashes, stalls; deploy.js: whole-service deploys) with `config` in a new network namespace; resolves with its JSON report. */
export function runScenario<T = Record<string, unknown>>(config: object, migrate: 0 | 1, timeoutMs = 90_000, runner = 'run.js'): Promise<T> {
  const run = path.join(__dirname, '..', 'scenarios', runner);
  const [command, ...prefix] = namespaceCommand() as [string, ...string[]];
  const script = `ip link set lo up && echo ${migrate} > /proc/sys/net/ipv4/tcp_migrate_req && exec "$0" "$@"`;
  const child = spawn(command, [...prefix, '--', 'sh', '-c', script, process.execPath, run, JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      if (child.pid) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`scenario ${JSON.stringify(config)} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const last = stdout.trim().split('\n').at(-1) ?? '';
      if (code !== 0) return reject(new Error(`scenario exited with ${code}: ${stderr.slice(-2000)}`));
      try {
        resolve(JSON.parse(last) as T);
      } catch {
        reject(new Error(`scenario printed no report: ${stdout.slice(-500)} ${stderr.slice(-2000)}`));
      }
    });
  });
}

/** Why namespaces cannot be made here, or undefined when they can. */
export async function namespaceUnavailable(): Promise<string | undefined> {
  const [command, ...prefix] = namespaceCommand() as [string, ...string[]];
  return new Promise((resolve) => {
    const child = spawn(command, [...prefix, '--', 'sh', '-c', 'ip link set lo up && test -w /proc/sys/net/ipv4/tcp_migrate_req'], {
      stdio: 'ignore',
    });
    child.on('error', (error) => resolve(`cannot run ${command}: ${error.message}`));
    child.on('exit', (code) =>
      resolve(code === 0 ? undefined : `${command} ${prefix.join(' ')} failed (exit ${code}): no network namespace with a writable tcp_migrate_req`),
    );
  });
}
