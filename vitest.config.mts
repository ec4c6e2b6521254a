// `npm test`: every file under test/ (not test/load/, run by `npm run test:load`, nor test/bench/,
// run by `npm run test:bench`), as projects by kind. `npm test` runs them all; each of CI's repeat
// runs (.ci/run) names the projects whose outcome its change of build, user or Node can alter:
//
//   unit      pure tables: no process, no socket, no addon call. Parallel.
//   tools     the repository's own tools run for real (the bench harness, the systemd harness) and
//             checks of other projects' code over ours (socket.io, the sticky program's spread in
//             the BPF interpreter): neither the addon's build nor Node's version changes them.
//   addon     the addon's contract, called in this process (every function, its errors, its fds).
//   checkout  the package as installed: the addon loaded at import, no addon at all, both entry
//             points, and the files whose tests take another path by uid (root, nobody).
//   process   real processes and sockets through Node's internals (listen handles, the preload
//             hook, drains, cluster, the supervisor, the runner). Also every file not listed
//             below: a new test/*.test.ts lands here, in every repeat, until it is classified.
//
// Files run in parallel, each with a temporary directory of its own (test/setup/own-tmp.ts). The
// `serial` list (project `process-serial`, which CI selects with `process` as --project 'process*')
// runs after the others, one file at a time: files that proved timing-sensitive beside others (say
// why next to each).
import { defineConfig } from 'vitest/config';

const unit = [
  'acquire',
  'balancer',
  'build-files',
  'cli-parts',
  'decide',
  'deploy-options',
  'drain-signal',
  'errno',
  'exclusive-advice',
  'ipc',
  'layout',
  'options',
  'plan',
  'progress',
  'reload-waves',
  'settle',
  'slot-lifecycle',
  'sparse-groups',
  'stall-guard',
  'status',
  'stop-path',
  'supervisor-events',
  'unknown-option',
  'weighted',
];
const tools = ['bench', 'bench-tls', 'bench-udp', 'socketio', 'sticky', 'systemd-harness'];
const addon = ['accept-queue-short', 'affinity', 'bad-input', 'binding', 'facts', 'fuzz', 'slot-sockets', 'steering'];
const checkout = ['addon-at-import', 'entrypoints', 'no-addon', 'port-holders', 'processes'];
// Listed here they leave `process` for `process-serial` (same repeats, one file at a time, after the
// others): files whose tests failed beside the others on a loaded machine.
const serial = [
  // progress cells: a worker under load answers requests while pings are counted; upgrade: sticky
  // clients stay on their slot's worker through it.
  'supervisor',
  'upgrade',
  // sticky clients staying with their slot's worker while others load the machine.
  'sticky-supervisor',
];

const files = (names: string[]) => names.map((name) => `test/${name}.test.ts`);
const listed = files([...unit, ...tools, ...addon, ...checkout, ...serial]);

export default defineConfig({
  test: {
    pool: 'forks',
    // Most files wait on processes and sockets rather than compute: more files than cores at once.
    maxWorkers: 4,
    // Bounds, not expectations: generous, so that a machine busy with other work only makes the run slower.
    testTimeout: 120_000,
    hookTimeout: 60_000,
    teardownTimeout: 10_000,
    setupFiles: ['test/setup/own-tmp.ts'],
    projects: [
      { extends: true, test: { name: 'unit', include: files(unit) } },
      { extends: true, test: { name: 'tools', include: files(tools) } },
      { extends: true, test: { name: 'addon', include: files(addon) } },
      { extends: true, test: { name: 'checkout', include: files(checkout) } },
      { extends: true, test: { name: 'process', include: ['test/*.test.ts'], exclude: listed } },
      ...(serial.length ? [{ extends: true as const, test: { name: 'process-serial', include: files(serial), maxWorkers: 1, fileParallelism: false } }] : []),
    ],
  },
});
