// The whole service for the deploy scenarios: a supervisor (startCluster over test/scenarios/worker.js
// on SCENARIO_PORT) that upgrades on SIGUSR2 and drains and exits on SIGTERM. Every generation writes
// one JSON line per event on stdout (successors inherit it). SCENARIO_BROKEN_SUCCESSOR=exit makes a
// successor of an upgrade exit at once, before startCluster.
'use strict';
const path = require('node:path');
const { startCluster } = require('../..');

const say = (event) => process.stdout.write(`${JSON.stringify({ pid: process.pid, ...event })}\n`);
if (process.env.SCENARIO_BROKEN_SUCCESSOR === 'exit' && process.env.REUSEPORT_HANDOVER) process.exit(3);

// SCENARIO_WORKERS may be a list ("3,1,3"): generation n of an upgrade chain runs the n-th count;
// each generation tells its successor (which inherits this environment) which one it is.
const counts = (process.env.SCENARIO_WORKERS ?? '2').split(',').map(Number);
const generation = Number(process.env.SCENARIO_GENERATION ?? 0);
process.env.SCENARIO_GENERATION = String(generation + 1);

startCluster({
  exec: path.join(__dirname, 'worker.js'),
  workers: counts[generation % counts.length],
  env: { SCENARIO_PORT: process.env.SCENARIO_PORT ?? '8000' },
  upgradeOnSigusr2: true,
}).then(
  (supervisor) => {
    supervisor.on('upgrade', (event) => say({ gen: 'upgrade', successor: event.pid }));
    supervisor.on('upgrade-failed', (error) => say({ gen: 'upgrade-failed', error: error.message }));
    process.on('SIGTERM', () => supervisor.close().then(() => process.exit(0)));
    say({ gen: 'ready', pids: supervisor.pids, reasons: supervisor.plan.reasons });
  },
  (error) => {
    say({ gen: 'failed', error: error.message });
    process.exit(1);
  },
);
