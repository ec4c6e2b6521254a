// A short getsockopt(TCP_INFO) answer, as qemu-user gives (4 of 104 bytes): the addon's acceptQueue
// must refuse it (ENOTSUP) instead of reading zeroes as an empty queue, and the supervisor's slot
// sockets must then read the queue from the port's listener table (sock_diag, else /proc/net/tcp),
// or, where nothing can be read, say that stall detection is off. The short answer is made by
// test/fixtures/short-tcp-info.c, an LD_PRELOAD library that runs the real getsockopt and cuts its
// answer (what the kernel's own length out-parameter reports); it can also refuse NETLINK_SOCK_DIAG
// (as qemu does) and hide /proc/net/tcp{,6}. Child processes with real connections on 127.0.0.1.
// The real short answer runs under qemu in `npm run test:arm64`.
import { execFile, fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chooseQueueSource, queueSourceReason } from '../lib/supervisor/slots/slot-sockets';

const run = promisify(execFile);
const fixtures = path.join(__dirname, 'fixtures');
let dir = '';
let shim = '';

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-short-tcp-info-'));
  shim = path.join(dir, 'short-tcp-info.so');
  await run('cc', ['-shared', '-fPIC', '-O1', '-Wall', '-Werror', '-o', shim, path.join(fixtures, 'short-tcp-info.c'), '-ldl'], { timeout: 60_000 });
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

// The shim after whatever is preloaded already (the sanitizer suite's ASan runtime must come first).
const preload = () => [process.env.LD_PRELOAD, shim].filter(Boolean).join(' ');

async function readQueue(keep: number | undefined): Promise<{ addon: Record<string, unknown>; queued: number; source: string }> {
  const env = { ...process.env, ...(keep === undefined ? {} : { LD_PRELOAD: preload(), SHORT_TCP_INFO: String(keep) }) };
  const { stdout } = await run(process.execPath, [path.join(fixtures, 'accept-queue.js')], { env, timeout: 30_000 });
  return JSON.parse(stdout.trim());
}

describe('acceptQueue with a short TCP_INFO answer', () => {
  it('reads the queue with the whole answer', async () => {
    expect(await readQueue(undefined)).toEqual({ addon: { queued: 2, limit: 511 }, queued: 2, source: 'tcp-info' });
  });

  it("refuses qemu's 4 bytes with ENOTSUP, and the slot sockets read the listener table instead", async () => {
    expect(await readQueue(4)).toEqual({
      addon: { code: 'ENOTSUP', errno: -os.constants.errno.ENOTSUP, syscall: 'getsockopt' },
      queued: 2,
      source: 'listeners',
    });
  });

  // tcpi_sacked, the last field read, ends at byte 32: an answer that holds it is enough (an older
  // kernel than the build's headers writes less than sizeof(tcp_info)); one byte less is not.
  it.each<[number, string]>([
    [32, 'tcp-info'],
    [31, 'listeners'],
  ])('an answer of %i bytes: %s', async (keep, source) => {
    const result = await readQueue(keep);
    expect(result.source).toBe(source);
    expect(result.queued).toBe(2);
    if (source === 'tcp-info') expect(result.addon).toEqual({ queued: 2, limit: 511 });
    else expect(result.addon).toMatchObject({ code: 'ENOTSUP' });
  });
});

interface ClusterReport {
  reasons: string[][];
  events: { name: string; slot?: number; reason?: string }[];
  error?: string;
}

// startCluster in a child under the library (test/fixtures/queue-source.js); stopped by its pid.
function runCluster(env: Record<string, string>): Promise<ClusterReport> {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(fixtures, 'queue-source.js'), { env: { ...process.env, LD_PRELOAD: preload(), ...env }, stdio: 'inherit' });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('queue-source.js did not report within 60 s'));
    }, 60_000);
    child.once('message', (report: ClusterReport) => {
      clearTimeout(timer);
      if (report.error) reject(new Error(report.error));
      else resolve(report);
    });
    child.once('exit', () => clearTimeout(timer));
  }).finally(() => undefined) as Promise<ClusterReport>;
}

describe("startCluster with qemu's view (short TCP_INFO, no sock_diag)", () => {
  it("sees a blocked worker's queue in /proc/net/tcp, and tells the workers so", async () => {
    const report = await runCluster({ SHORT_TCP_INFO: '4', NO_SOCK_DIAG: '1' });
    expect(report.reasons).toHaveLength(2);
    for (const reasons of report.reasons) expect(reasons.join(' ')).toMatch(/accept queues are read from the port's listener table/);
    expect(report.events).toContainEqual({ name: 'stall', slot: 0 });
    expect(report.events.filter((event) => event.name === 'stall-detection-off')).toEqual([]);
  });

  it('says stall detection is off where /proc/net/tcp is hidden too, and sees no stall', async () => {
    const report = await runCluster({ SHORT_TCP_INFO: '4', NO_SOCK_DIAG: '1', NO_PROC_NET_TCP: '1' });
    expect(report.reasons).toHaveLength(2);
    for (const reasons of report.reasons) expect(reasons.join(' ')).toMatch(/Stall protection is off: stall detection is off: /);
    expect(report.events.filter((event) => event.name === 'stall-detection-off')).toEqual([{ name: 'stall-detection-off', reason: queueSourceReason('none') }]);
    expect(report.events.filter((event) => event.name === 'stall')).toEqual([]);
  });
});

describe('chooseQueueSource', () => {
  it.each<[string | undefined, boolean, string | undefined]>([
    [undefined, false, 'tcp-info'],
    [undefined, true, 'tcp-info'],
    ['ENOTSUP', true, 'listeners'],
    ['ENOTSUP', false, 'none'],
    ['EINVAL', true, undefined], // not listening yet: decides nothing
    ['EBADF', false, undefined],
  ])('TCP_INFO error %s, listed %s: %s', (error, listed, source) => {
    expect(chooseQueueSource(error, listed)).toBe(source);
  });

  it('says plainly when stall detection is off', () => {
    expect(queueSourceReason('none')).toMatch(/^stall detection is off: /);
    expect(queueSourceReason('listeners')).toMatch(/listener table/);
    expect(queueSourceReason('tcp-info')).toBe('accept queues are read with TCP_INFO');
  });
});
