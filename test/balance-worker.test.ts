// The worker's side of balance, in this process: its load written into a real progress cell, the
// 'request' listener present only while armed, and which responses get `Connection: close`.
import type { Worker } from 'node:cluster';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ProgressBoard } from '../lib/supervisor/slots/progress-board';
import { Balance } from '../lib/worker/balance';
import { ProgressCell } from '../lib/worker/progress';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0).reverse()) close();
});

const worker = { id: 1 } as unknown as Worker;

function cellAndBoard(): { board: ProgressBoard; cell: ProgressCell } {
  const board = ProgressBoard.open();
  if (!(board instanceof ProgressBoard)) throw board;
  closers.push(() => board.close());
  const assigned = board.assign();
  if (!assigned) throw new Error('no cell');
  board.bind(worker, assigned.cell);
  return { board, cell: ProgressCell.open(assigned.env, process.pid) as ProgressCell };
}

async function listening(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => {
    server.close();
    (server as http.Server).closeAllConnections?.();
  });
  return (server.address() as net.AddressInfo).port;
}

// Sends raw requests on one connection, one after the other; resolves with each response's head.
function exchange(port: number, requests: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const heads: string[] = [];
    let buffer = '';
    const next = () => {
      const request = requests[heads.length];
      if (request === undefined) {
        socket.end();
        resolve(heads);
      } else socket.write(request);
    };
    socket.on('connect', next);
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buffer.slice(0, end);
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (buffer.length < end + 4 + length) return;
      buffer = buffer.slice(end + 4 + length);
      heads.push(head.toLowerCase());
      next();
    });
    socket.on('close', () => resolve(heads));
    socket.on('error', reject);
  });
}

const GET11 = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
const GET10 = 'GET / HTTP/1.0\r\nHost: x\r\n\r\n';

describe('Balance in a worker', () => {
  it('writes its open connections and sheds into its cell, only when they change', async () => {
    const { board, cell } = cellAndBoard();
    const server = http.createServer((_, response) => response.end('ok'));
    const port = await listening(server);
    const balance = new Balance(new Set([server]), cell, 60_000);
    closers.push(() => balance.stop());
    balance.report();
    expect(board.loads().get(worker)).toMatchObject({ open: 0, shed: 0 });
    const sockets = await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<net.Socket>((resolve) => {
            const s = net.connect(port, '127.0.0.1', () => resolve(s));
          }),
      ),
    );
    closers.push(() => sockets.forEach((socket) => socket.destroy()));
    const deadline = performance.now() + 5_000;
    while (balance.open < 3 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    balance.report();
    expect(board.loads().get(worker)).toMatchObject({ open: 3, shed: 0 });
  });

  it("has a 'request' listener only while armed, and never on an http2 server", async () => {
    const { cell } = cellAndBoard();
    const server = http.createServer((_, response) => response.end('ok'));
    const h2 = http2.createServer();
    const balance = new Balance(new Set<net.Server>([server, h2 as unknown as net.Server]), cell, 60_000);
    closers.push(() => balance.stop());
    expect([server.listenerCount('request'), h2.listenerCount('request')]).toEqual([1, 0]);
    balance.setLimit(2);
    expect([server.listenerCount('request'), h2.listenerCount('request')]).toEqual([2, 0]);
    balance.setLimit(3);
    expect(server.listenerCount('request')).toBe(2);
    balance.setLimit(null);
    expect(server.listenerCount('request')).toBe(1);
    const later = http.createServer();
    balance.added(later);
    expect(later.listenerCount('request')).toBe(0);
    balance.setLimit(0);
    const added = http.createServer();
    balance.added(added);
    expect(added.listenerCount('request')).toBe(1);
  });

  it('over its limit: an HTTP/1.1 keep-alive response gets Connection: close, once per budget; HTTP/1.0 is left alone', async () => {
    // The budget's clock (performance.now) moves only when the test moves it: a pause of the test on a busy
    // machine refills no token (one per 100 ms of that clock).
    let clock = 1_000;
    const now = vi.spyOn(performance, 'now').mockImplementation(() => clock);
    closers.push(() => now.mockRestore());
    const { cell } = cellAndBoard();
    const server = http.createServer((_, response) => response.end('ok'));
    const port = await listening(server);
    const balance = new Balance(new Set([server]), cell, 60_000);
    closers.push(() => balance.stop());
    // Not armed: keep-alive.
    expect((await exchange(port, [GET11, GET11])).map((head) => head.includes('connection: close'))).toEqual([false, false]);
    // Armed with a limit of 0 (this connection is over it): the first response closes the connection.
    balance.setLimit(0);
    const heads = await exchange(port, [GET11, GET11]);
    expect(heads).toHaveLength(1);
    expect(heads[0]).toContain('connection: close');
    expect(balance.shed).toBe(1);
    // The budget is spent (one per 100 ms): the next connection keeps alive.
    expect((await exchange(port, [GET11, GET11])).map((head) => head.includes('connection: close'))).toEqual([false, false]);
    // An HTTP/1.0 request closes anyway: not counted as shed (with a token to spend).
    clock += 150;
    await exchange(port, [GET10]);
    expect(balance.shed).toBe(1);
    // Not armed: keep-alive again (with a token to spend).
    balance.setLimit(null);
    clock += 150;
    expect((await exchange(port, [GET11, GET11])).map((head) => head.includes('connection: close'))).toEqual([false, false]);
  });
});
