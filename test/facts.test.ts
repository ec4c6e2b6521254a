// gatherFacts: reads platform, kernel, Node capability, addon probe, cluster role and REUSEPORT_MODE from injectable sources.
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import type { BindingLoad, NativeBinding } from '../lib/binding';
import { type ClusterView, type FactSources, gatherFacts } from '../lib/plan/facts';
import { tcpWrap } from '../lib/tcp-handle';
import { udpWrap } from '../lib/udp-handle';

function addonProbing(probe: () => number): () => BindingLoad {
  const unused = () => {
    throw new Error('not used by gatherFacts');
  };
  const binding: NativeBinding = {
    openListener: unused,
    listenSocket: unused,
    attachReusePortProgram: unused,
    acceptQueue: unused,
    setCpuAffinity: unused,
    getCpuAffinity: unused,
    listeningSockets: unused,
    socketInfo: unused,
    notify: unused,
    openDatagram: unused,
    bindDatagram: unused,
    clearDatagramReuseAddr: unused,
    datagramSockets: unused,
    peekExitedChild: unused,
    reapChild: unused,
    setChildSubreaper: unused,
    mapShared: unused,
    probeReusePort: probe,
  };
  return () => ({ binding, error: undefined });
}

const missingAddon: () => BindingLoad = () => ({ binding: undefined, error: new Error('no build/Release/reuseport.node') });

const lone: ClusterView = { isWorker: false, isPrimary: true, workers: {}, settings: {} };

// Every source faked: a Linux cluster-less process on a Node without reusePort, with a working addon.
const fake: FactSources = {
  env: {},
  platform: 'linux',
  release: () => '6.18.44-fc-v657',
  tcpWrap: () => ({ constants: {} }),
  loadBinding: addonProbing(() => 0),
  cluster: lone,
};

