// planListen and kernel-release reading: facts in, mode + backend + reasons out, for every platform and choice.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Facts } from '../lib/plan/facts';
import { judgeKernel, parseKernelVersion } from '../lib/plan/kernel';
import { type PlanOptions, planListen } from '../lib/plan/plan';

// A Linux cluster worker with the addon: each case changes only what it is about.
const base: Facts = {
  platform: 'linux',
  release: '6.18.44-fc-v657',
  nodeReusePort: false,
  addon: true,
  addonError: undefined,
  role: 'worker',
  override: undefined,
};

const noAddon = { addon: false, addonError: 'the native addon could not be loaded for linux-x64' };
const linux = (release: string): Partial<Facts> => ({ platform: 'linux', release });
const freebsd = (release: string): Partial<Facts> => ({ platform: 'freebsd', release });
const darwin: Partial<Facts> = { platform: 'darwin', release: '23.1.0' };
const windows: Partial<Facts> = { platform: 'win32', release: '10.0.22631' };

type Row = [name: string, facts: Partial<Facts>, options: PlanOptions | undefined, mode: string, backend: string, mentions: string[]];

describe('planListen chooses', () => {
  it.each<Row>([
    // Kernels that balance, and who opens the socket.
    ['reuseport with the addon on Linux 6.18', {}, undefined, 'reuseport', 'addon', ['6.18.44-fc-v657', '>= 3.9']],
    ['reuseport on a RHEL 7 kernel (3.10)', linux('3.10.0-1160.el7.x86_64'), undefined, 'reuseport', 'addon', ['3.10.0-1160.el7.x86_64']],
    ['reuseport on an AWS kernel', linux('5.15.0-1019-aws'), undefined, 'reuseport', 'addon', ['5.15.0-1019-aws']],
    ['reuseport on WSL2, a real Linux kernel', linux('5.15.90.1-microsoft-standard-WSL2'), undefined, 'reuseport', 'addon', ['WSL2', 'real Linux kernel']],
    ['reuseport on Android (a Linux kernel)', { platform: 'android', release: '5.10.198-android13' }, undefined, 'reuseport', 'addon', ['5.10.198-android13']],
    ['reuseport with the addon outside a cluster', { role: 'none' }, undefined, 'reuseport', 'addon', ['6.18.44-fc-v657']],
    ['reuseport with the addon in a primary', { role: 'primary' }, undefined, 'reuseport', 'addon', ['6.18.44-fc-v657']],
    ['Node reusePort when the addon is missing', { ...noAddon, nodeReusePort: true }, undefined, 'reuseport', 'node', ['reusePort', 'could not be loaded']],
    ['the addon over Node reusePort when both work', { nodeReusePort: true }, undefined, 'reuseport', 'addon', ['addon']],
    ['reuseport on FreeBSD 12 (SO_REUSEPORT_LB)', freebsd('12.0-RELEASE'), undefined, 'reuseport', 'addon', ['12.0-RELEASE', 'SO_REUSEPORT_LB']],
    [
      'Node reusePort on FreeBSD 13.2-p4',
      { ...freebsd('13.2-RELEASE-p4'), ...noAddon, nodeReusePort: true },
      undefined,
      'reuseport',
      'node',
      ['13.2-RELEASE-p4'],
    ],
    ['reuseport on DragonFly', { platform: 'dragonfly', release: '6.4-RELEASE' }, undefined, 'reuseport', 'addon', ['DragonFly']],
    // A balancing kernel with nothing to open the socket: a cluster mode, and how to get the fast path.
    [
      'round-robin in a worker with neither addon nor Node reusePort',
      noAddon,
      undefined,
      'round-robin',
      'cluster',
      ['npm rebuild reuseport', 'Node >= 22.12', 'could not be loaded'],
    ],
    [
      'round-robin in a primary with neither addon nor Node reusePort',
      { ...noAddon, role: 'primary' },
      undefined,
      'round-robin',
      'cluster',
      ['npm rebuild reuseport', 'primary'],
    ],
    [
      'exclusive alone with neither addon nor Node reusePort',
      { ...noAddon, role: 'none' },
      undefined,
      'exclusive',
      'node',
      ['npm rebuild reuseport', 'EADDRINUSE'],
    ],
    // Kernels that do not balance.
    ['round-robin on Linux 3.8', { ...linux('3.8.13'), addon: false }, undefined, 'round-robin', 'cluster', ['3.8.13', 'older than 3.9']],
    [
      'exclusive on Linux 3.8 outside a cluster',
      { ...linux('3.8.13'), role: 'none' },
      undefined,
      'exclusive',
      'node',
      ['3.8.13', 'EADDRINUSE', 'cluster.setupPrimary()'],
    ],
    ['round-robin on WSL1', linux('4.4.0-19041-Microsoft'), undefined, 'round-robin', 'cluster', ['4.4.0-19041-Microsoft', 'WSL1']],
    ['round-robin on an unreadable Linux release', linux('garbage'), undefined, 'round-robin', 'cluster', ['"garbage"', 'assumes']],
    ['round-robin on an empty Linux release', linux(''), undefined, 'round-robin', 'cluster', ['could not be read', 'assumes']],
    ['round-robin on FreeBSD 11.4', freebsd('11.4-RELEASE'), undefined, 'round-robin', 'cluster', ['11.4-RELEASE', 'SO_REUSEPORT_LB']],
    ['round-robin on an unreadable FreeBSD release', freebsd('RELEASE'), undefined, 'round-robin', 'cluster', ['"RELEASE"', 'assumes']],
    ['round-robin on macOS in a worker', darwin, undefined, 'round-robin', 'cluster', ['23.1.0', 'does not spread']],
    ['round-robin on macOS in a primary', { ...darwin, role: 'primary' }, undefined, 'round-robin', 'cluster', ['23.1.0', 'primary']],
    ['exclusive on macOS outside a cluster', { ...darwin, role: 'none' }, undefined, 'exclusive', 'node', ['23.1.0', 'EADDRINUSE', 'cluster.fork()']],
    ['round-robin on OpenBSD', { platform: 'openbsd', release: '7.4' }, undefined, 'round-robin', 'cluster', ['OpenBSD 7.4']],
    ['round-robin on NetBSD', { platform: 'netbsd', release: '10.0' }, undefined, 'round-robin', 'cluster', ['NetBSD 10.0']],
    ['round-robin on an unknown platform', { platform: 'haiku', release: '1' }, undefined, 'round-robin', 'cluster', ['"haiku"', 'assumes']],
    ['shared on Windows in a worker', windows, undefined, 'shared', 'cluster', ['10.0.22631', 'SO_REUSEADDR']],
    ['shared on Windows in a primary', { ...windows, role: 'primary' }, undefined, 'shared', 'cluster', ['10.0.22631', 'shared handle']],
    ['exclusive on Windows outside a cluster', { ...windows, role: 'none' }, undefined, 'exclusive', 'node', ['10.0.22631', 'EADDRINUSE']],
    // Explicit choices, from the option or from REUSEPORT_MODE.
    ['reuseport from options.mode', {}, { mode: 'reuseport' }, 'reuseport', 'addon', ['explicitly by options.mode']],
    ['reuseport from REUSEPORT_MODE', { override: 'reuseport' }, undefined, 'reuseport', 'addon', ['REUSEPORT_MODE']],
    ['REUSEPORT_MODE when options.mode is auto', { override: 'shared' }, { mode: 'auto' }, 'shared', 'cluster', ['REUSEPORT_MODE']],
    [
      'options.mode over REUSEPORT_MODE',
      { override: 'round-robin' },
      { mode: 'exclusive' },
      'exclusive',
      'node',
      ['options.mode', 'REUSEPORT_MODE=round-robin was ignored'],
    ],
    ['options.mode over an unknown REUSEPORT_MODE', { override: 'bogus' }, { mode: 'shared' }, 'shared', 'cluster', ['REUSEPORT_MODE=bogus was ignored']],
    ['the automatic choice for REUSEPORT_MODE=auto', { ...darwin, override: 'auto' }, undefined, 'round-robin', 'cluster', ['REUSEPORT_MODE=auto', '23.1.0']],
    ['round-robin on a balancing kernel when asked', {}, { mode: 'round-robin' }, 'round-robin', 'cluster', ["'round-robin' was chosen explicitly"]],
    ['round-robin on Windows when asked', windows, { mode: 'round-robin' }, 'round-robin', 'cluster', ['explicitly']],
    ['shared on Linux when asked', {}, { mode: 'shared' }, 'shared', 'cluster', ['explicitly']],
    ['exclusive in a worker when asked', {}, { mode: 'exclusive' }, 'exclusive', 'node', ['explicitly', 'exclusive: true']],
    ['exclusive on macOS outside a cluster when asked', { ...darwin, role: 'none' }, { mode: 'exclusive' }, 'exclusive', 'node', ['explicitly', 'EADDRINUSE']],
    [
      'reuseport through Node when asked without the addon',
      { ...noAddon, nodeReusePort: true },
      { mode: 'reuseport' },
      'reuseport',
      'node',
      ['explicitly', 'reusePort'],
    ],
    [
      'reuseport on an unreadable Linux release when asked',
      linux('garbage'),
      { mode: 'reuseport' },
      'reuseport',
      'addon',
      ['"garbage"', 'overrides that assumption'],
    ],
  ])('%s', (_name, facts, options, mode, backend, mentions) => {
    const plan = planListen({ ...base, ...facts }, options);
    expect({ mode: plan.mode, backend: plan.backend }).toEqual({ mode, backend });
    expect(plan.reasons.length).toBeGreaterThan(0);
    expect(plan.reasons.every((reason) => /^[A-Z].*\.$/s.test(reason))).toBe(true);
    for (const mention of mentions) expect(plan.reasons.join('\n')).toContain(mention);
  });
});

