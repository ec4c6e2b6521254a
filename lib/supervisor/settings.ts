// startCluster's options checked and resolved once, with every default, before anything is forked.
import os from 'node:os';
import { loadBinding } from '../binding';
import { invalidArgType, modeUnsupported, outOfRange } from '../errors';
import type { Plan } from '../plan/plan';
import type { StartClusterOptions } from './types';

/** startCluster's options with every default resolved. */
export type SupervisorSettings = Required<Omit<StartClusterOptions, 'mode' | 'args' | 'env'>> & { env: Record<string, string> };

export function positiveInteger(value: unknown, name: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min) throw outOfRange(name, `an integer >= ${min}`, value);
  return value;
}

function optionalBoolean(value: unknown, name: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value);
  return value;
}

/** Checks startCluster's options (coded errors, before any side effect) and fills in the defaults. */
export function resolveSettings(options: StartClusterOptions): SupervisorSettings {
  if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'of type object', options);
  if (typeof options.exec !== 'string' || options.exec === '') throw invalidArgType('options.exec', 'a non-empty string', options.exec);
  if (options.args !== undefined && !Array.isArray(options.args)) throw invalidArgType('options.args', 'an array', options.args);
  return {
    exec: options.exec,
    workers: positiveInteger(options.workers, 'options.workers', os.availableParallelism()),
    drainTimeoutMs: positiveInteger(options.drainTimeoutMs, 'options.drainTimeoutMs', 10_000, 0),
    readyTimeoutMs: positiveInteger(options.readyTimeoutMs, 'options.readyTimeoutMs', 30_000),
    reloadOnSighup: options.reloadOnSighup === true,
    restartDelayMs: positiveInteger(options.restartDelayMs, 'options.restartDelayMs', 100, 0),
    slotTimeoutMs: positiveInteger(options.slotTimeoutMs, 'options.slotTimeoutMs', 30_000),
    stallThresholdMs: positiveInteger(options.stallThresholdMs, 'options.stallThresholdMs', 80, 0),
    stallReplaceMs: positiveInteger(options.stallReplaceMs, 'options.stallReplaceMs', 30_000, 0),
    foreignCheckMs: positiveInteger(options.foreignCheckMs, 'options.foreignCheckMs', 1_000),
    cpuLocal: optionalBoolean(options.cpuLocal, 'options.cpuLocal'),
    upgradeOnSigusr2: optionalBoolean(options.upgradeOnSigusr2, 'options.upgradeOnSigusr2'),
    env: { ...options.env },
  };
}

/** The CPUs CPU-local mode pins workers to (this process's own mask), or why it cannot run here. */
export function cpuLocalCpus(plan: Plan): number[] {
  const { binding, error } = loadBinding();
  const missing =
    process.platform !== 'linux'
      ? `it is Linux only (SO_ATTACH_REUSEPORT_CBPF with SKF_AD_CPU, sched_setaffinity), and this is ${process.platform}`
      : !binding
        ? `it needs the native addon, which did not load (${error?.message ?? 'unknown'})`
        : plan.mode !== 'reuseport' || plan.backend !== 'addon'
          ? `it needs the reuseport mode through the addon, and the plan is ${plan.mode} (${plan.backend}): ${plan.reasons.join('; ')}`
          : undefined;
  if (missing || !binding) throw modeUnsupported(`reuseport: cpuLocal cannot be used: ${missing}`);
  return binding.getCpuAffinity(0);
}
