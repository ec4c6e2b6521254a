// `reuseport status`: what a running supervisor does right now, from its health server's GET /status:
// the plan, and every slot's worker with its pid, uptime, connections accepted, queue depth and stalls.
// Given a pid (or a pid file), the health server is found among that process's listening sockets: the
// one none of its workers holds (they share the slot sockets with it, never the health socket) that
// answers GET /status (a health port on a non-loopback address does not: its loopback control listener does).
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { findPortHolders, parseListeningSockets, socketInodesOf } from '../ports/port-holders';
import type { StatusReport } from '../supervisor/fleet/health';
import { formatSize } from '../supervisor/liveness/memory';
import { UsageError } from './usage-error';

export { PID_FILE_MAX_BYTES, readPidFile } from './pid-file';

/** Where to ask: a health address, or the pid of the supervisor (from a pid file or given). */
export type StatusTarget = { healthPort: number; healthHost: string } | { pid: number };

/** A listening TCP socket from /proc/net/tcp{,6}. */
interface Listener {
  address: string;
  port: number;
  inode: string;
}

function read(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Every listening socket in a /proc/net/tcp (family 4) or tcp6 (family 6) table (parsed by
 * ports/port-holders.ts), with the address to reach it on: the IPv4 address itself (127.0.0.1 for the
 * wildcard); for IPv6 ::1, for the wildcard and loopback ones only.
 */
export function parseListeners(table: string, family: 4 | 6): Listener[] {
  return parseListeningSockets(table, family, undefined).flatMap((socket): Listener[] => {
    const wildcard = socket.address === (family === 4 ? '0.0.0.0' : '::');
    if (family === 6 && !wildcard && socket.address !== '::1') return [];
    const address = family === 4 ? (wildcard ? '127.0.0.1' : socket.address) : '::1';
    return [{ address, port: socket.port, inode: socket.inode }];
  });
}

/** The pids whose parent is `pid`. */
export function childrenOf(pid: number, procRoot: string): number[] {
  return fs
    .readdirSync(procRoot)
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      const stat = read(path.join(procRoot, entry, 'stat'));
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
    })
    .map(Number);
}

/** The loopback-reachable listeners `pid` holds and none of its children does: its health server. */
export function healthCandidates(pid: number, procRoot = '/proc', command = 'status'): Listener[] {
  if (!fs.existsSync(path.join(procRoot, String(pid)))) throw new UsageError(`reuseport ${command}: no process ${pid} is running`);
  const own = socketInodesOf(pid, procRoot);
  for (const child of childrenOf(pid, procRoot)) for (const inode of socketInodesOf(child, procRoot)) own.delete(inode);
  const all = [...parseListeners(read(path.join(procRoot, 'net', 'tcp')), 4), ...parseListeners(read(path.join(procRoot, 'net', 'tcp6')), 6)];
  return all.filter((listener) => own.has(listener.inode));
}

/** GET /status on host:port: the report, or undefined when nothing (or no reuseport health server) answers. */
export function getStatus(host: string, port: number, timeoutMs = 3_000): Promise<StatusReport | undefined> {
  return new Promise((resolve) => {
    const request = http.get({ host, port, path: '/status', agent: false, timeout: timeoutMs }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        try {
          const report = JSON.parse(body) as StatusReport;
          resolve(response.statusCode === 200 && Array.isArray(report.slots) ? report : undefined);
        } catch {
          resolve(undefined);
        }
      });
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(undefined));
  });
}

/** Finds the supervisor's health server and asks it for its status. */
export async function findHealth(target: StatusTarget, command = 'status'): Promise<{ host: string; port: number; report: StatusReport }> {
  if ('healthPort' in target) {
    const report = await getStatus(target.healthHost, target.healthPort);
    if (report) return { host: target.healthHost, port: target.healthPort, report };
    // A health port on a non-loopback address serves no GET /status: its supervisor's control listener does.
    for (const pid of healthPortHolders(target.healthPort)) {
      try {
        return await findHealth({ pid }, command);
      } catch {
        // not a supervisor: the next holder, if any
      }
    }
    throw new UsageError(`reuseport ${command}: no reuseport health server answers GET /status on ${target.healthHost}:${target.healthPort}`);
  }
  for (const candidate of healthCandidates(target.pid, '/proc', command)) {
    const report = await getStatus(candidate.address, candidate.port);
    if (report?.pid === target.pid) return { host: candidate.address, port: candidate.port, report };
  }
  throw new UsageError(
    `reuseport ${command}: process ${target.pid} serves no health server (is it \`reuseport start\` or a startCluster({ health }) supervisor?)`,
  );
}

