// What supervisor.stats() says of each slot (and /status, /metrics and `reuseport status` show): its
// worker, connections accepted and queued, stalls and lending, its CPU when pinned, a crash loop's
// stop, memory recycling and the balancer's view, when those are on.
import type { SlotStats } from './core/types';
import type { MemoryLimit } from './liveness/memory';
import type { StallGuard } from './liveness/stalls';
import type { Balancer } from './slots/balancer';
import type { Slot } from './slots/worker-slots';

export function slotStats(slots: readonly Slot[], parts: { stalls: StallGuard; memory?: MemoryLimit; balancer?: Balancer }): SlotStats[] {
  const { stalls, memory, balancer } = parts;
  stalls.tally();
  return slots.map((slot) => ({
    slot: slot.index,
    pid: slot.worker?.process.pid,
    accepted: slot.accepted,
    stalls: slot.stalls,
    lentTo: stalls.lentTo(slot.index)?.process.pid,
    queued: slot.queued,
    queuedPeak: slot.queuedPeak,
    cpu: slot.pinned ? slot.cpu : undefined,
    stopped: slot.stopped,
    ...(memory ? { rss: memory.rss(slot.index), memoryRestarts: memory.restarts(slot.index) } : {}),
    ...balancer?.slotStats(slot.index),
  }));
}
