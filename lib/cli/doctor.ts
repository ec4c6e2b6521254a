// The doctor's report: what this system can do, the plan it leads to (for UDP too, with --udp), the
// kernel settings that matter, and who holds a port (TCP listeners, or with --udp the UDP sockets
// bound to it). Collected at the edges; formatted by a pure function.
import fs from 'node:fs';
import { loadBinding } from '../binding';
import { type Facts, gatherFacts } from '../plan/facts';
import { type Plan, planListen } from '../plan/plan';
import { type DatagramPlan, planBind } from '../plan/plan-datagram';
import { readRegistration } from '../ports/ownership';
import { type PortHolder, type PortProtocol, findPortHolders } from '../ports/port-holders';

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
  /** With --udp: bindReusePort's plans for a process on its own, and for a cluster worker. */
  udpPlans?: { standalone: DatagramPlan | { error: string }; worker: DatagramPlan | { error: string } };
  sysctl: { somaxconn: number | undefined; tcpMigrateReq: number | undefined };
  warnings: string[];
  /** `holders` is read from Linux's /proc; elsewhere it is empty and `unread` says why. */
  port?: { port: number; protocol: PortProtocol; holders: DoctorHolder[]; unread?: string };
}

/** What collectDoctorReport reads from the system; tests replace them. */
export interface DoctorSources {
  facts: () => Facts;
  /** A sysctl by its dotted name (net.core.somaxconn), undefined when it cannot be read. */
  readSysctl: (name: string) => number | undefined;
}

// Only Linux has these sysctls under /proc; elsewhere a /proc that can be seen belongs to someone
// else (Windows under Wine sees the Linux host's through z:, WSL1 its own emulation).
const procPlatforms: ReadonlySet<string> = new Set(['linux', 'android']);

function readSysctl(name: string): number | undefined {
  try {
    return Number(fs.readFileSync(`/proc/sys/${name.replaceAll('.', '/')}`, 'utf8').trim());
  } catch {
    return undefined;
  }
}

function tryPlan<T extends Plan>(facts: Facts, plan: (facts: Facts) => T = planListen as (facts: Facts) => T): T | { error: string } {
  try {
    return plan(facts);
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
    const note = code === 'EADDRINUSE' ? 'it listens without SO_REUSEPORT, or as another user' : `binding beside it failed with ${code}`;
    return { canShare: 'no', shareNote: note };
  }
}

// A UDP socket bound beside the holder would receive part of its datagrams at once, so sharing is
// never tested by binding: a holder that bindReusePort registered (for this user) has SO_REUSEPORT.
function judgeUdpSharing(holder: PortHolder): Pick<DoctorHolder, 'canShare' | 'shareNote'> {
  const registration = readRegistration(holder.inode);
  if (registration) return { canShare: 'yes', shareNote: `bound by bindReusePort (pid ${registration.pid}, group ${registration.group})` };
  return {
    canShare: 'unknown',
    shareNote: 'not registered by reuseport; not tested, because a UDP socket bound beside it would take part of its datagrams',
  };
}

/** Collects the report for this machine, and for `port` when given (its UDP sockets with `udp`). */
export function collectDoctorReport(options: { port?: number; udp?: boolean } = {}, sources: Partial<DoctorSources> = {}): DoctorReport {
  const facts = (sources.facts ?? gatherFacts)();
  const read = sources.readSysctl ?? readSysctl;
  const onProc = procPlatforms.has(facts.platform);
  const sysctl = onProc
    ? { somaxconn: read('net.core.somaxconn'), tcpMigrateReq: read('net.ipv4.tcp_migrate_req') }
    : { somaxconn: undefined, tcpMigrateReq: undefined };
  const warnings: string[] = [];
  if (facts.platform === 'linux' && sysctl.tcpMigrateReq === 0) {
    warnings.push(
      'net.ipv4.tcp_migrate_req is 0: when an SO_REUSEPORT listener closes, the connections waiting in its accept queue ' +
        'are reset, e.g. on a restart. Set it to 1 (sysctl -w net.ipv4.tcp_migrate_req=1; it is per network namespace, ' +
        'so a container can set its own) and the kernel moves them to the listeners that remain.',
    );
  }
  // On Windows no addon is a fact, not a fault: there is nothing to install or fix.
  if (!facts.addon && facts.platform !== 'win32') warnings.push(`The native addon is not usable: ${facts.addonError ?? 'unknown reason'}.`);
  const report: DoctorReport = {
    facts,
    node: process.version,
    arch: process.arch,
    plans: { standalone: tryPlan({ ...facts, role: 'none' }), worker: tryPlan({ ...facts, role: 'worker' }) },
    sysctl,
    warnings,
  };
  if (options.udp) {
    report.udpPlans = { standalone: tryPlan({ ...facts, role: 'none' }, planBind), worker: tryPlan({ ...facts, role: 'worker' }, planBind) };
  }
  if (options.port !== undefined) {
    const protocol: PortProtocol = options.udp ? 'udp' : 'tcp';
    if (!onProc) {
      report.port = { port: options.port, protocol, holders: [], unread: `who holds a port is read from Linux's /proc, which ${facts.platform} has not` };
      return report;
    }
    const holders = findPortHolders(options.port, '/proc', protocol).map((holder) => ({
      ...holder,
      ...(protocol === 'udp' ? judgeUdpSharing(holder) : probeSharing(holder)),
    }));
    report.port = { port: options.port, protocol, holders };
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
    `addon:           ${facts.addon ? 'loaded; the kernel accepts SO_REUSEPORT' : `${facts.platform === 'win32' ? 'none' : 'not usable'}: ${facts.addonError}`}`,
    `REUSEPORT_MODE:  ${facts.override ?? '(unset)'}`,
    `somaxconn:       ${report.sysctl.somaxconn ?? 'n/a'}`,
    `tcp_migrate_req: ${report.sysctl.tcpMigrateReq ?? 'n/a'}`,
    '',
    `plan, one process:   ${describePlan(report.plans.standalone).join('\n  ')}`,
    `plan, cluster worker: ${describePlan(report.plans.worker).join('\n  ')}`,
  ];
  if (report.udpPlans) {
    lines.push(
      `UDP plan, one process:   ${describePlan(report.udpPlans.standalone).join('\n  ')}`,
      `UDP plan, cluster worker: ${describePlan(report.udpPlans.worker).join('\n  ')}`,
    );
  }
  if (report.port) {
    const udp = report.port.protocol === 'udp';
    lines.push('', `port ${report.port.port}${udp ? ' (UDP)' : ''}:`);
    if (report.port.unread) lines.push(`  not looked up: ${report.port.unread}`);
    else if (report.port.holders.length === 0) lines.push(udp ? '  no UDP socket is bound to it' : '  nothing listens on it');
    for (const holder of report.port.holders) {
      const who = holder.processes.length
        ? holder.processes.map((p) => `pid ${p.pid} (${p.command || '?'})`).join(', ')
        : `a socket of uid ${holder.uid} whose process this user cannot see`;
      const share = holder.canShare === 'yes' && !holder.shareNote ? 'yes' : `${holder.canShare} (${holder.shareNote})`;
      lines.push(`  ${holder.address}:${holder.port} held by ${who}; can share with us: ${share}`);
    }
  }
  if (report.warnings.length) lines.push('', ...report.warnings.map((w) => `warning: ${w}`));
  return `${lines.join('\n')}\n`;
}