// The processes that listen on a port (those this user may inspect).
function healthPortHolders(port: number): number[] {
  try {
    return [...new Set(findPortHolders(port).flatMap((holder) => holder.processes.map((process) => process.pid)))];
  } catch {
    return [];
  }
}

/** Asks the supervisor for its status. */
export async function fetchStatus(target: StatusTarget): Promise<StatusReport> {
  return (await findHealth(target)).report;
}

/** How long a process has run (ms), from its start time in /proc; undefined where unknown. */
export function processUptimeMs(pid: number | undefined, procRoot = '/proc'): number | undefined {
  if (pid === undefined) return undefined;
  const stat = read(path.join(procRoot, String(pid), 'stat'));
  const uptime = Number(read(path.join(procRoot, 'uptime')).split(' ')[0]);
  if (!stat || !uptime) return undefined;
  const startTicks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  // USER_HZ is 100 on every Linux Node runs on.
  return Math.max(0, Math.round((uptime - startTicks / 100) * 1000));
}

/** "3d 4h", "2h 5m", "4m 12s", "9s". */
export function formatDuration(ms: number | undefined): string {
  if (ms === undefined) return '-';
  const s = Math.floor(ms / 1000);
  const [d, h, m] = [Math.floor(s / 86_400), Math.floor((s % 86_400) / 3600), Math.floor((s % 3600) / 60)];
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

/**
 * The report with uptimes added (what --json prints): the process's, the service's (since its first
 * supervisor started, across upgrades; undefined from a supervisor that does not say) and each worker's.
 */
export function withUptimes(report: StatusReport, uptime: (pid: number | undefined) => number | undefined = processUptimeMs, now = Date.now()) {
  return {
    ...report,
    uptimeMs: uptime(report.pid),
    serviceUptimeMs: typeof report.serviceStartedAt === 'number' ? Math.max(0, now - report.serviceStartedAt) : undefined,
    slots: report.slots.map((slot) => ({ ...slot, uptimeMs: uptime(slot.pid) })),
  };
}

// The balance, on the header's second line (a supervisor of a version without it says nothing).
function balanceLine(balance: StatusReport['balance']): string {
  if (!balance) return '';
  if (!balance.enabled) return `; balance off (${balance.reason ?? 'unknown'})`;
  // The steering weights in slot order (a slot's share of new connections is its weight over their sum).
  const weights = balance.weights ? `, new connections by weight ${Object.values(balance.weights).join(':')}` : '';
  return `; balance: spread ${balance.spread}, ${balance.shed} shed${weights}${balance.paused ? ` (paused: ${balance.paused})` : ''}`;
}

/** The status as a person reads it at a glance: a header, then one row per slot. */
export function formatStatus(status: ReturnType<typeof withUptimes>): string {
  const { plan, counts } = status;
  const state = status.shuttingDown ? 'shutting down' : status.ready ? 'ready' : 'not ready (a slot is served by another worker)';
  const lines = [
    `reuseport pid ${status.pid}, up ${formatDuration(status.uptimeMs)} (the service ${formatDuration(status.serviceUptimeMs)}): ${state}`,
    `mode ${plan.mode} (${plan.backend}), port${status.ports.length === 1 ? '' : 's'} ${status.ports.join(', ') || '-'}; restarts ${counts.restarts}, reloads ${counts.reloads}, upgrades ${counts.upgrades}${balanceLine(status.balance)}`,
    '',
  ];
  const header = ['slot', 'pid', 'uptime', 'accepted', 'open', 'shed', 'queued', 'peak', 'stalls', 'served by'];
  const rows = status.slots.map((slot) => [
    String(slot.slot),
    slot.pid === undefined ? '-' : String(slot.pid),
    formatDuration(slot.uptimeMs),
    String(slot.accepted),
    slot.connections === undefined ? '-' : String(slot.connections),
    String(slot.shed ?? 0),
    String(slot.queued),
    String(slot.queuedPeak),
    String(slot.stalls),
    slot.lentTo === undefined ? 'own worker' : `pid ${slot.lentTo} (lent)`,
  ]);
  // With --max-memory-restart: each worker's RSS and how many of the slot's were replaced for memory.
  if (status.slots.some((slot) => slot.memoryRestarts !== undefined)) {
    header.push('rss', 'memory restarts');
    for (const [i, slot] of status.slots.entries()) rows[i]?.push(slot.rss === undefined ? '-' : formatSize(slot.rss), String(slot.memoryRestarts ?? 0));
  }
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)));
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
  lines.push(line(header), ...rows.map(line));
  return `${lines.join('\n')}\n`;
}
