// When a start counts as settled (lib/supervisor/core/settle.ts): quiet for a while after the last
// listen, not while a socket a worker asked for is still on its way, and never past the bound.
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LISTEN_SETTLE_MAX_MS, LISTEN_SETTLE_MS, PendingListens, whenQuiet } from '../lib/supervisor/core/settle';

describe('PendingListens', () => {
  const a = { id: 'a' };
  const b = { id: 'b' };
  it.each<[string, [object, string][], boolean]>([
    ['nothing heard', [], false],
    ['a slot asked for', [[a, 'slot']], true],
    [
      'asked, then listened',
      [
        [a, 'slot'],
        [a, 'listening'],
      ],
      false,
    ],
    [
      'asked, then failed',
      [
        [a, 'slot'],
        [a, 'failed'],
      ],
      false,
    ],
    [
      'asked twice, listened once',
      [
        [a, 'slot'],
        [a, 'slot'],
        [a, 'listening'],
      ],
      true,
    ],
    [
      'one worker listened, the other still asks',
      [
        [a, 'slot'],
        [b, 'slot'],
        [a, 'listening'],
      ],
      true,
    ],
    [
      'a listen with no ask (a UDP bind) leaves nothing below zero',
      [
        [a, 'listening'],
        [a, 'slot'],
      ],
      true,
    ],
    [
      'other messages change nothing',
      [
        [a, 'slot'],
        [a, 'beat'],
        [a, 'keys-request'],
        [a, 'release'],
      ],
      true,
    ],
  ])('%s', (_name, heard, any) => {
    const pending = new PendingListens();
    for (const [worker, act] of heard) pending.heard(worker, act);
    expect(pending.any).toBe(any);
  });

  it('forgets a worker that exited with a socket still asked for', () => {
    const pending = new PendingListens();
    pending.heard(a, 'slot');
    pending.forget(a);
    expect(pending.any).toBe(false);
  });
});

describe('whenQuiet', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  // The time (fake ms) at which the promise resolved, or undefined if it has not by `until`.
  async function settledAt(promise: Promise<void>, until: number): Promise<number | undefined> {
    let at: number | undefined;
    void promise.then(() => {
      at = Date.now();
    });
    const start = Date.now();
    for (let t = 0; t < until && at === undefined; t += 10) await vi.advanceTimersByTimeAsync(10);
    return at === undefined ? undefined : at - start;
  }

  it('resolves a quiet while after the last event', async () => {
    const emitter = new EventEmitter();
    const quiet = whenQuiet(emitter, 'listening');
    setTimeout(() => emitter.emit('listening'), 150);
    expect(await settledAt(quiet, 5_000)).toBe(150 + LISTEN_SETTLE_MS);
  });

  it('waits while something is pending, and resolves a quiet while after the event that ends it', async () => {
    const emitter = new EventEmitter();
    let pending = true;
    const quiet = whenQuiet(emitter, 'listening', () => pending);
    setTimeout(() => {
      pending = false;
      emitter.emit('listening');
    }, 700);
    expect(await settledAt(quiet, 5_000)).toBe(700 + LISTEN_SETTLE_MS);
  });

  it('resolves at the next look once nothing is pending, with no event (a failed listen)', async () => {
    const emitter = new EventEmitter();
    let pending = true;
    const quiet = whenQuiet(emitter, 'listening', () => pending);
    setTimeout(() => {
      pending = false;
    }, 500);
    // Looks every quiet while: at 200, 400 (pending), 600 (not).
    expect(await settledAt(quiet, 5_000)).toBe(3 * LISTEN_SETTLE_MS);
  });

  it('never waits past its bound, whatever is pending or heard', async () => {
    const emitter = new EventEmitter();
    const quiet = whenQuiet(emitter, 'listening', () => true);
    const chatter = setInterval(() => emitter.emit('listening'), 50);
    expect(await settledAt(quiet, 10_000)).toBe(LISTEN_SETTLE_MAX_MS);
    clearInterval(chatter);
    expect(emitter.listenerCount('listening')).toBe(0);
  });
});
