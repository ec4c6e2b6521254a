// A short getsockopt(TCP_INFO) answer, as qemu-user gives (4 of 104 bytes): the addon's acceptQueue
// must refuse it (ENOTSUP) instead of reading zeroes as an empty queue, and the supervisor's slot
// sockets must then read the queue from the port's listener table (sock_diag, else /proc/net/tcp).
// The short answer is made by test/fixtures/short-tcp-info.c, an LD_PRELOAD library that runs the
// real getsockopt and cuts its answer (what the kernel's own length out-parameter reports), in a
// child process with 2 real connections waiting on 127.0.0.1. The real short answer runs under qemu
// in `npm run test:arm64`.
import { execFile } from 'node:child_process';
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

async function readQueue(keep: number | undefined): Promise<{ addon: Record<string, unknown>; queued: number; source: string }> {
  const env = { ...process.env, ...(keep === undefined ? {} : { LD_PRELOAD: shim, SHORT_TCP_INFO: String(keep) }) };
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
