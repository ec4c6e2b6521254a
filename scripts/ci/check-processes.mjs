// Reads a log written by record-process.cjs and checks that every Node process ran the expected
// version and every load of reuseport.node came from the expected file.
// Usage: node check-processes.mjs <log> --node <v22.12.0> [--addon <path to reuseport.node>]
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { node: { type: 'string' }, addon: { type: 'string' } },
});
const [logFile] = positionals;
if (!logFile || !values.node) {
  console.error('usage: check-processes.mjs <log> --node <version> [--addon <file>]');
  process.exit(2);
}

const lines = fs.readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
const versions = lines.filter((l) => l.startsWith('node ')).map((l) => l.split(' ')[1]);
const addonLoads = lines
  .filter((l) => l.startsWith('addon '))
  .map((l) => l.split(' ').slice(2).join(' '))
  .filter((file) => path.basename(file) === 'reuseport.node' || file.includes(`${path.sep}prebuilds${path.sep}`));

const problems = [];
const wrongNode = versions.filter((v) => v !== values.node);
if (versions.length === 0) problems.push('no Node process was recorded');
if (wrongNode.length > 0) {
  problems.push(`${wrongNode.length} process(es) ran another Node: ${[...new Set(wrongNode)].join(', ')}`);
}
if (values.addon) {
  const expected = fs.realpathSync(values.addon);
  const wrongAddon = addonLoads.filter((file) => {
    try {
      return fs.realpathSync(file) !== expected;
    } catch {
      return true;
    }
  });
  if (addonLoads.length === 0) problems.push('the addon was never loaded');
  if (wrongAddon.length > 0) {
    problems.push(`${wrongAddon.length} load(s) of another addon build: ${[...new Set(wrongAddon)].join(', ')}`);
  }
}

const addonNote = values.addon ? `; the addon was loaded ${addonLoads.length} times, every time from ${values.addon}` : '';
if (problems.length > 0) {
  console.error(`check-processes: ${problems.join('; ')}`);
  process.exit(1);
}
console.log(`check-processes: ${versions.length} Node processes, all ${values.node}${addonNote}`);