describe('planListen refuses an explicit mode this system cannot do', () => {
  it.each<[name: string, facts: Partial<Facts>, options: PlanOptions | undefined, mentions: string[]]>([
    ['reuseport on macOS', darwin, { mode: 'reuseport' }, ['23.1.0', 'options.mode']],
    ['reuseport on macOS from REUSEPORT_MODE', { ...darwin, override: 'reuseport' }, undefined, ['REUSEPORT_MODE']],
    ['reuseport on Windows', windows, { mode: 'reuseport' }, ['10.0.22631']],
    ['reuseport on Linux 3.8', linux('3.8.13'), { mode: 'reuseport' }, ['3.8.13']],
    ['reuseport on WSL1', linux('4.4.0-19041-Microsoft'), { mode: 'reuseport' }, ['WSL1']],
    ['reuseport on FreeBSD 11.4', freebsd('11.4-RELEASE'), { mode: 'reuseport' }, ['11.4-RELEASE']],
    ['reuseport with neither addon nor Node reusePort', noAddon, { mode: 'reuseport' }, ['npm rebuild reuseport', 'Node >= 22.12']],
    [
      'reuseport on an unreadable release with neither addon nor Node reusePort',
      { ...linux('garbage'), ...noAddon },
      { mode: 'reuseport' },
      ['npm rebuild reuseport'],
    ],
    ['round-robin outside a cluster', { role: 'none' }, { mode: 'round-robin' }, ['needs a cluster']],
    ['shared outside a cluster', { role: 'none' }, { mode: 'shared' }, ['needs a cluster']],
    ['shared outside a cluster from REUSEPORT_MODE', { role: 'none', override: 'shared' }, undefined, ['REUSEPORT_MODE', 'needs a cluster']],
  ])('%s', (_name, facts, options, mentions) => {
    const plan = () => planListen({ ...base, ...facts }, options);
    expect(plan).toThrow(expect.objectContaining({ name: 'Error', code: 'ERR_REUSEPORT_MODE_UNSUPPORTED' }));
    for (const mention of mentions) expect(plan).toThrow(mention);
  });
});

