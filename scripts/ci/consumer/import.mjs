// An ES module user of the installed tarball: listen with import, serve one request.
import http from 'node:http';
import { listenReusePort } from 'reuseport';
import check from './check.cjs';

const server = http.createServer((req, res) => res.end(`hello from ${process.pid}\n`));
const info = await listenReusePort(server, 0, { host: '127.0.0.1' });
await check.checkServed('import', server, info);
