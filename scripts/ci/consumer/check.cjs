// Shared by the consumers: one HTTP request to the server, then proof of which addon file is mapped
// into this process (it must be the tarball's prebuild: nothing was compiled at install).
'use strict';
const fs = require('node:fs');
const http = require('node:http');

function get(port) {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve(body));
    });
    request.on('error', reject);
    request.setTimeout(5000, () => request.destroy(new Error('request timed out')));
  });
}

async function checkServed(name, server, info) {
  const body = await get(info.address.port);
  await new Promise((resolve) => server.close(resolve));
  const addons = fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .map((line) => line.split(/\s+/).slice(5).join(' '))
    .filter((file) => file.endsWith('.node'));
  const loaded = [...new Set(addons)];
  const problems = [];
  if (body !== `hello from ${process.pid}\n`) problems.push(`unexpected body ${JSON.stringify(body)}`);
  if (info.mode !== 'reuseport') problems.push(`mode ${info.mode}: ${info.reasons.join(' ')}`);
  const prebuild = `/node_modules/reuseport/prebuilds/${process.platform}-${process.arch}/reuseport.glibc.node`;
  if (loaded.length !== 1 || !loaded[0].endsWith(prebuild)) {
    problems.push(`expected ${prebuild} to be loaded, found ${JSON.stringify(loaded)}`);
  }
  if (problems.length > 0) throw new Error(`${name}: ${problems.join('; ')}`);
  console.log(`${name}: ${info.mode} via ${info.backend} on 127.0.0.1:${info.address.port}, served; addon ${loaded[0]}`);
}

module.exports = { checkServed };
