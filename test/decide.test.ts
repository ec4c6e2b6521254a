// decide(): how a listen's plan follows the primary's setupPrimary() plan and scheduling policy.
import { describe, expect, it } from 'vitest';
import type { Facts } from '../lib/plan/facts';
import { decide } from '../lib/listen/listen-reuseport';
import type { SharedPlan } from '../lib/cluster/primary-link';

const linux: Facts = {
  platform: 'linux',
  release: '6.18.44-fc-v657',
  nodeReusePort: false,
  addon: true,
  addonError: undefined,
  role: 'none',
  override: undefined,
};
const darwin: Facts = { ...linux, platform: 'darwin', release: '23.1.0', addon: false, addonError: 'no SO_REUSEPORT balancing' };
const sharedReuseport: SharedPlan = { mode: 'reuseport', backend: 'addon', reasons: ['primary reason'], primaryPid: 42, policy: 'rr' };
const sharedRoundRobin: SharedPlan = { ...sharedReuseport, mode: 'round-robin', backend: 'cluster' };

describe('decide', () => {
  it.each<[string, Parameters<typeof decide>[0], Parameters<typeof decide>[1], string, string]>([
    ['standalone Linux with the addon', 'auto', { facts: linux, isWorker: false, sharedPlan: undefined, policy: 'rr' }, 'reuseport', 'addon'],
    ['a Linux worker with no plan from the primary', 'auto', { facts: linux, isWorker: true, sharedPlan: undefined, policy: 'rr' }, 'reuseport', 'addon'],
    ['a worker following the primary (reuseport)', 'auto', { facts: linux, isWorker: true, sharedPlan: sharedReuseport, policy: 'rr' }, 'reuseport', 'addon'],
    [
      "a worker following the primary's reuseport with Node's own",
      'auto',
      { facts: { ...linux, addon: false, nodeReusePort: true }, isWorker: true, sharedPlan: sharedReuseport, policy: 'rr' },
      'reuseport',
      'node',
    ],
    [
      'a worker following the primary (round-robin)',
      'auto',
      { facts: linux, isWorker: true, sharedPlan: sharedRoundRobin, policy: 'rr' },
      'round-robin',
      'cluster',
    ],
    ['a macOS worker under SCHED_RR', 'auto', { facts: darwin, isWorker: true, sharedPlan: undefined, policy: 'rr' }, 'round-robin', 'cluster'],
    ['a macOS worker under SCHED_NONE reports shared', 'auto', { facts: darwin, isWorker: true, sharedPlan: undefined, policy: 'none' }, 'shared', 'cluster'],
    ['standalone macOS', 'auto', { facts: darwin, isWorker: false, sharedPlan: undefined, policy: 'rr' }, 'exclusive', 'node'],
    ['an explicit exclusive in a worker', 'exclusive', { facts: linux, isWorker: true, sharedPlan: sharedReuseport, policy: 'rr' }, 'exclusive', 'node'],
    ['an explicit cluster mode matching the policy', 'shared', { facts: linux, isWorker: true, sharedPlan: undefined, policy: 'none' }, 'shared', 'cluster'],
  ])('%s', (_name, mode, edges, expectedMode, expectedBackend) => {
    const plan = decide(mode, edges);
    expect(plan).toMatchObject({ mode: expectedMode, backend: expectedBackend });
    expect(plan.reasons.length).toBeGreaterThan(0);
  });

  it("names the primary's choice in the reasons", () => {
    const plan = decide('auto', { facts: linux, isWorker: true, sharedPlan: sharedReuseport, policy: 'rr' });
    expect(plan.reasons).toEqual(["The cluster primary (pid 42) chose 'reuseport' in setupPrimary().", 'primary reason']);
  });

  it.each<[string, Parameters<typeof decide>[0], Parameters<typeof decide>[1]]>([
    ['a cluster mode the policy does not give', 'shared', { facts: linux, isWorker: true, sharedPlan: undefined, policy: 'rr' }],
    [
      'REUSEPORT_MODE asking for a cluster mode the policy does not give',
      'auto',
      { facts: { ...linux, override: 'round-robin' }, isWorker: true, sharedPlan: undefined, policy: 'none' },
    ],
    [
      "the primary's reuseport in a worker that can open no such socket",
      'auto',
      { facts: { ...linux, addon: false }, isWorker: true, sharedPlan: sharedReuseport, policy: 'rr' },
    ],
  ])('refuses %s', (_name, mode, edges) => {
    expect(() => decide(mode, edges)).toThrow(expect.objectContaining({ code: 'ERR_REUSEPORT_MODE_UNSUPPORTED' }));
  });
});
