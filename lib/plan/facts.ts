// Gathers what the listen plan is decided from (platform, kernel, Node, addon, cluster role, override); decides nothing.
import cluster from 'node:cluster';
import os from 'node:os';
import { getSystemErrorMap } from 'node:util';
import { type BindingLoad, loadBinding, noAddonOnWindows } from '../binding';
import { tcpWrap } from '../tcp-handle';
import { udpWrap } from '../udp-handle';

/** Where this process stands in node:cluster: a worker, a primary that forks workers, or neither. */
export type ClusterRole = 'primary' | 'worker' | 'none';

/** Everything the planner needs to know about this process and system, read once at the edges. */
export interface Facts {
  /** `process.platform`; any string, so a planner test can name a platform Node does not know. */
  platform: NodeJS.Platform | (string & {});
  /** `os.release()`: the kernel release, e.g. "6.8.0-45-generic" or "23.1.0" (Darwin). */
  release: string;
  /** This Node honours `listen({ reusePort: true })`: tcp_wrap has UV_TCP_REUSEPORT and libuv sets it on this platform (libuvReusePortPlatforms). */
  nodeReusePort: boolean;
  /**
   * This Node honours `dgram.createSocket({ reusePort: true })` (udp_wrap has UV_UDP_REUSEPORT);
   * undefined (facts made by hand) counts as no.
   */
  nodeUdpReusePort?: boolean;
  /** The native addon loaded and the kernel accepted SO_REUSEPORT in its probe. */
  addon: boolean;
  /** Why the addon is not usable, in words for a reason; undefined when `addon` is true. */
  addonError: string | undefined;
  /** This process's place in node:cluster. */
  role: ClusterRole;
  /** REUSEPORT_MODE as set (undefined when unset or empty); unknown values are kept for the planner to reject. */
  override: string | undefined;
}

/** The part of node:cluster that decides the role. */
export interface ClusterView {
  readonly isWorker: boolean;
  readonly isPrimary: boolean;
  readonly workers?: Readonly<Record<string, unknown>> | undefined;
  readonly settings?: { readonly exec?: string | undefined } | undefined;
}

/** The system edges gatherFacts reads; tests replace any of them. */
export interface FactSources {
  env: Readonly<Record<string, string | undefined>>;
  platform: string;
  release: () => string;
  tcpWrap: () => { constants: { UV_TCP_REUSEPORT?: number } };
  /** Node's udp_wrap (for dgram's reusePort); optional, so fakes written before it still type-check. */
  udpWrap?: () => { constants: { UV_UDP_REUSEPORT?: number } };
  loadBinding: () => BindingLoad;
  cluster: ClusterView;
}

// Each source falls back on its own, so a test passing `{ env: undefined }` still gets the real one.
function withDefaults(sources: Partial<FactSources>): Required<FactSources> {
  return {
    env: sources.env ?? process.env,
    platform: sources.platform ?? process.platform,
    release: sources.release ?? os.release,
    tcpWrap: sources.tcpWrap ?? tcpWrap,
    udpWrap: sources.udpWrap ?? udpWrap,
    loadBinding: sources.loadBinding ?? loadBinding,
    cluster: sources.cluster ?? cluster,
  };
}

/**
 * The platforms where libuv's bind honours UV_TCP_REUSEPORT and UV_UDP_REUSEPORT (its
 * `uv__sock_reuseport`, libuv >= 1.49): Linux (Android too), FreeBSD >= 12 (as SO_REUSEPORT_LB),
 * AIX 7.3 and Solaris 11.4 (SunOS), and DragonFly BSD, which Node does not build for. Everywhere
 * else (Windows, macOS, OpenBSD, NetBSD) libuv refuses the flag with ENOTSUP although Node still
 * exports the constant.
 */
export const libuvReusePortPlatforms: ReadonlySet<string> = new Set(['linux', 'android', 'freebsd', 'aix', 'sunos']);

// A capability probe, never a version check: Node 20 accepts `reusePort` and silently ignores it,
// and Node 22 on Windows has the constant but fails the listen with ENOTSUP.
function probeNodeReusePort(sources: Required<FactSources>): boolean {
  if (!libuvReusePortPlatforms.has(sources.platform)) return false;
  try {
    return sources.tcpWrap().constants.UV_TCP_REUSEPORT !== undefined;
  } catch {
    // process.binding may be removed or throw under --pending-deprecation=throw: then Node cannot be asked.
    return false;
  }
}

// The same for dgram: Node 20 accepts createSocket({ reusePort: true }) and silently ignores it.
function probeNodeUdpReusePort(sources: Required<FactSources>): boolean {
  if (!libuvReusePortPlatforms.has(sources.platform)) return false;
  try {
    return sources.udpWrap().constants.UV_UDP_REUSEPORT !== undefined;
  } catch {
    return false;
  }
}

function probeAddon(sources: Required<FactSources>): { addon: boolean; addonError: string | undefined } {
  // Windows has no SO_REUSEPORT at all: no addon is built there, and none is asked (an errno from
  // one would read as a kernel refusing an option it never tried).
  if (sources.platform === 'win32') return { addon: false, addonError: noAddonOnWindows };
  const load = sources.loadBinding();
  if (!load.binding) return { addon: false, addonError: load.error.message };
  let errno: number;
  try {
    errno = load.binding.probeReusePort();
  } catch (error) {
    return { addon: false, addonError: `the native addon's SO_REUSEPORT probe threw: ${(error as Error).message}` };
  }
  if (errno === 0) return { addon: true, addonError: undefined };
  const name = getSystemErrorMap().get(errno)?.[0] ?? 'unknown error';
  return { addon: false, addonError: `the kernel refused SO_REUSEPORT on a TCP socket (${name}, errno ${errno})` };
}

// "Primary" means a process that has forked workers or is about to: it has live workers, or it called
// cluster.setupPrimary()/fork(), which is what sets settings.exec. A lone process is a primary to
// node:cluster too, but has nobody to share a port with, so it is 'none'.
function clusterRole(view: ClusterView): ClusterRole {
  if (view.isWorker) return 'worker';
  if (!view.isPrimary) return 'none';
  const hasWorkers = Object.keys(view.workers ?? {}).length > 0;
  const isSetUp = view.settings?.exec !== undefined;
  return hasWorkers || isSetUp ? 'primary' : 'none';
}

/** Reads the facts from this process (or from `sources`, for tests); runs the addon's probe. */
export function gatherFacts(sources: Partial<FactSources> = {}): Facts {
  const from = withDefaults(sources);
  const override = from.env.REUSEPORT_MODE;
  return {
    platform: from.platform,
    release: from.release(),
    nodeReusePort: probeNodeReusePort(from),
    nodeUdpReusePort: probeNodeUdpReusePort(from),
    ...probeAddon(from),
    role: clusterRole(from.cluster),
    override: override === undefined || override === '' ? undefined : override,
  };
}
