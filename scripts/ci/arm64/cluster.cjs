// Under the arm64 Node (qemu): startCluster of the installed package with 2 workers (worker.cjs).
// There is no binfmt_misc here, so node:cluster cannot start the aarch64 node binary itself:
// process.execPath is set to REUSEPORT_ARM64_NODE, a wrapper that runs it under qemu. Prints JSON
// lines: { type: 'ready' | 'reloaded', pids, ports, steering, workers } (workers: each worker's
// listenReusePort info by pid, for the current pids); obeys 'reload' and 'close' lines on stdin.
'use strict';
const cluster = require('node:cluster');
const path = require('node:path');
const readline = require('node:readline');
const { startCluster } = require('reuseport');

process.execPath = process.env.REUSEPORT_ARM64_NODE;
const infos = new Map();
cluster.on('message', (_worker, message) => {
  if (message && message.type === 'info') infos.set(message.pid, message);
});

// Waits (bounded) until every current worker has told its info.
async function told(pids) {
  const deadline = Date.now() + 60_000;
  while (!pids.every((pid) => infos.has(pid))) {
    if (Date.now() > deadline) throw new Error(`workers ${pids.filter((pid) => !infos.has(pid)).join(',')} never told their info`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return pids.map((pid) => infos.get(pid));
}

startCluster({ exec: path.join(__dirname, 'worker.cjs'), workers: 2 }).then(
  async (supervisor) => {
    const state = async (type) => {
      const pids = supervisor.pids;
      const workers = await told(pids);
      console.log(
        JSON.stringify({
          type,
          pids,
          ports: supervisor.ports,
          plan: { mode: supervisor.plan.mode, backend: supervisor.plan.backend },
          steering: supervisor.steering(),
          workers,
        }),
      );
    };
    await state('ready');
    for await (const line of readline.createInterface({ input: process.stdin })) {
      if (line === 'reload') {
        await supervisor.reload();
        await state('reloaded');
      } else if (line === 'close') {
        await supervisor.close();
        console.log(JSON.stringify({ type: 'closed' }));
        process.exit(0);
      }
    }
  },
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
