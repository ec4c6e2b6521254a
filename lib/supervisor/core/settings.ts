// startCluster's options checked and resolved once, with every default, before anything is forked.
import net from 'node:net';
import os from 'node:os';
import { loadBinding } from '../../binding';
import { badPort, invalidArgReason, invalidArgType, invalidArgValue, modeUnsupported, outOfRange } from '../../errors';
import type { Plan } from '../../plan/plan';
import type { ForkEvent, RunnerStartOptions, StartClusterOptions } from './types';

/** startCluster's options with every default resolved. */
export type SupervisorSettings = Required<Omit<StartClusterOptions, 'mode' | 'args' | 'env' | 'health' | 'shutdownSignals' | 'output'>> & {
  commandSyntax?: string;
  /** 'pipe': each worker's stdout and stderr are pipes, handed to `onFork`. */
  output: 'inherit' | 'pipe';
  onFork?: (event: ForkEvent) => void;
  env: Record<string, string>;
  health: { port: number; host: string } | undefined;
  shutdownSignals: NodeJS.Signals[];
};

const SIGNALS = new Set(Object.keys(os.constants.signals));

function shutdownSignals(value: unknown): NodeJS.Signals[] {
  if (value === undefined) return ['SIGTERM', 'SIGINT'];
  if (value === false) return [];
  if (!Array.isArray(value)) throw invalidArgType('options.shutdownSignals', 'an array of signal names or false', value);
  for (const signal of value) {
    if (typeof signal !== 'string' || !SIGNALS.has(signal) || signal === 'SIGKILL' || signal === 'SIGSTOP') {
      throw invalidArgValue('options.shutdownSignals entries', "signal names such as 'SIGTERM' (not SIGKILL or SIGSTOP)", signal);
    }
  }
  return [...new Set(value as NodeJS.Signals[])];
}

// setInterval's limit is 2^31 - 1 ms (24.8 days); under a second would make every ticket useless.
function rotation(value: unknown): number {
  const ms = positiveInteger(value, 'options.ticketKeyRotationMs', 12 * 60 * 60 * 1000, 1);
  if (ms < 1_000 || ms > 2_147_483_647) throw outOfRange('options.ticketKeyRotationMs', '>= 1000 and <= 2147483647', value);
  return ms;
}

function health(value: unknown): { port: number; host: string } | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) throw invalidArgType('options.health', 'of type object', value);
  const { port, host = '127.0.0.1' } = value as { port?: unknown; host?: unknown };
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_535) throw badPort('options.health.port', port);
  if (typeof host !== 'string' || net.isIP(host) === 0) throw invalidArgType('options.health.host', 'a numeric IP address', host);
  return { port, host };
}

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

function output(value: unknown): 'inherit' | 'pipe' {
  if (value === undefined || value === 'inherit') return 'inherit';
  if (typeof value !== 'function') throw invalidArgType('options.output', "'inherit' or a function", value);
  return 'pipe';
}

// An environment variable's name, as a shell would take it.
function instanceVar(value: unknown): string {
  if (value === undefined) return 'NODE_APP_INSTANCE';
  if (typeof value !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(value))
    throw invalidArgType('options.instanceVar', 'an environment variable name ([A-Za-z_][A-Za-z0-9_]*)', value);
  return value;
}

// Node's flags for the workers: strings, the first a flag (a word first would be taken for the script).
function nodeArgs(value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((arg) => typeof arg === 'string' && arg !== '' && !arg.includes('\0'))) {
    throw invalidArgType('options.nodeArgs', 'an array of non-empty strings', value);
  }
  if (value.length > 0 && !String(value[0]).startsWith('-'))
    throw invalidArgReason('options.nodeArgs', 'must begin with a flag (Node would run its first word as the script)', value);
  return [...(value as string[])];
}

function commandSyntax(value: unknown): string {
  if (typeof value !== 'string' || value === '' || value.length > 64) throw invalidArgType('options.commandSyntax', 'a string of 1 to 64 characters', value);
  return value;
}

// sticky: 'ip' or off; its IPv6 prefix only with it; never with cpuLocal (one program per group).
function sticky(options: StartClusterOptions): { sticky: 'ip' | false; stickyIpv6Prefix: number } {
  const { sticky: mode, stickyIpv6Prefix: prefix, cpuLocal } = options;
  if (mode !== undefined && mode !== false && mode !== 'ip') throw invalidArgValue('options.sticky', "'ip' or false", mode);
  if (prefix !== undefined) {
    if (typeof prefix !== 'number') throw invalidArgType('options.stickyIpv6Prefix', 'of type number', prefix);
    if (!Number.isInteger(prefix) || prefix < 1 || prefix > 128) throw outOfRange('options.stickyIpv6Prefix', 'an integer >= 1 and <= 128', prefix);
    if (mode !== 'ip') throw invalidArgReason('options.stickyIpv6Prefix', "needs sticky: 'ip'", prefix);
  }
  if (mode === 'ip' && cpuLocal === true) {
    throw invalidArgReason(
      'options.sticky',
      'cannot be used with cpuLocal: true (both are the steering program of the group: one picks the slot by the client address, the other by the CPU)',
      mode,
    );
  }
  return { sticky: mode === 'ip' ? 'ip' : false, stickyIpv6Prefix: prefix ?? 128 };
}

