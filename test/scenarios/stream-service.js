// The service for the long-lived-traffic scenarios (test/scenarios/streams.js): a supervisor over
// SCENARIO_EXEC (test/scenarios/worker.js for HTTPS, stream-app.js otherwise) on SCENARIO_PORT, with
// SCENARIO_WORKERS workers and drainTimeoutMs SCENARIO_DRAIN_MS. SIGHUP reloads (one JSON line with
// what reload() resolved and how long it took), SIGUSR2 upgrades in place (the successor runs this
// same file), SIGTERM drains and exits (startCluster's own shutdown). Every generation, and every worker, writes JSON lines on the
// stdout they share (a line is one write, under PIPE_BUF: lines never interleave).
'use strict';
const path = require('node:path');
const { startCluster } = require('../..');

const say = (event) => process.stdout.write(`${JSON.stringify({ pid: process.pid, ...event })}\n`);

startCluster({
  exec: path.join(__dirname, process.env.SCENARIO_EXEC ?? 'stream-app.js'),
  workers: Number(process.env.SCENARIO_WORKERS ?? 2),
  drainTimeoutMs: Number(process.env.SCENARIO_DRAIN_MS ?? 5_000),
  env: {
    SCENARIO_PORT: process.env.SCENARIO_PORT ?? '8000',
    SCENARIO_APP: process.env.SCENARIO_APP ?? 'sse',
    SCENARIO_TLS: process.env.SCENARIO_TLS ?? '0',
  },
  upgradeOnSigusr2: true,
}).then(
  (supervisor) => {
    supervisor.on('upgrade', (event) => say({ gen: 'upgrade', successor: event.pid }));
    supervisor.on('upgrade-failed', (error) => say({ gen: 'upgrade-failed', error: error.message }));
    process.on('SIGHUP', () => {
      const started = performance.now();
      const old = supervisor.pids;
      supervisor.reload().then(
        (result) => say({ gen: 'reload', ms: Math.round(performance.now() - started), old, ...result }),
        (error) => say({ gen: 'reload-failed', error: error.message }),
      );
    });
    say({ gen: 'ready', pids: supervisor.pids });
  },
  (error) => {
    say({ gen: 'failed', error: error.message });
    process.exit(1);
  },
);
