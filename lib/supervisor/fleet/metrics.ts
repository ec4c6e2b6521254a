// GET /metrics: the supervisor's figures in a prom-client registry of its own (not prom-client's global
// one), read from the health server's source at each scrape. prom-client is loaded only when the server
// is first asked for them.
import type { SlotStats } from '../core/types';
import type { ServiceCounts } from './outcomes';

/** What the metrics read at each scrape (the health server's source). */
export interface MetricsSource {
  stats(): SlotStats[];
  counts(): ServiceCounts;
  ready(): boolean;
  balance?(): { spread: number };
}

type PromClient = typeof import('prom-client');

/** The registry type, for the health server. */
export type Registry = InstanceType<PromClient['Registry']>;

/** A registry whose metrics read `source` when scraped. */
export function metricsRegistry(source: MetricsSource): Registry {
  const client = require('prom-client') as PromClient;
  const registry = new client.Registry();
  const perSlot = (name: string, help: string, type: 'counter' | 'gauge', value: (slot: SlotStats) => number) => {
    const Metric = type === 'counter' ? client.Counter : client.Gauge;
    new Metric({
      name,
      help,
      labelNames: ['slot'],
      registers: [registry],
      collect() {
        this.reset();
        for (const slot of source.stats()) {
          if (type === 'counter') (this as InstanceType<PromClient['Counter']>).inc({ slot: String(slot.slot) }, value(slot));
          else (this as InstanceType<PromClient['Gauge']>).set({ slot: String(slot.slot) }, value(slot));
        }
      },
    });
  };
  perSlot('reuseport_slot_accepted_total', 'Connections accepted from the slot socket, by its worker or a borrower.', 'counter', (slot) => slot.accepted);
  perSlot('reuseport_slot_queue_depth', 'Connections waiting in the slot socket accept queue at the last sample.', 'gauge', (slot) => slot.queued);
  perSlot('reuseport_slot_stalls_total', 'Stalls seen: the slot worker stopped answering while listening.', 'counter', (slot) => slot.stalls);
  perSlot(
    'reuseport_slot_memory_restarts_total',
    'Workers of the slot replaced because their RSS was over maxMemoryRestart.',
    'counter',
    (slot) => slot.memoryRestarts ?? 0,
  );
  perSlot(
    'reuseport_slot_worker_rss_bytes',
    'The slot worker resident memory at the last check (0: not checked; needs maxMemoryRestart).',
    'gauge',
    (slot) => slot.rss ?? 0,
  );
  const total = (name: string, help: string, value: () => number) =>
    new client.Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(value());
      },
    });
  total('reuseport_worker_restarts_total', 'Workers replaced after they died or stalled for good.', () => source.counts().restarts);
  total('reuseport_reloads_total', 'Reloads of every worker completed.', () => source.counts().reloads);
  total('reuseport_upgrades_total', 'Upgrades in place handed over to a successor.', () => source.counts().upgrades);
  total('reuseport_reload_cut_connections_total', 'Connections the drains of reloads had to cut at drainTimeoutMs.', () => source.counts().cut);
  perSlot('reuseport_slot_connections', 'Open connections of the slot worker at the last read (balance).', 'gauge', (slot) => slot.connections ?? 0);
  perSlot('reuseport_slot_shed_total', 'Keep-alive connections the slot worker closed to even out the load (balance).', 'counter', (slot) => slot.shed ?? 0);
  perSlot(
    'reuseport_slot_steering_weight',
    'The slot steering weight: its share of new connections is its weight over the sum (0: not steered by load) (balance).',
    'gauge',
    (slot) => slot.weight ?? 0,
  );
  new client.Gauge({
    name: 'reuseport_connections_spread',
    help: 'Open connections of the most loaded worker less those of the least loaded (balance).',
    registers: [registry],
    collect() {
      this.set(source.balance?.().spread ?? 0);
    },
  });
  perSlot('reuseport_slot_stopped', '1 while a crash loop has stopped restarting the slot (its socket is lent to live workers).', 'gauge', (slot) =>
    slot.stopped ? 1 : 0,
  );
  new client.Gauge({
    name: 'reuseport_ready',
    help: '1 while every slot is served by its own worker and no shutdown has begun.',
    registers: [registry],
    collect() {
      this.set(source.ready() ? 1 : 0);
    },
  });
  return registry;
}
