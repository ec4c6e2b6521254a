// What the workers (app code) inherit: never systemd's NOTIFY_SOCKET, which only the supervisor
// speaks on (READY, MAINPID, the fd store); everything else of the supervisor's environment as before.
import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { fetchPath } from './helpers/http';
import { SeenProcesses } from './helpers/pids';
import { fixtures } from './helpers/processes';
import { freePort, startRunner } from './helpers/runner';

const seen = new SeenProcesses();
afterEach(() => seen.killAll());

describe("the workers' environment", () => {
  it('has no NOTIFY_SOCKET though the runner has one; other variables pass through', async () => {
    const port = await freePort();
    // An abstract name nobody listens on: the runner's own notifications fail with a warning.
    const runner = startRunner(['start', path.join(fixtures, 'runner-app.js'), '-i', '1', '--json'], seen, {
      PORT: String(port),
      NOTIFY_SOCKET: `@reuseport-test-nobody-${process.pid}`,
      X_PASSED: 'kept',
    });
    await runner.next((line) => line.event === 'ready');
    expect(JSON.parse(await fetchPath(port, '/env?name=NOTIFY_SOCKET'))).toBe(null);
    expect(JSON.parse(await fetchPath(port, '/env?name=X_PASSED'))).toBe('kept');
    runner.child.kill('SIGTERM');
    expect((await runner.exited).code).toBe(0);
  });
});
