// startCluster(): the supervisor in the cluster primary, started. Resolves the settings, chooses the
// plan, sets node:cluster up for the workers (the hook preloaded, the Node flags), takes over sockets
// an upgrade's predecessor or systemd passed, and starts the supervisor (cluster-supervisor.ts).
import cluster from 'node:cluster';
import fs from 'node:fs';
import path from 'node:path';
import { limitReservations, setupPrimary } from '../cluster/setup-primary';
import { modeUnsupported, outOfRange } from '../errors';
import type { Plan } from '../plan/plan';
import { ClusterSupervisor } from './cluster-supervisor';
import { type SupervisorSettings, cpuLocalCpus, resolveSettings, stickyUnsupported } from './core/settings';
import type { StartClusterOptions, Supervisor } from './core/types';
import { closeHandedFds, takeHandover } from './deploy/handover';
import { readHandedKey, reportToPredecessor } from './deploy/successor';
import { takeListenFds } from './deploy/systemd';
import { slotCpus } from './slots/affinity';
import { MAX_STICKY_SLOTS } from './slots/steering';

/**
 * The workers' Node flags: this process's, and the hook (reuseport/register) unless `register` is
 * false. A hook loaded twice (the flags had it already) installs once.
 */
export function workerExecArgv(register: boolean, execArgv: string[] = process.execArgv, hook: string = hookPath()): string[] {
  return register ? [...execArgv, '--require', hook] : [...execArgv];
}

// dist/register/index.js beside this build (dist/supervisor/start-cluster.js); the package's own
// subpath where this file runs from its TypeScript source (the tests).
function hookPath(): string {
  const beside = path.join(__dirname, '..', 'register', 'index.js');
  return fs.existsSync(beside) ? beside : require.resolve('reuseport/register');
}

// sticky: 'ip' needs the slot sockets and a program that fits: an error before anything is forked.
function checkSticky(plan: Plan, settings: SupervisorSettings): void {
  const why = stickyUnsupported(plan);
  if (why) throw modeUnsupported(`reuseport: sticky: 'ip' cannot be used: ${why}`);
  if (settings.workers > MAX_STICKY_SLOTS)
    throw outOfRange('options.workers', `at most ${MAX_STICKY_SLOTS} with sticky: 'ip' (the kernel's limit on the program's length)`, settings.workers);
}

/**
 * Starts a supervised cluster in the primary: forks `workers` copies of `exec`, each of which calls
 * listenReusePort as usual, and resolves once every one listens, no new listen came for a short
 * while (LISTEN_SETTLE_MS) and no slot socket a worker asked for is still on its way, so a second
 * port listened on right after the first is in `ports`.
 */
export async function startCluster(options: StartClusterOptions): Promise<Supervisor> {
  const settings = resolveSettings(options);
  // A successor of an upgrade adopts its predecessor's sockets instead of opening new ones.
  const handover = takeHandover();
  // Sockets systemd passes back (its fd store, a socket unit); an upgrade's hand-over comes first.
  const listenFds = takeListenFds();
  let adopting = false;
  try {
    const plan = setupPrimary({ mode: options.mode ?? 'auto' });
    limitReservations(settings.maxSocketsPerWorker, settings.slotTimeoutMs);
    if (settings.sticky) checkSticky(plan, settings);
    const cpus = settings.cpuLocal ? slotCpus(settings.workers, cpuLocalCpus(plan)) : undefined;
    cluster.setupPrimary({
      exec: settings.exec,
      args: options.args ?? [],
      execArgv: workerExecArgv(settings.register, [...process.execArgv, ...settings.nodeArgs]),
      ...(settings.output === 'pipe' ? { stdio: ['inherit', 'pipe', 'pipe', 'ipc'] } : {}),
    });
    const supervisor = new ClusterSupervisor(plan, settings, cpus);
    if (settings.onFork) supervisor.on('fork', settings.onFork);
    try {
      adopting = handover !== undefined;
      if (handover) {
        supervisor.inheritTicketKey(handover.keys === undefined ? undefined : readHandedKey(handover.keys));
        supervisor.adopt(handover);
      } else if (listenFds) supervisor.adoptListenFds(listenFds);
      await supervisor.start();
      supervisor.serving();
    } catch (error) {
      await supervisor.close();
      throw error;
    }
    if (handover) reportToPredecessor(handover.ready, { ready: true });
    return supervisor;
  } catch (error) {
    if (handover) {
      reportToPredecessor(handover.ready, { error: (error as Error).message });
      if (!adopting) closeHandedFds(handover.sockets);
    }
    throw error;
  }
}
