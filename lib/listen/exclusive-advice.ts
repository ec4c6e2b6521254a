// What a process listening in 'exclusive' mode is told when its port is taken (pure): the cause that
// made it exclusive, and the fix for that cause.
import type { Facts } from '../plan/facts';
import { judgeKernel } from '../plan/kernel';

/** What the advice depends on. */
export interface ExclusiveContext {
  facts: Pick<Facts, 'addon' | 'nodeReusePort' | 'role' | 'platform' | 'release'>;
  /** The primary's pid, when this is a worker whose primary shared its plan (setupPrimary, startCluster, the runner). */
  primaryPid: number | undefined;
}

/** The advice appended to EADDRINUSE in 'exclusive' mode. */
export function exclusiveAdvice({ facts, primaryPid }: ExclusiveContext): string {
  if (facts.role === 'worker') {
    const who = primaryPid === undefined ? "this worker's mode option" : `its primary (pid ${primaryPid})`;
    return (
      `'exclusive' mode, chosen by ${who}, gives each process a socket of its own, so a second worker cannot listen on the port. ` +
      'Run one worker (reuseport start -i 1, startCluster({ workers: 1 })), or let the workers share the port: mode auto (the default), reuseport, round-robin or shared'
    );
  }
  const kernel = judgeKernel(facts.platform, facts.release);
  if (kernel.balances && !facts.addon && !facts.nodeReusePort) {
    return (
      'the addon is missing: npm rebuild reuseport (with a C++ toolchain installed), or use Node >= 22.12 (this Node has no listen({ reusePort: true })); ' +
      'until then this process listens alone and no other can share the port'
    );
  }
  return (
    `this process listens in 'exclusive' mode, so it cannot share the port${kernel.balances ? '' : `: ${kernel.reason}`}. ` +
    'Stop the process that holds the port, or run every process as a worker of one cluster primary (reuseport start, or startCluster)'
  );
}
