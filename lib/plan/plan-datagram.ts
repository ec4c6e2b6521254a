// Decides how a UDP socket shares its port: the TCP plan, adapted to what node:cluster does for dgram.
// Pure: facts and options in, plan out.
import { modeUnsupported } from '../errors';
import type { Facts } from './facts';
import { type Plan, type PlanOptions, planListen } from './plan';
import type { DatagramMode } from '../types';

/** How to bind a UDP socket, who makes it, and why. */
export interface DatagramPlan extends Plan {
  mode: DatagramMode;
}

/** Why node:cluster's UDP sharing is a shared handle whatever the scheduling policy is. */
export const clusterUdpReason =
  'node:cluster shares a UDP port only as one socket that the primary binds and every worker receives on ' +
  '(it has no round-robin for UDP, whatever cluster.schedulingPolicy says)';

// The TCP plan's sentences, worded for dgram where they name a TCP call.
function forDatagram(reasons: string[]): string[] {
  return reasons.map((reason) =>
    reason
      .replaceAll('listen({ reusePort: true })', 'dgram.createSocket({ reusePort: true })')
      .replaceAll('listens alone', 'binds alone')
      .replaceAll('its own listen (exclusive: true, not through the cluster primary)', 'its own bind (exclusive: true, not through the cluster primary)')
      .replaceAll('a plain listen', 'a plain bind')
      .replaceAll('new connections', 'datagrams'),
  );
}

/**
 * Decides how to bind a UDP socket. The same choice as planListen (with this Node's dgram reusePort
 * as Node's capability), except that node:cluster's UDP sharing is always the shared handle: a worker
 * that cannot have its own socket gets the primary's, on Windows (where node:cluster has no UDP at
 * all) it binds alone, and an explicit 'round-robin' is refused.
 */
export function planBind(facts: Facts, options?: PlanOptions): DatagramPlan {
  const plan = planListen({ ...facts, nodeReusePort: facts.nodeUdpReusePort ?? false }, options);
  const reasons = forDatagram(plan.reasons);
  if (plan.mode === 'reuseport' || plan.mode === 'exclusive') return { ...plan, mode: plan.mode, reasons };
  // planListen has already refused an unknown mode; a cluster mode here was asked for or chosen.
  const asked = options?.mode ?? 'auto';
  const explicit = asked !== 'auto' || (facts.override !== undefined && facts.override !== 'auto');
  if (facts.platform === 'win32') {
    if (explicit) {
      throw modeUnsupported(
        `The mode '${plan.mode}' was chosen explicitly, but node:cluster cannot share a UDP socket on Windows (ENOTSUP). Choose 'auto' or 'exclusive'.`,
      );
    }
    // The last TCP sentence said this worker uses the cluster's shared handle; for UDP it cannot.
    return {
      mode: 'exclusive',
      backend: 'node',
      reasons: [
        ...reasons.slice(0, -1),
        'This process is a cluster worker, but node:cluster cannot share a UDP socket on Windows (ENOTSUP), so this worker binds alone (exclusive: true): a second process on this port will get EADDRINUSE.',
      ],
    };
  }
  if (plan.mode === 'round-robin' && explicit) {
    throw modeUnsupported(`The mode 'round-robin' was chosen explicitly, but ${clusterUdpReason}. Choose 'shared', 'auto' or 'reuseport'.`);
  }
  // The last sentence said how the TCP cluster mode works; UDP has only the shared socket.
  const how = `This process is a cluster worker, and ${clusterUdpReason}: it receives on the primary's shared socket.`;
  return { mode: 'shared', backend: 'cluster', reasons: [...reasons.slice(0, -1), how] };
}
