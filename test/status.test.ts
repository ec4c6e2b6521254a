// The pure parts of `reuseport status`: durations, /proc/net/tcp{,6} listeners, uptimes added to a
// report, the balance line; and the balance's figures in /metrics' registry.
import { describe, expect, it } from 'vitest';
import { formatDuration, formatStatus, parseListeners, withUptimes } from '../lib/cli/status';
import type { SlotStats } from '../lib/supervisor/core/types';
import type { StatusReport } from '../lib/supervisor/fleet/health';
import { metricsRegistry } from '../lib/supervisor/fleet/metrics';

describe('formatDuration', () => {
  it.each<[number | undefined, string]>([
    [undefined, '-'],
    [0, '0s'],
    [9_999, '9s'],
    [60_000, '1m 0s'],
    [252_000, '4m 12s'],
    [7_500_000, '2h 5m'],
    [273_600_000, '3d 4h'],
  ])('%s ms is %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0
   1: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 20 4 30 10 -1
   3: 0502000A:1F92 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 444 1 0000000000000000 100 0 0 10 0
`;
const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F93 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F94 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 666 1 0000000000000000 100 0 0 10 0
   2: 000080FE00000000FF03D3FE2E8F7A84:1F95 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
`;

describe('parseListeners', () => {
  it('IPv4: listening sockets only, at an address a local client can ask (the wildcard as 127.0.0.1)', () => {
    expect(parseListeners(tcp, 4)).toEqual([
      { address: '127.0.0.1', port: 8080, inode: '111' },
      { address: '127.0.0.1', port: 8081, inode: '222' },
      { address: '10.0.2.5', port: 8082, inode: '444' },
    ]);
  });

  it('IPv6: the wildcard and loopback, asked on ::1; other addresses are left out', () => {
    expect(parseListeners(tcp6, 6)).toEqual([
      { address: '::1', port: 8083, inode: '555' },
      { address: '::1', port: 8084, inode: '666' },
    ]);
  });
});

describe('withUptimes', () => {
  it("adds the supervisor's, the service's and each slot worker's uptime (undefined for an empty slot)", () => {
    const report = {
      pid: 10,
      ready: true,
      shuttingDown: false,
      plan: { mode: 'reuseport', backend: 'addon', reasons: [] },
      ports: [8000],
      counts: { restarts: 0, reloads: 0, upgrades: 1 },
      startedAt: 95_000,
      serviceStartedAt: 40_000,
      last: {},
      slots: [
        { slot: 0, pid: 11, accepted: 5, stalls: 0, lentTo: undefined, queued: 0, queuedPeak: 1, cpu: undefined, stopped: false },
        { slot: 1, pid: undefined, accepted: 0, stalls: 0, lentTo: undefined, queued: 0, queuedPeak: 0, cpu: undefined, stopped: false },
      ],
    } as StatusReport;
    const uptimes = new Map([
      [10, 5_000],
      [11, 4_000],
    ]);
    const status = withUptimes(report, (pid) => (pid === undefined ? undefined : uptimes.get(pid)), 100_000);
    expect(status.uptimeMs).toBe(5_000);
    expect(status.serviceUptimeMs).toBe(60_000);
    // A supervisor of 0.1 tells no service start.
    const { serviceStartedAt: _, ...older } = report;
    expect(withUptimes(older as StatusReport, () => undefined, 100_000).serviceUptimeMs).toBeUndefined();
    expect(status.slots.map((slot) => slot.uptimeMs)).toEqual([4_000, undefined]);
  });
});

describe('the steering weights', () => {
  const slots: SlotStats[] = [
    {
      slot: 0,
      pid: 11,
      accepted: 5,
      stalls: 0,
      lentTo: undefined,
      queued: 0,
      queuedPeak: 1,
      cpu: undefined,
      stopped: false,
      connections: 3,
      shed: 1,
      weight: 8,
    },
    {
      slot: 1,
      pid: 12,
      accepted: 2,
      stalls: 0,
      lentTo: undefined,
      queued: 0,
      queuedPeak: 0,
      cpu: undefined,
      stopped: false,
      connections: 1,
      shed: 0,
      weight: 56,
    },
  ];
  const report = (balance: StatusReport['balance']) =>
    withUptimes(
      {
        pid: 10,
        ready: true,
        shuttingDown: false,
        plan: { mode: 'reuseport', backend: 'addon', reasons: [] },
        ports: [8000],
        counts: { restarts: 0, reloads: 0, upgrades: 0 },
        startedAt: 95_000,
        serviceStartedAt: 95_000,
        last: {},
        slots,
        balance,
      } as StatusReport,
      () => 1_000,
      100_000,
    );

  it.each<[string, StatusReport['balance'], string]>([
    ['weighed', { enabled: true, spread: 2, shed: 1, weights: { 0: 8, 1: 56 } }, '; balance: spread 2, 1 shed, new connections by weight 8:56\n'],
    ['not weighed yet', { enabled: true, spread: 2, shed: 1 }, '; balance: spread 2, 1 shed\n'],
    ['paused', { enabled: true, paused: 'a reload', spread: 0, shed: 0, weights: { 0: 32, 1: 32 } }, 'new connections by weight 32:32 (paused: a reload)\n'],
  ])('reuseport status tells them in slot order (%s)', (_name, balance, line) => {
    expect(formatStatus(report(balance))).toContain(line);
  });

  it('GET /metrics: reuseport_slot_steering_weight per slot', async () => {
    const registry = metricsRegistry({ stats: () => slots, counts: () => ({ restarts: 0, reloads: 0, upgrades: 0, cut: 0 }), ready: () => true });
    const text = await registry.metrics();
    expect(text).toContain('reuseport_slot_steering_weight{slot="0"} 8');
    expect(text).toContain('reuseport_slot_steering_weight{slot="1"} 56');
  });
});
