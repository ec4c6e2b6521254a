// The doctor's report: what this system can do, the plan it leads to, the kernel settings that
// matter, and who holds a port. Collected at the edges; formatted by a pure function.
import fs from 'node:fs';
import { loadBinding } from '../binding';
import { type Facts, gatherFacts } from '../plan/facts';
import { type Plan, planListen } from '../plan/plan';
import { type PortHolder, findPortHolders } from '../ports/port-holders';

/** A port holder and whether an SO_REUSEPORT socket of ours could join it. */
export interface DoctorHolder extends PortHolder {
  /** 'yes': it set SO_REUSEPORT and is ours to join; 'no': binding beside it failed; 'unknown': not tested. */
  canShare: 'yes' | 'no' | 'unknown';
  /** Why, when not 'yes'. */
  shareNote?: string;
}

/** Everything `reuseport doctor` prints. */
export interface DoctorReport {
  facts: Facts;
  node: string;
  arch: string;
  /** The plan for a process on its own, and for a cluster worker. */
  plans: { standalone: Plan | { error: string }; worker: Plan | { error: string } };
  sysctl: { somaxconn: number | undefined; tcpMigrateReq: number | undefined };
  warnings: string[];
  port?: { port: number; holders: DoctorHolder[] };
}

function readSysctl(name: string): number | undefined {
  try {
    return Number(fs.readFileSync(`/proc/sys/${name.replaceAll('.', '/')}`, 'utf8').trim());
  } catch {
    return undefined;
  }
}

function tryPlan(facts: Facts): Plan | { error: string } {
  try {
    return planListen(facts);
  } catch (error) {
    return { error: (error as Error).message };
  }
}

// Binds (never listens) an SO_REUSEPORT socket beside the holder: success means a listenReusePort
// there would join its group; EADDRINUSE means it did not set SO_REUSEPORT or is another user's.
function probeSharing(holder: PortHolder): Pick<DoctorHolder, 'canShare' | 'shareNote'> {
  const { binding } = loadBinding();
  if (!binding) return { canShare: 'unknown', shareNote: 'the native addon is not loaded, so this was not tested' };
  const address = holder.address.startsWith('::ffff:') ? holder.address.slice(7) : holder.address;
  try {
    const socket = binding.openListener({ address, port: holder.port, ipv6Only: holder.family === 6, listen: false });
    fs.closeSync(socket.fd);
    return { canShare: 'yes' };
  } catch (error) {
    const code = (error as { code?: string }).code ?? 'an error';
    const note =
      code === 'EADDRINUSE'
        ? 'it listens without SO_REUSEPORT, or as another user'
        : `binding beside it failed with ${code}`;
    return { canShare: 'no', shareNote: note };
  }
}

/** Collects the report for this machine, and for `port` when given. */
export function collectDoctorReport(options: { port?: number } = {}): DoctorReport {
  const facts = gatherFacts();
  const sysctl = { somaxconn: readSysctl('net.core.somaxconn'), tcpMigrateReq: readSysctl('net.ipv4.tcp_migrate_req') };
  const warnings: string[] = [];
  if (facts.platform === 'linux' && sysctl.tcpMigrateReq === 0) {
    warnings.push(
      'net.ipv4.tcp_migrate_req is 0: when an SO_REUSEPORT listener closes, the connections waiting in its accept queue ' +
        'are reset, e.g. on a restart. Set it to 1 (sysctl -w net.ipv4.tcp_migrate_req=1; it is per network namespace, ' +
        'so a container can set its own) and the kernel moves them to the listeners that remain.',
    );
  }
  if (!facts.addon) warnings.push(`The native addon is not usable: ${facts.addonError ?? 'unknown reason'}.`);
  const report: DoctorReport = {
    facts,
    node: process.version,
    arch: process.arch,
    plans: { standalone: tryPlan({ ...facts, role: 'none' }), worker: tryPlan({ ...facts, role: 'worker' }) },
    sysctl,
    warnings,
  };
  if (options.port !== undefined) {
    const holders = findPortHolders(options.port).map((holder) => ({ ...holder, ...probeSharing(holder) }));
    report.port = { port: options.port, holders };
  }
  return report;
}

function describePlan(plan: Plan | { error: string }): string[] {
  if ('error' in plan) return [`error: ${plan.error}`];
  return [`${plan.mode} (backend: ${plan.backend})`, ...plan.reasons.map((reason) => `  - ${reason}`)];
}

/** The report as lines of text for a terminal. */
export function formatDoctorReport(report: DoctorReport): string {
  const { facts } = report;
  const lines = [
    'reuseport doctor',
    `platform:        ${facts.platform} ${report.arch}, kernel ${facts.release}`,
    `node:            ${report.node} (honours reusePort: ${facts.nodeReusePort ? 'yes' : 'no'})`,
    `addon:           ${facts.addon ? 'loaded; the kernel accepts SO_REUSEPORT' : `not usable: ${facts.addonError}`}`,
    `REUSEPORT_MODE:  ${facts.override ?? '(unset)'}`,
    `somaxconn:       ${report.sysctl.somaxconn ?? 'n/a'}`,
    `tcp_migrate_req: ${report.sysctl.tcpMigrateReq ?? 'n/a'}`,
    '',
    `plan, one process:   ${describePlan(report.plans.standalone).join('\n  ')}`,
    `plan, cluster worker: ${describePlan(report.plans.worker).join('\n  ')}`,
  ];
  if (report.port) {
    lines.push('', `port ${report.port.port}:`);
    if (report.port.holders.length === 0) lines.push('  nothing listens on it');
    for (const holder of report.port.holders) {
      const who = holder.processes.length
        ? holder.processes.map((p) => `pid ${p.pid} (${p.command || '?'})`).join(', ')
        : `a socket of uid ${holder.uid} whose process this user cannot see`;
      const share = holder.canShare === 'yes' ? 'yes' : `${holder.canShare} (${holder.shareNote})`;
      lines.push(`  ${holder.address}:${holder.port} held by ${who}; can share with us: ${share}`);
    }
  }
  if (report.warnings.length) lines.push('', ...report.warnings.map((w) => `warning: ${w}`));
  return `${lines.join('\n')}\n`;
}
