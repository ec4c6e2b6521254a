// A reload: every worker replaced, a canary first, then the other slots in waves. Old workers drain side
// by side; a new worker that does not start or dies young keeps its slot's old worker serving and stops
// the reload after its wave.
import type { Worker } from 'node:cluster';
import type { SupervisorSettings } from '../core/settings';
import type { ReloadFailure, ReloadResult } from '../core/types';
import type { Slot } from './slot';
import type { WorkerSlots } from './worker-slots';

/**
 * Replaces every worker: a canary first (slot 0's new worker listens and lives minUptimeMs from its
 * start before its old one drains), then the other slots in waves, every new worker of a wave
 * started at once and each living minUptimeMs before its own old worker drains; so a reload takes
 * about two minUptimeMs plus start-up, whatever the count. maxDraining caps the extra processes
 * alive at once (new workers waiting plus old ones draining), so it caps a wave: 1 is one slot at
 * a time. A new worker that does not start or dies within minUptimeMs leaves its slot's old worker
 * serving and stops the reload after its wave (ERR_REUSEPORT_RELOAD_FAILED, naming the slots); the
 * wave's other slots keep their new workers. Resolves once every old worker is gone, with what
 * their drains cut.
 */
export async function replaceAll(workers: WorkerSlots, settings: SupervisorSettings): Promise<ReloadResult> {
  const drains: Promise<{ pid: number; cut: number; killed: boolean }>[] = [];
  const draining = new Set<Promise<unknown>>();
  const finish = async (): Promise<ReloadResult> => {
    const results = await Promise.all(drains);
    return {
      pids: workers.pids,
      cut: results.reduce((sum, result) => sum + result.cut, 0),
      killed: results.flatMap((result) => (result.killed ? [result.pid] : [])),
    };
  };
  const drainOld = (old: Worker) => {
    const pid = old.process.pid ?? 0;
    const drain = workers.stop(old).then((result) => ({ pid, ...result }));
    const tracked = drain.finally(() => draining.delete(tracked));
    draining.add(tracked);
    drains.push(drain);
  };
  let next = 0;
  while (next < workers.slots.length && !workers.closing) {
    while (draining.size >= settings.maxDraining) await Promise.race(draining);
    const size = reloadWaveSize({ next, slots: workers.slots.length, maxDraining: settings.maxDraining, draining: draining.size });
    const wave = workers.slots.slice(next, next + size);
    next += size;
    const outcomes = await Promise.all(wave.map((slot) => startReplacement(workers, settings, slot)));
    const failures: Error[] = [];
    outcomes.forEach((outcome, i) => {
      const slot = wave[i] as Slot;
      if (outcome instanceof Error) {
        failures.push(asReloadFailure(outcome, slot));
        return;
      }
      // The supervisor began to close meanwhile: the new worker goes with the others.
      if (!slot.life.can('adopt')) {
        workers.stop(outcome).catch(() => undefined);
        return;
      }
      // Adopted: the slot serves with it, a stopped one restarts again (its crash count from zero).
      const old = slot.worker;
      slot.worker = outcome;
      slot.life.fire('adopt');
      if (old) drainOld(old);
    });
    if (failures.length > 0) {
      // The drains under way still end (they are not awaited by a failed reload).
      void finish();
      throw waveFailure(failures, wave, next < workers.slots.length);
    }
  }
  return finish();
}

/**
 * Replaces one serving slot's worker as a reload does (memory recycling): the new one listens and
 * lives minUptimeMs, takes the slot, and the old one drains. The error why not: the old one serves on.
 */
export async function replaceOne(workers: WorkerSlots, settings: SupervisorSettings, slot: Slot): Promise<{ old: Worker; worker: Worker } | Error> {
  const old = slot.worker;
  const outcome = await startReplacement(workers, settings, slot);
  if (outcome instanceof Error) return outcome;
  if (!old || slot.worker !== old || !slot.life.can('adopt')) {
    workers.stop(outcome).catch(() => undefined);
    return new Error(`reuseport: slot ${slot.index} changed while its new worker started`);
  }
  slot.worker = outcome;
  slot.life.fire('adopt');
  workers.stop(old).catch(() => undefined);
  return { old, worker: outcome };
}

