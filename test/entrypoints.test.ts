// The package's two faces: `require('reuseport')` and `import 'reuseport'` give the same API and types.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const root = path.join(__dirname, '..');
const run = (args: string[]) => promisify(execFile)(process.execPath, args, { cwd: root, timeout: 20_000, killSignal: 'SIGKILL' });

const listenAndReport = `
  const server = net.createServer();
  const info = await api.listenReusePort(server, 0, { host: '127.0.0.1' });
  console.log(JSON.stringify({ mode: info.mode, port: info.address.port, names: Object.keys(api).sort() }));
  server.close();
`;

it('works through require()', async () => {
  const { stdout } = await run(['-e', `const api = require('reuseport'); const net = require('node:net'); (async () => { ${listenAndReport} })();`]);
  const report = JSON.parse(stdout);
  expect(report.mode).toBe('reuseport');
  expect(report.port).toBeGreaterThan(0);
  expect(report.names).toContain('listenReusePort');
});

it('works through import, with the same exports as require', async () => {
  const { stdout: required } = await run(['-p', "JSON.stringify(Object.keys(require('reuseport')).sort())"]);
  const { stdout } = await run([
    '--input-type=module',
    '-e',
    `import * as api from 'reuseport'; import net from 'node:net'; ${listenAndReport.replace('Object.keys(api)', "Object.keys(api).filter((k) => k !== 'default')")}`,
  ]);
  const report = JSON.parse(stdout);
  expect(report.mode).toBe('reuseport');
  expect(report.names).toEqual(JSON.parse(required));
});
