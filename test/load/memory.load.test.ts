// Memory recycling under load: a worker growing 8 MB every 200 ms under --max-memory-restart 150M,
// 2 workers, 300 new connections/s for 10 s (an open loop on 127.0.0.1, each request on a new
// connection): the workers are replaced (the new pids answer), none fails, the output says memory.
import http from 'node:http';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SeenProcesses } from '../helpers/pids';
import { fixtures } from '../helpers/processes';
import { freePort, startRunner } from '../helpers/runner';

const seen = new SeenProcesses();
afterEach(() => seen.killAll());

// One GET on a new connection: its body, or why it failed.
function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 5_000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => (response.statusCode === 200 ? resolve(body) : reject(new Error(`status ${response.statusCode}`))));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error('timed out after 5 s')));
    request.on('error', reject);
  });
}

describe('--max-memory-restart under load', () => {
  it('300 new connections/s for 10 s while leaking workers are recycled: 0 failed, the new pids answer, the output says memory', async () => {
    const port = await freePort();
    const runner = startRunner(['start', '-i', '2', '--max-memory-restart', '150M', '--json', path.join(fixtures, 'leak-app.js')], seen, {
      PORT: String(port),
    });
    await runner.next((line) => line.event === 'ready', 0, 30_000);
    const answered = new Map<string, number>();
    const errors = new Map<string, number>();
    const pending: Promise<void>[] = [];
    const started = Date.now();
    // Open loop: 3 requests every 10 ms, whatever the answers do.
    for (let tick = 0; tick < 1_000; tick += 1) {
      const due = started + tick * 10;
      if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
      for (let i = 0; i < 3; i += 1) {
        pending.push(
          get(port).then(
            (body) => void answered.set(body, (answered.get(body) ?? 0) + 1),
            (error: Error) => void errors.set(error.message, (errors.get(error.message) ?? 0) + 1),
          ),
        );
      }
    }
    await Promise.all(pending);
    const restarts = runner.lines.filter((line) => line.event === 'restart');
    for (const line of restarts) seen.add(line.by as number);
    const sent = pending.length;
    const failed = [...errors.values()].reduce((sum, count) => sum + count, 0);
    console.log(
      `memory recycling: ${failed} of ${sent} failed ${JSON.stringify(Object.fromEntries(errors))}; ${restarts.length} restarts in ${Date.now() - started} ms; ${answered.size} pids answered`,
    );
    expect(failed).toBe(0);
    expect(new Set(restarts.map((line) => line.slot)).size).toBe(2);
    for (const line of restarts) expect(line.reason).toBe('memory');
    // Every replacement that served for a while answered (the last ones may have come as the loop ended).
    const servedLong = restarts.filter((line) => Date.parse(line.time as string) < started + 8_000);
    expect(servedLong.length).toBeGreaterThan(0);
    for (const line of servedLong) expect(answered.has(String(line.by))).toBe(true);
    runner.child.kill('SIGTERM');
    expect((await runner.exited).code).toBe(0);
  });
});
