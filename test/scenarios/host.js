// One "host" of the fleet scenario: a supervisor serving SCENARIO_PORT on SCENARIO_HOST (an address
// of its own on the namespace's loopback), with its health server on SCENARIO_HEALTH_PORT unless
// that is empty, and shutdownDelayMs from SCENARIO_DELAY_MS. Writes one JSON line when it serves.
'use strict';
const path = require('node:path');
const { startCluster } = require('../..');

const host = process.env.SCENARIO_HOST ?? '127.0.0.1';
const healthPort = process.env.SCENARIO_HEALTH_PORT;
startCluster({
  exec: path.join(__dirname, 'worker.js'),
  workers: 2,
  env: { SCENARIO_PORT: process.env.SCENARIO_PORT ?? '8080', SCENARIO_HOST: host },
  shutdownDelayMs: Number(process.env.SCENARIO_DELAY_MS ?? 0),
  ...(healthPort ? { health: { port: Number(healthPort), host } } : {}),
}).then(
  (supervisor) => process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid, pids: supervisor.pids })}\n`),
  (error) => {
    process.stdout.write(`${JSON.stringify({ ready: false, error: error.message })}\n`);
    process.exit(1);
  },
);