describe('planListen rejects a mode it does not know', () => {
  it.each<[name: string, facts: Partial<Facts>, options: unknown, mention: string]>([
    ['an unknown options.mode', {}, { mode: 'fast' }, "The property 'options.mode' must be one of"],
    ['an options.mode in the wrong case', {}, { mode: 'REUSEPORT' }, "Received 'REUSEPORT'"],
    ['a numeric options.mode', {}, { mode: 2 }, 'Received 2'],
    ['an unknown REUSEPORT_MODE', { override: 'bogus' }, undefined, "REUSEPORT_MODE must be one of: 'auto', 'reuseport'"],
    ['an unknown REUSEPORT_MODE when options.mode is auto', { override: 'rr' }, { mode: 'auto' }, "Received 'rr'"],
  ])('%s', (_name, facts, options, mention) => {
    const plan = () => planListen({ ...base, ...facts }, options as PlanOptions);
    expect(plan).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' }));
    expect(plan).toThrow(mention);
  });

  it('rejects options that are not an object with ERR_INVALID_ARG_TYPE', () => {
    expect(() => planListen(base, 'reuseport' as PlanOptions)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
  });

  it('prints the code in the stack as Node does', () => {
    expect(() => planListen(base, { mode: 'fast' as 'auto' })).toThrow(
      expect.objectContaining({ stack: expect.stringMatching(/^TypeError \[ERR_INVALID_ARG_VALUE\]: /) }),
    );
  });
});

describe('planListen is pure', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('does not change the facts or options it is given', () => {
    const facts: Facts = { ...base, override: 'round-robin' };
    const options: PlanOptions = { mode: 'auto' };
    const before = structuredClone({ facts, options });
    planListen(Object.freeze(facts), Object.freeze(options));
    expect({ facts, options }).toEqual(before);
  });

  it('gives the same plan for the same input', () => {
    const facts: Facts = { ...base, ...darwin };
    expect(planListen(facts)).toEqual(planListen(facts));
  });

  it('returns a fresh reasons array each time', () => {
    const first = planListen(base);
    first.reasons.push('changed by the caller.');
    expect(planListen(base).reasons).not.toContain('changed by the caller.');
  });

  it('reads REUSEPORT_MODE only through the facts', () => {
    vi.stubEnv('REUSEPORT_MODE', 'bogus');
    expect(planListen(base).mode).toBe('reuseport');
  });
});

