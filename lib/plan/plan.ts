// Decides how to listen from the gathered facts: a pure function from facts (and options) to a plan with reasons.
import { invalidArgType, invalidArgValue, modeUnsupported } from '../errors';
import type { ClusterRole, Facts } from './facts';
import { type KernelBalancing, judgeKernel } from './kernel';
import type { ListenBackend, ListenMode } from '../types';

/** A mode the caller may ask for: one of the listen modes, or 'auto' to let the planner choose. */
export type ModeChoice = 'auto' | ListenMode;

/** What the caller asks of the planner. */
export interface PlanOptions {
  /**
   * 'auto' (the default) decides from the facts, or takes REUSEPORT_MODE when it is set; any other
   * mode is explicit, wins over REUSEPORT_MODE, and throws where this system cannot do it.
   */
  mode?: ModeChoice;
}

/** How to listen, who makes the socket, and why, in sentences a person can read. */
export interface Plan {
  mode: ListenMode;
  backend: ListenBackend;
  reasons: string[];
}

const modes: readonly ListenMode[] = ['reuseport', 'round-robin', 'shared', 'exclusive'];
const choices: readonly ModeChoice[] = ['auto', ...modes];
/** The mode choices, quoted and comma-separated, for messages. */
export const choiceList = choices.map((choice) => `'${choice}'`).join(', ');

/** Whether a value names a mode choice ('auto' or a listen mode). */
export function isChoice(value: unknown): value is ModeChoice {
  return (choices as readonly unknown[]).includes(value);
}

// Where an explicit mode came from, worded for reasons and errors.
type ChoiceSource = 'options.mode' | 'REUSEPORT_MODE';

interface ExplicitChoice {
  mode: ListenMode;
  source: ChoiceSource;
}

function describeSource(source: ChoiceSource): string {
  return source === 'options.mode' ? 'options.mode' : 'the REUSEPORT_MODE environment variable';
}

// The explicit option wins over REUSEPORT_MODE: code that names a mode knows what it needs, while the
// environment is a deployment-wide default. Notes record an override that was ignored.
function readChoice(facts: Facts, options: PlanOptions | undefined): { choice?: ExplicitChoice; notes: string[] } {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw invalidArgType('options', 'of type object', options);
  }
  const asked: unknown = options?.mode;
  if (asked !== undefined && !isChoice(asked)) {
    throw invalidArgValue("property 'options.mode'", choiceList, asked);
  }
  const { override } = facts;
  if (asked !== undefined && asked !== 'auto') {
    const notes =
      override === undefined || override === asked ? [] : [`REUSEPORT_MODE=${override} was ignored: an explicit options.mode wins over the environment.`];
    return { choice: { mode: asked, source: 'options.mode' }, notes };
  }
  if (override === undefined) return { notes: [] };
  if (!isChoice(override)) {
    throw invalidArgValue('environment variable REUSEPORT_MODE', choiceList, override);
  }
  if (override === 'auto') return { notes: ['REUSEPORT_MODE=auto leaves the choice to reuseport.'] };
  return { choice: { mode: override, source: 'REUSEPORT_MODE' }, notes: [] };
}

function unsupported(choice: ExplicitChoice, why: string, advice: string): Error {
  return modeUnsupported(
    `The mode '${choice.mode}' was chosen explicitly by ${describeSource(choice.source)}, but it is not possible here. ` + `${why} ${advice}`,
  );
}

function describeRole(role: ClusterRole): string {
  if (role === 'worker') return 'This process is a cluster worker';
  if (role === 'primary') return 'This process is a cluster primary that forks workers';
  return 'This process is not in a cluster (neither a cluster worker nor a primary that forks workers)';
}

const fastPathAdvice = 'To get kernel load balancing, install a C++ toolchain and run "npm rebuild reuseport", or use Node >= 22.12.';

function noSocketMaker(facts: Facts): string {
  const addon = facts.addonError ? ` (${facts.addonError})` : '';
  return (
    'Neither the native addon nor this Node can open an SO_REUSEPORT socket here: ' +
    `the addon is not usable${addon}, and this Node does not honour listen({ reusePort: true }).`
  );
}

// Who opens the SO_REUSEPORT socket, preferring the addon (it works on every Node), else Node itself.
function reusePortBackend(facts: Facts): { backend: ListenBackend; reason: string } | undefined {
  if (facts.addon) {
    return { backend: 'addon', reason: 'The native addon opens the socket with SO_REUSEPORT (its probe of the kernel succeeded).' };
  }
  if (facts.nodeReusePort) {
    const why = facts.addonError ? `The native addon is not usable (${facts.addonError}), but` : 'The native addon is not usable, but';
    return { backend: 'node', reason: `${why} this Node honours listen({ reusePort: true }), so Node opens the socket.` };
  }
  return undefined;
}

