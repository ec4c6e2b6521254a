// HTTP clients for tests: every request on a new connection, bounded in time.
import http from 'node:http';
import net from 'node:net';

/** GETs / on a fresh connection (no agent) and resolves with the body. */
export function fetchOnce(port: number, host = '127.0.0.1', timeoutMs = 5_000): Promise<string> {
  return fetchPath(port, '/', { host, timeoutMs });
}

/** GETs `path` on a fresh connection (no agent), from `localAddress` if given, and resolves with the body. */
export function fetchPath(
  port: number,
  path: string,
  { host = '127.0.0.1', timeoutMs = 5_000, localAddress }: { host?: string; timeoutMs?: number; localAddress?: string } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host, port, path, localAddress, agent: false, timeout: timeoutMs }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => {
        body += chunk;
      });
      response.on('end', () => resolve(body));
      response.on('error', reject);
    });
    const from = localAddress ? ` from ${localAddress}` : '';
    request.on('timeout', () => request.destroy(new Error(`request to ${host}:${port}${from} timed out after ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}

/** GETs / from the local address `source` (127.0.0.10 and the like: all of 127/8 is lo) on a fresh connection: the body. */
export function fetchFrom(port: number, source: string, { host = '127.0.0.1', timeoutMs = 5_000 } = {}): Promise<string> {
  return fetchPath(port, '/', { host, timeoutMs, localAddress: source });
}

/** Sends `count` requests, `concurrency` at a time, each on a new connection; counts bodies. */
export async function countResponses(port: number, count: number, { host = '127.0.0.1', concurrency = 10 } = {}): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let issued = 0;
  const lane = async () => {
    while (issued < count) {
      issued += 1;
      const body = await fetchOnce(port, host);
      counts.set(body, (counts.get(body) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return counts;
}

/** Whether a TCP connection to host:port is accepted (then closed at once). */
export function canConnect(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
