// A throughput client in its own process, for the CPU-local comparison (bench/cpu-local.mjs): runs
// autocannon once, optionally with its thread pinned to one CPU first. On loopback the CPU that
// sends a SYN is the CPU whose network stack handles it, so pinned clients stand in for a NIC that
// spreads flows over CPUs (RSS); one unpinned client is one busy client.
// Protocol: { type: 'run', options: { url, workload, connections, durationSec, cpu? } } ->
// { type: 'result', result } or { type: 'error', error }.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runAutocannon } from './load.mjs';

const require = createRequire(import.meta.url);

/** Pins this thread to `cpu` with the library's own addon; throws if there is none. */
function pin(cpu) {
  const { loadBinding } = require('../dist/binding.js');
  const { binding, error } = loadBinding();
  if (!binding) throw new Error(`cannot pin the client to CPU ${cpu}: ${error.message}`);
  binding.setCpuAffinity(0, [cpu]);
  return binding.getCpuAffinity(0);
}

if (process.send && process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.on('message', async (msg) => {
    if (msg?.type !== 'run') return;
    try {
      const { cpu, ...options } = msg.options;
      const pinnedTo = cpu === undefined ? null : pin(cpu);
      const result = await runAutocannon(options);
      process.send({ type: 'result', result: { ...result, pinnedTo } });
    } catch (error) {
      process.send({ type: 'error', error: { message: error.message } });
    }
  });
  process.on('disconnect', () => process.exit(0));
}