describe('parseKernelVersion reads', () => {
  it.each<[release: string, version: ReturnType<typeof parseKernelVersion>]>([
    ['3.8.13', { major: 3, minor: 8, patch: 13 }],
    ['3.10.0-1160.el7.x86_64', { major: 3, minor: 10, patch: 0 }],
    ['4.4.0-19041-Microsoft', { major: 4, minor: 4, patch: 0 }],
    ['5.15.0-1019-aws', { major: 5, minor: 15, patch: 0 }],
    ['5.15.90.1-microsoft-standard-WSL2', { major: 5, minor: 15, patch: 90 }],
    ['6.18.44-fc-v657', { major: 6, minor: 18, patch: 44 }],
    ['11.4-RELEASE', { major: 11, minor: 4, patch: 0 }],
    ['12.0-RELEASE', { major: 12, minor: 0, patch: 0 }],
    ['13.2-RELEASE-p4', { major: 13, minor: 2, patch: 0 }],
    ['23.1.0', { major: 23, minor: 1, patch: 0 }],
    ['10.0.22631', { major: 10, minor: 0, patch: 22631 }],
    ['garbage', undefined],
    ['', undefined],
    ['6', undefined],
    ['v6.1.0', undefined],
    ['99999999999999999999.1', undefined],
  ])('%j', (release, version) => {
    expect(parseKernelVersion(release)).toEqual(version);
  });
});

describe('judgeKernel compares versions as numbers, not strings', () => {
  it.each<[platform: string, release: string, balances: boolean]>([
    ['linux', '3.9.0', true],
    ['linux', '3.10.0', true],
    ['linux', '2.6.32-754.el6.x86_64', false],
    ['linux', '10.0.0', true],
    ['freebsd', '9.3-RELEASE', false],
    ['freebsd', '14.1-RELEASE', true],
  ])('%s %s balances: %s', (platform, release, balances) => {
    expect(judgeKernel(platform, release).balances).toBe(balances);
  });
});
