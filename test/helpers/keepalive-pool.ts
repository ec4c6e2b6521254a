// An undici Pool of 4 keep-alive connections against 2 workers that answer "<pid>:<client port>"
// (test/fixtures/balance-worker.js), directly or through a proxy (the client port is then the
// proxy's upstream connection's): which worker holds which connection, and whether they even out.
import { Pool } from 'undici';

/** Connections per worker (client port -> worker pid), sorted, 2 workers: [1, 3] etc. */
export function split(holders: Map<number, number>): number[] {
  const per = new Map<number, number>();
  for (const pid of holders.values()) per.set(pid, (per.get(pid) ?? 0) + 1);
  return [...per.values(), ...Array(Math.max(0, 2 - per.size)).fill(0)].sort();
}

export async function get(pool: Pool, path: string): Promise<{ pid: number; port: number }> {
  const { statusCode, body } = await pool.request({ method: 'GET', path });
  const text = await body.text();
  if (statusCode !== 200) throw new Error(`status ${statusCode}`);
  const [pid, port] = text.split(':').map(Number) as [number, number];
  return { pid, port };
}

/** A pool and what to close with it (a proxy started for it). */
export interface Front {
  pool: Pool;
  close(): Promise<void>;
}

/**
 * A front (`open`) whose 4 connections landed unevenly on the 2 workers: its first 4 requests (at
 * once, one per connection) say where. One that landed 2/2 is closed and another opened (at most 20;
 * each lands 2/2 with p = 3/8).
 */
export async function unevenFront(open: () => Promise<Front>): Promise<{ front: Front; first: number[] }> {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const front = await open();
    const answers = await Promise.all([0, 1, 2, 3].map(() => get(front.pool, '/')));
    const holders = new Map(answers.map(({ pid, port }) => [port, pid]));
    if (holders.size === 4 && split(holders)[0] !== 2) return { front, first: split(holders) };
    await front.close();
  }
  throw new Error('20 pools of 4 connections all landed 2/2');
}

/**
 * Keeps the pool's 4 connections busy (4 loops, 1 ms of CPU a request) until the last 40 answers
 * came over exactly 4 connections, 2 per worker, or `boundMs` passes; counts the failures.
 */
export async function runUntilEven(pool: Pool, boundMs: number): Promise<{ even: boolean; ms: number; failed: number; requests: number }> {
  const started = performance.now();
  const recent: { pid: number; port: number }[] = [];
  let even = false;
  let failed = 0;
  let requests = 0;
  const loop = async () => {
    while (!even && performance.now() - started < boundMs) {
      try {
        recent.push(await get(pool, '/?cpu=1'));
        requests += 1;
      } catch {
        failed += 1;
      }
      if (recent.length > 40) recent.shift();
      if (recent.length === 40) {
        const holders = new Map(recent.map(({ pid, port }) => [port, pid]));
        if (holders.size === 4 && split(holders).join() === '2,2') even = true;
      }
    }
  };
  await Promise.all([loop(), loop(), loop(), loop()]);
  return { even, ms: Math.round(performance.now() - started), failed, requests };
}

/** Keeps the pool's 4 connections busy for `ms` (as runUntilEven does); counts the requests and failures. */
export async function runFor(pool: Pool, ms: number): Promise<{ requests: number; failed: number; perWorker: Map<number, number> }> {
  const until = performance.now() + ms;
  const perWorker = new Map<number, number>();
  let requests = 0;
  let failed = 0;
  const loop = async () => {
    while (performance.now() < until) {
      try {
        const { pid } = await get(pool, '/?cpu=1');
        perWorker.set(pid, (perWorker.get(pid) ?? 0) + 1);
        requests += 1;
      } catch {
        failed += 1;
      }
    }
  };
  await Promise.all([loop(), loop(), loop(), loop()]);
  return { requests, failed, perWorker };
}