// One slot's new worker in a reload: forked, listening, and alive minUptimeMs from its start; or the error why not.
async function startReplacement(workers: WorkerSlots, settings: SupervisorSettings, slot: Slot): Promise<Worker | Error> {
  try {
    const forked = workers.fork(slot);
    await forked.listening;
    await livesMinUptime(workers, settings, forked.worker, slot);
    return forked.worker;
  } catch (error) {
    return error as Error;
  }
}

// A reload's new worker must live minUptimeMs from its start before the old one drains (it throws a ReloadFailure).
async function livesMinUptime(workers: WorkerSlots, settings: SupervisorSettings, worker: Worker, slot: Slot): Promise<void> {
  const left = settings.minUptimeMs - (performance.now() - (workers.forkedAt(worker) ?? 0));
  if (left > 0 && !worker.isDead()) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, left);
      function done() {
        clearTimeout(timer);
        worker.off('exit', done);
        resolve();
      }
      worker.once('exit', done);
    });
  }
  if (!worker.isDead()) return;
  const { exitCode, signalCode } = worker.process;
  const error = new Error(
    `reuseport: the reload stopped at slot ${slot.index}: its new worker (pid ${worker.process.pid}) exited (${signalCode ?? exitCode}) ` +
      `within minUptimeMs (${settings.minUptimeMs} ms) of its start; slot ${slot.index} and the slots after it keep their old workers`,
  );
  throw Object.assign(error, { code: 'ERR_REUSEPORT_RELOAD_FAILED', slot: slot.index, slots: [slot.index], pid: worker.process.pid }) as ReloadFailure;
}

// A new worker that did not start: the reload's error says where it stopped, and keeps the worker's own error as its cause.
function asReloadFailure(error: Error, slot: Slot): ReloadFailure {
  if ((error as Partial<ReloadFailure>).code === 'ERR_REUSEPORT_RELOAD_FAILED') return error as ReloadFailure;
  const failure = new Error(
    `reuseport: the reload stopped at slot ${slot.index}: its new worker did not start (${error.message}); slot ${slot.index} and the slots after it keep their old workers`,
    { cause: error },
  );
  return Object.assign(failure, { code: 'ERR_REUSEPORT_RELOAD_FAILED' as const, slot: slot.index, slots: [slot.index], pid: undefined });
}

/**
 * How many slots a reload's next wave replaces at once: the first slot alone (the canary), then as
 * many as maxDraining leaves room for beside the old workers still draining (at least one).
 */
export function reloadWaveSize(state: { next: number; slots: number; maxDraining: number; draining: number }): number {
  const left = state.slots - state.next;
  if (left <= 0) return 0;
  if (state.next === 0) return 1;
  return Math.max(1, Math.min(left, state.maxDraining - state.draining));
}

// A wave's failures as one error: a wave of one keeps its slot's own error; a wider wave names every
// failed slot (the wave's other slots kept their new workers) and keeps the first error as its cause.
function waveFailure(failures: Error[], wave: Slot[], more: boolean): ReloadFailure {
  const first = failures[0] as ReloadFailure;
  if (wave.length === 1) return first;
  const slots = failures.map((failure) => (failure as ReloadFailure).slot);
  const passed = wave.length - slots.length;
  const error = new Error(
    `reuseport: the reload stopped after the wave of slots ${wave[0]?.index}-${wave.at(-1)?.index}: the new workers of slot${slots.length > 1 ? 's' : ''} ` +
      `${slots.join(', ')} did not start or died within minUptimeMs (first: ${first.message.replace(/^reuseport: /, '')}); ` +
      `${slots.length > 1 ? 'those slots keep' : 'that slot keeps'} ${slots.length > 1 ? 'their' : 'its'} old worker${slots.length > 1 ? 's' : ''}` +
      `${passed > 0 ? `, the wave's other ${passed} slot${passed > 1 ? 's' : ''} kept ${passed > 1 ? 'their' : 'its'} new worker${passed > 1 ? 's' : ''}` : ''}` +
      `${more ? ', and the slots after the wave keep their old workers' : ''}`,
    { cause: first },
  );
  return Object.assign(error, { code: 'ERR_REUSEPORT_RELOAD_FAILED' as const, slot: slots[0] as number, slots, pid: first.pid });
}