// In a worker, a plain listen would go through the primary; `exclusive: true` keeps it in the worker.
function listensAlone(role: ClusterRole): string {
  const how = role === 'worker' ? 'its own listen (exclusive: true, not through the cluster primary)' : 'a plain listen';
  return `It listens alone with ${how}: a second process on this port will get EADDRINUSE.`;
}

function exclusivePlan(first: string[], ...after: string[]): Plan {
  return { mode: 'exclusive', backend: 'node', reasons: [...first, ...after] };
}

const clusterAdvice =
  'To serve the port from several processes, run them as cluster workers (cluster.setupPrimary() then cluster.fork()), ' +
  'or run on Linux >= 3.9, where the kernel balances SO_REUSEPORT sockets.';

function clusterPlan(facts: Facts, mode: 'round-robin' | 'shared', first: string[]): Plan {
  const how =
    mode === 'round-robin'
      ? 'cluster round-robin: the primary accepts each connection and passes it to a worker'
      : 'the cluster shared handle: the primary binds once and every worker accepts on that socket';
  return { mode, backend: 'cluster', reasons: [...first, `${describeRole(facts.role)}, so it uses ${how}.`] };
}

function planAuto(facts: Facts, kernel: KernelBalancing, notes: string[]): Plan {
  const first = [...notes, kernel.reason];
  if (kernel.balances) {
    const maker = reusePortBackend(facts);
    if (maker) return { mode: 'reuseport', backend: maker.backend, reasons: [...first, maker.reason] };
    const fallback = `${noSocketMaker(facts)} ${fastPathAdvice}`;
    if (facts.role === 'none') return exclusivePlan([...first, fallback], `${describeRole(facts.role)}. ${listensAlone(facts.role)}`);
    // Round-robin rather than the shared handle: on Linux the shared handle's accepts are very uneven.
    return clusterPlan(facts, 'round-robin', [...first, fallback]);
  }
  if (facts.role === 'none') return exclusivePlan(first, `${describeRole(facts.role)}. ${listensAlone(facts.role)} ${clusterAdvice}`);
  // Windows: the shared handle is Node's own default there; explicit round-robin remains allowed.
  return clusterPlan(facts, facts.platform === 'win32' ? 'shared' : 'round-robin', first);
}

function planExplicit(facts: Facts, kernel: KernelBalancing, choice: ExplicitChoice, notes: string[]): Plan {
  const chosen = `The mode '${choice.mode}' was chosen explicitly by ${describeSource(choice.source)}.`;
  switch (choice.mode) {
    case 'exclusive':
      return exclusivePlan([chosen, ...notes], listensAlone(facts.role));
    case 'round-robin':
    case 'shared':
      if (facts.role === 'none') {
        throw unsupported(
          choice,
          `${describeRole(facts.role)}, and a cluster mode needs a cluster.`,
          "Call it in a worker started with cluster.fork(), or choose 'exclusive' or 'auto'.",
        );
      }
      return clusterPlan(facts, choice.mode, [chosen, ...notes]);
    case 'reuseport': {
      if (kernel.certain && !kernel.balances) {
        throw unsupported(choice, kernel.reason, "Choose 'auto' to get the best mode this system has.");
      }
      const maker = reusePortBackend(facts);
      if (!maker) throw unsupported(choice, noSocketMaker(facts), fastPathAdvice);
      const trust = kernel.certain ? [] : ['The explicit choice overrides that assumption.'];
      return { mode: 'reuseport', backend: maker.backend, reasons: [chosen, ...notes, kernel.reason, ...trust, maker.reason] };
    }
  }
}

/**
 * Decides how to listen. Pure: reads only `facts` and `options` (REUSEPORT_MODE arrives as `facts.override`).
 * Throws TypeError ERR_INVALID_ARG_VALUE for an unknown mode, and ERR_REUSEPORT_MODE_UNSUPPORTED for an
 * explicit mode this system cannot do; an explicit mode never falls back silently.
 */
export function planListen(facts: Facts, options?: PlanOptions): Plan {
  const { choice, notes } = readChoice(facts, options);
  const kernel = judgeKernel(facts.platform, facts.release);
  return choice ? planExplicit(facts, kernel, choice, notes) : planAuto(facts, kernel, notes);
}