describe('gatherFacts reads', () => {
  it.each<[name: string, sources: Partial<FactSources>, expected: Record<string, unknown>]>([
    ['the platform and release as given', { platform: 'darwin', release: () => '23.1.0' }, { platform: 'darwin', release: '23.1.0' }],
    ['nodeReusePort true when tcp_wrap has UV_TCP_REUSEPORT', { tcpWrap: () => ({ constants: { UV_TCP_REUSEPORT: 1 } }) }, { nodeReusePort: true }],
    ['nodeReusePort false when tcp_wrap lacks UV_TCP_REUSEPORT', {}, { nodeReusePort: false }],
    ['nodeUdpReusePort true when udp_wrap has UV_UDP_REUSEPORT', { udpWrap: () => ({ constants: { UV_UDP_REUSEPORT: 64 } }) }, { nodeUdpReusePort: true }],
    ['nodeUdpReusePort false when udp_wrap lacks UV_UDP_REUSEPORT', { udpWrap: () => ({ constants: {} }) }, { nodeUdpReusePort: false }],
    [
      'nodeUdpReusePort false when udp_wrap cannot be reached',
      {
        udpWrap: () => {
          throw new Error('process.binding is gone');
        },
      },
      { nodeUdpReusePort: false },
    ],
    [
      'nodeReusePort false when tcp_wrap cannot be reached',
      {
        tcpWrap: () => {
          throw new Error('process.binding is gone');
        },
      },
      { nodeReusePort: false },
    ],
    // libuv refuses UV_TCP_REUSEPORT/UV_UDP_REUSEPORT with ENOTSUP off its list, though Node exports the constants.
    ...(['win32', 'darwin', 'openbsd'] as const).map((platform): [string, Partial<FactSources>, Record<string, unknown>] => [
      `nodeReusePort and nodeUdpReusePort false on ${platform}, where libuv refuses the flag, even with the constants`,
      { platform, tcpWrap: () => ({ constants: { UV_TCP_REUSEPORT: 1 } }), udpWrap: () => ({ constants: { UV_UDP_REUSEPORT: 64 } }) },
      { nodeReusePort: false, nodeUdpReusePort: false },
    ]),
    ...(['freebsd', 'aix', 'sunos', 'android'] as const).map((platform): [string, Partial<FactSources>, Record<string, unknown>] => [
      `nodeReusePort and nodeUdpReusePort true on ${platform}, where libuv sets the option, with the constants`,
      { platform, tcpWrap: () => ({ constants: { UV_TCP_REUSEPORT: 1 } }), udpWrap: () => ({ constants: { UV_UDP_REUSEPORT: 64 } }) },
      { nodeReusePort: true, nodeUdpReusePort: true },
    ]),
    [
      'on Windows no addon is asked: the reason says Windows has no SO_REUSEPORT, never an errno',
      { platform: 'win32', loadBinding: addonProbing(() => -129) },
      { addon: false, addonError: expect.stringMatching(/^Windows has no SO_REUSEPORT.*JavaScript path/) },
    ],
    [
      'on Windows a missing addon is no error to fix either',
      { platform: 'win32', loadBinding: missingAddon },
      { addon: false, addonError: expect.not.stringMatching(/C\+\+|rebuild|unknown error/) },
    ],
    ['addon true when its probe returns 0', {}, { addon: true, addonError: undefined }],
    [
      'addon false with the load error when the addon is missing',
      { loadBinding: missingAddon },
      { addon: false, addonError: 'no build/Release/reuseport.node' },
    ],
    [
      'addon false with the errno name when the kernel refuses SO_REUSEPORT',
      { loadBinding: addonProbing(() => -os.constants.errno.ENOPROTOOPT) },
      { addon: false, addonError: expect.stringContaining('ENOPROTOOPT') },
    ],
    [
      'addon false when its probe throws',
      {
        loadBinding: addonProbing(() => {
          throw new Error('probe exploded');
        }),
      },
      { addon: false, addonError: expect.stringContaining('probe exploded') },
    ],
    ['role worker in a cluster worker', { cluster: { isWorker: true, isPrimary: false } }, { role: 'worker' }],
    ['role primary when the primary has workers', { cluster: { ...lone, workers: { 1: {} } } }, { role: 'primary' }],
    ['role primary after setupPrimary, before any fork', { cluster: { ...lone, settings: { exec: '/srv/app/worker.js' } } }, { role: 'primary' }],
    ['role none in a primary with no workers and no setup', {}, { role: 'none' }],
    ['role none when cluster.workers is undefined', { cluster: { ...lone, workers: undefined } }, { role: 'none' }],
    ['no override when REUSEPORT_MODE is unset', {}, { override: undefined }],
    ['no override when REUSEPORT_MODE is empty', { env: { REUSEPORT_MODE: '' } }, { override: undefined }],
    ['a known REUSEPORT_MODE as the override', { env: { REUSEPORT_MODE: 'round-robin' } }, { override: 'round-robin' }],
    ['an unknown REUSEPORT_MODE kept raw for the planner to reject', { env: { REUSEPORT_MODE: 'Fast ' } }, { override: 'Fast ' }],
  ])('%s', (_name, sources, expected) => {
    expect(gatherFacts({ ...fake, ...sources })).toMatchObject(expected);
  });
});

describe('gatherFacts on this process', () => {
  it.each<[name: string, check: (facts: ReturnType<typeof gatherFacts>) => void]>([
    ['reads the real platform and release', (facts) => expect([facts.platform, facts.release]).toEqual([process.platform, os.release()])],
    ['probes Node for dgram reusePort through udp_wrap', (facts) => expect(facts.nodeUdpReusePort).toBe(udpWrap().constants.UV_UDP_REUSEPORT !== undefined)],
    ['probes Node for reusePort through tcp_wrap', (facts) => expect(facts.nodeReusePort).toBe(tcpWrap().constants.UV_TCP_REUSEPORT !== undefined)],
    ['gives an addonError exactly when the addon is not usable', (facts) => expect(facts.addonError === undefined).toBe(facts.addon)],
    ['is not in a cluster under vitest', (facts) => expect(facts.role).toBe('none')],
  ])('%s', (_name, check) => {
    check(gatherFacts({ env: {} }));
  });

  it('takes REUSEPORT_MODE from the given env, not process.env', () => {
    expect(gatherFacts({ env: { REUSEPORT_MODE: 'exclusive' } }).override).toBe('exclusive');
  });

  it('lists exactly the documented fields', () => {
    expect(Object.keys(gatherFacts(fake)).sort()).toEqual([
      'addon',
      'addonError',
      'nodeReusePort',
      'nodeUdpReusePort',
      'override',
      'platform',
      'release',
      'role',
    ]);
  });
});