/** Checks startCluster's options (coded errors, before any side effect) and fills in the defaults. */
export function resolveSettings(options: RunnerStartOptions): SupervisorSettings {
  if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'of type object', options);
  if (typeof options.exec !== 'string' || options.exec === '') throw invalidArgType('options.exec', 'a non-empty string', options.exec);
  if (options.args !== undefined && !Array.isArray(options.args)) throw invalidArgType('options.args', 'an array', options.args);
  const stickiness = sticky(options);
  const workers = positiveInteger(options.workers, 'options.workers', os.availableParallelism());
  return {
    exec: options.exec,
    workers,
    maxDraining: positiveInteger(options.maxDraining, 'options.maxDraining', workers),
    drainTimeoutMs: positiveInteger(options.drainTimeoutMs, 'options.drainTimeoutMs', 10_000, 0),
    readyTimeoutMs: positiveInteger(options.readyTimeoutMs, 'options.readyTimeoutMs', 30_000),
    reloadOnSighup: options.reloadOnSighup === true,
    restartDelayMs: positiveInteger(options.restartDelayMs, 'options.restartDelayMs', 100, 0),
    minUptimeMs: positiveInteger(options.minUptimeMs, 'options.minUptimeMs', 1_000, 0),
    maxRestarts: positiveInteger(options.maxRestarts, 'options.maxRestarts', 16, 0),
    slotTimeoutMs: positiveInteger(options.slotTimeoutMs, 'options.slotTimeoutMs', 30_000),
    maxSocketsPerWorker: positiveInteger(options.maxSocketsPerWorker, 'options.maxSocketsPerWorker', 64),
    stallThresholdMs: positiveInteger(options.stallThresholdMs, 'options.stallThresholdMs', 80, 0),
    stallReplaceMs: positiveInteger(options.stallReplaceMs, 'options.stallReplaceMs', 30_000, 0),
    foreignCheckMs: positiveInteger(options.foreignCheckMs, 'options.foreignCheckMs', 1_000),
    cpuLocal: optionalBoolean(options.cpuLocal, 'options.cpuLocal'),
    ...stickiness,
    balance: options.balance === undefined ? true : optionalBoolean(options.balance, 'options.balance'),
    upgradeOnSigusr2: optionalBoolean(options.upgradeOnSigusr2, 'options.upgradeOnSigusr2'),
    shutdownSignals: shutdownSignals(options.shutdownSignals),
    // Kubernetes removes a terminating pod from its Services' endpoints while SIGTERM is already on
    // its way: keep serving a while, or new connections arrive at a closed port.
    shutdownDelayMs: positiveInteger(options.shutdownDelayMs, 'options.shutdownDelayMs', process.env.KUBERNETES_SERVICE_HOST ? 5_000 : 0, 0),
    health: health(options.health),
    ticketKeys: options.ticketKeys === undefined ? true : optionalBoolean(options.ticketKeys, 'options.ticketKeys'),
    ticketKeyRotationMs: rotation(options.ticketKeyRotationMs),
    // Never systemd's notify socket (the supervisor alone speaks to systemd): an undefined value
    // leaves the variable out of the worker's environment.
    env: { NOTIFY_SOCKET: undefined as unknown as string, ...options.env },
    instanceVar: instanceVar(options.instanceVar),
    nodeArgs: nodeArgs(options.nodeArgs),
    subreaper: optionalBoolean(options.subreaper, 'options.subreaper'),
    maxMemoryRestart: positiveInteger(options.maxMemoryRestart, 'options.maxMemoryRestart', 0, 0),
    register: options.register === undefined ? true : optionalBoolean(options.register, 'options.register'),
    output: output(options.output),
    ...(typeof options.output === 'function' ? { onFork: options.output } : {}),
    ...(options.commandSyntax === undefined ? {} : { commandSyntax: commandSyntax(options.commandSyntax) }),
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

/** Why sticky: 'ip' cannot run with this plan, or undefined where it can (the sockets may still refuse it: see SlotSockets). */
export function stickyUnsupported(plan: Plan): string | undefined {
  const { binding, error } = loadBinding();
  return process.platform !== 'linux'
    ? `it is Linux only (SO_ATTACH_REUSEPORT_CBPF reading the IP header), and this is ${process.platform}`
    : !binding
      ? `it needs the native addon, which did not load (${error?.message ?? 'unknown'})`
      : plan.mode !== 'reuseport' || plan.backend !== 'addon'
        ? `it needs the reuseport mode through the addon (the supervisor's slot sockets), and the plan is ${plan.mode} (${plan.backend}): ${plan.reasons.join('; ')}`
        : undefined;
}
