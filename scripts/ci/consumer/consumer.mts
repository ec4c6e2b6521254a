// Type-checked only: the ES module face and its types, as a TypeScript user imports them.
import http from 'node:http';
import { type ListenResult, listenReusePort } from 'reuseport';

const server = http.createServer((_req, res) => res.end('ok'));
const info: ListenResult = await listenReusePort(server, 0, { host: '127.0.0.1', backlog: 128 });
const mode: 'reuseport' | 'round-robin' | 'shared' | 'exclusive' = info.mode;
const port: number = info.address.port;
console.log(mode, port, info.reasons.join('\n'));

// The preload hook's subpath and its types.
import { isHookInstalled } from 'reuseport/register';
const hooked: boolean = isHookInstalled();
console.log(hooked);
