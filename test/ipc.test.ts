// The IPC module's pure parts: the check of every message a worker can send, the coded refusal, the
// warning limiter, errors across the channel, and dispatch by act.
import { describe, expect, it } from 'vitest';
import { COMMAND, MAX_ERROR_TEXT, dispatch, reviveError, serializeError } from '../lib/cluster/ipc';
import { BAD_MESSAGE, MAX_MESSAGE, MAX_STRING, WarningLimiter, checkWorkerMessage, refusal } from '../lib/cluster/ipc-validate';

const limits = { slots: 4 };
const m = (fields: Record<string, unknown>) => ({ cmd: COMMAND, ...fields });
const long = 'x'.repeat(MAX_STRING + 1);

describe('checkWorkerMessage', () => {
  it.each([
    ['a reservation', m({ act: 'reserve', seq: 1, address: '127.0.0.1', ipv6Only: false })],
    ['a slot request', m({ act: 'slot', seq: 7, address: '::', port: 0, ipv6Only: true, group: 'app' })],
    ['a slot request without group check', m({ act: 'slot', seq: 7, address: '::', port: 65535, ipv6Only: false, group: false })],
    ['a keys request', m({ act: 'keys-request', seq: 2 })],
    ['a listen', m({ act: 'listening', slot: 3, port: 8080 })],
    ['a listen on port 0 (a UDP socket before bind reports)', m({ act: 'listening', slot: 0, port: 0 })],
    ['a release', m({ act: 'release', address: '0.0.0.0', port: 80, ipv6Only: false })],
    ['a drain', m({ act: 'drained', destroyed: 0 })],
    ['a beat', m({ act: 'beat', slot: 1, accepted: { 0: 5, 1: 0, 3: 2 ** 40 } })],
    ['a beat with no counts', m({ act: 'beat', slot: 1, accepted: {} })],
    [
      'a failure',
      m({ act: 'failed', slot: 0, error: { message: 'listen EADDRINUSE', code: 'EADDRINUSE', errno: -98, syscall: 'listen', address: '::', port: 80 } }),
    ],
    ['a failure with only a message', m({ act: 'failed', slot: 0, error: { message: '' } })],
  ])('takes %s', (_, message) => {
    expect(checkWorkerMessage(message, limits)).toEqual({ ok: true, message });
  });

  it.each([
    ['failed without error', m({ act: 'failed', slot: 0 }), /error must be an object with a string message, not undefined/],
    ['failed with error null', m({ act: 'failed', slot: 0, error: null }), /error must be an object.*not null/],
    ['failed with a string error', m({ act: 'failed', slot: 0, error: 'boom' }), /error must be an object/],
    ['failed with a numeric message', m({ act: 'failed', slot: 0, error: { message: 5 } }), /error\.message must be a string/],
    ['failed with a string errno', m({ act: 'failed', slot: 0, error: { message: 'x', errno: '-98' } }), /error\.errno must be an integer/],
    [
      'failed with a huge message',
      m({ act: 'failed', slot: 0, error: { message: 'x'.repeat(MAX_ERROR_TEXT + 1) } }),
      /error\.message must be a string of at most 16384/,
    ],
    ['beat without accepted', m({ act: 'beat', slot: 0 }), /accepted must be an object of counts per slot, not undefined/],
    ['beat with an array', m({ act: 'beat', slot: 0, accepted: [1] }), /accepted must be an object.*not an array/],
    ['beat with a negative count', m({ act: 'beat', slot: 0, accepted: { 0: -5 } }), /accepted\[0\] must be a non-negative integer, not -5/],
    ['beat with a string count', m({ act: 'beat', slot: 0, accepted: { 0: 'x' } }), /accepted\[0\] must be a non-negative integer, not "x"/],
    ['beat with NaN', m({ act: 'beat', slot: 0, accepted: { 0: Number.NaN } }), /not NaN/],
    ['beat with Infinity', m({ act: 'beat', slot: 0, accepted: { 0: Number.POSITIVE_INFINITY } }), /not Infinity/],
    ['beat with a fraction', m({ act: 'beat', slot: 0, accepted: { 0: 1.5 } }), /not 1.5/],
    ['beat with a slot key out of range', m({ act: 'beat', slot: 0, accepted: { 4: 1 } }), /key "4" that is not a slot from 0 to 3/],
    ['beat with a key that is not an index', m({ act: 'beat', slot: 0, accepted: { '01': 1 } }), /key "01"/],
    ['beat with too many keys', m({ act: 'beat', slot: 0, accepted: { 0: 1, 1: 1, 2: 1, 3: 1, x: 1 } }), /5 entries for 4 slots/],
    ['listening with a string port', m({ act: 'listening', slot: 0, port: '99999' }), /port must be an integer from 0 to 65535, not "99999"/],
    ['listening with a port past 65535', m({ act: 'listening', slot: 0, port: 99999 }), /not 99999/],
    ['listening with a negative port', m({ act: 'listening', slot: 0, port: -1 }), /not -1/],
    ['listening on a slot out of range', m({ act: 'listening', slot: 4, port: 80 }), /slot must be an integer from 0 to 3, not 4/],
    ['listening on a fractional slot', m({ act: 'listening', slot: 0.5, port: 80 }), /slot must be an integer/],
    [
      'a slot request without seq',
      m({ act: 'slot', address: '::', port: 0, ipv6Only: false, group: false }),
      /seq must be a non-negative integer, not undefined/,
    ],
    ['a slot request with a negative seq', m({ act: 'slot', seq: -1, address: '::', port: 0, ipv6Only: false, group: false }), /seq must be/],
    [
      'a slot request with an empty address',
      m({ act: 'slot', seq: 1, address: '', port: 0, ipv6Only: false, group: false }),
      /address must be a non-empty string/,
    ],
    [
      'a slot request with a huge address',
      m({ act: 'slot', seq: 1, address: long, port: 0, ipv6Only: false, group: false }),
      /address must be a non-empty string of at most 1024/,
    ],
    ['a slot request with group true', m({ act: 'slot', seq: 1, address: '::', port: 0, ipv6Only: false, group: true }), /group must be false or a string/],
    ['a slot request with a string ipv6Only', m({ act: 'slot', seq: 1, address: '::', port: 0, ipv6Only: 'no', group: false }), /ipv6Only must be a boolean/],
    ['a reservation with a numeric address', m({ act: 'reserve', seq: 1, address: 5, ipv6Only: false }), /address must be/],
    ['a release with a bad port', m({ act: 'release', address: '::', port: 1e6, ipv6Only: false }), /port must be/],
    ['drained with a negative count', m({ act: 'drained', destroyed: -1 }), /destroyed must be a non-negative integer/],
    ['an unknown act', m({ act: 'explode', seq: 3 }), /unknown act "explode"/],
    ['no act', m({}), /unknown act undefined/],
    ['a prototype name as act', m({ act: 'constructor' }), /unknown act "constructor"/],
    ['a message too long', m({ act: 'keys-request', seq: 1, pad: 'x'.repeat(MAX_MESSAGE) }), /at most 65536/],
    ['not ours', { cmd: 'NODE_CLUSTER', act: 'listening' }, /not a reuseport message/],
    ['null', null, /not a reuseport message/],
    ['a string', 'NODE_REUSEPORT', /not a reuseport message/],
  ])('refuses %s', (_, message, reason) => {
    const checked = checkWorkerMessage(message, limits);
    expect(checked.ok).toBe(false);
    if (!checked.ok) expect(checked.reason).toMatch(reason);
  });

  it('never throws, whatever it is given', () => {
    const cyclic: Record<string, unknown> = { cmd: COMMAND, act: 'beat', slot: 0 };
    cyclic.accepted = cyclic;
    const odd = [
      cyclic,
      m({ act: 'beat', slot: 0, accepted: Object.create(null) }),
      m({ act: 'failed', slot: 0, error: Object.create(null) }),
      m({ act: Symbol('x') }),
      m({ act: 'slot', seq: 10n }),
    ];
    for (const message of odd) expect(() => checkWorkerMessage(message, limits)).not.toThrow();
    expect(checkWorkerMessage(cyclic, limits).ok).toBe(false);
  });
});

describe('refusal', () => {
  it.each([
    [
      'a request with a seq: the coded error reply, naming the reply it stands for',
      m({ act: 'slot', seq: 9, address: 5 }),
      { seq: 9, code: BAD_MESSAGE, mention: /\(slot-reply\): address/ },
    ],
    ['an unknown act with a seq', m({ act: 'explode', seq: 3 }), { seq: 3, code: BAD_MESSAGE, mention: /unknown act/ }],
    ['a message without a seq: no reply', m({ act: 'beat', slot: 0 }), undefined],
    ['a message with a bad seq: no reply', m({ act: 'slot', seq: 'x' }), undefined],
  ])('%s', (_, message, expected) => {
    const checked = checkWorkerMessage(message, limits);
    if (checked.ok) throw new Error('taken');
    const reply = refusal(checked);
    if (!expected) return expect(reply).toBeUndefined();
    expect(reply).toMatchObject({ cmd: COMMAND, act: 'error', seq: expected.seq, error: { code: expected.code } });
    expect(reply?.error.message).toMatch(expected.mention);
  });
});

describe('WarningLimiter', () => {
  it('warns `burst` times per window and key, then says how many it held back', () => {
    const limiter = new WarningLimiter(2, 1_000);
    const at = (key: string, now: number) => limiter.take(key, now);
    expect([at('a', 0), at('a', 1), at('a', 2), at('a', 3), at('b', 4)]).toEqual([
      { warn: true, suppressed: 0 },
      { warn: true, suppressed: 0 },
      { warn: false, suppressed: 0 },
      { warn: false, suppressed: 0 },
      { warn: true, suppressed: 0 },
    ]);
    expect(at('a', 1_000)).toEqual({ warn: true, suppressed: 2 });
    expect(at('a', 1_001)).toEqual({ warn: true, suppressed: 0 });
    limiter.forget('a');
    expect(at('a', 1_002)).toEqual({ warn: true, suppressed: 0 });
  });

  it('bounds what a flood prints: 100,000 bad messages in 10 s give at most burst per window', () => {
    const limiter = new WarningLimiter(3, 1_000);
    let shown = 0;
    for (let i = 0; i < 100_000; i++) if (limiter.take('w', i / 10).warn) shown += 1;
    expect(shown).toBe(30);
  });
});

describe('errors across the channel', () => {
  it.each([
    [
      'a system error',
      Object.assign(new Error('listen EADDRINUSE: address already in use :::80'), {
        code: 'EADDRINUSE',
        errno: -98,
        syscall: 'listen',
        address: '::',
        port: 80,
      }),
      { message: 'listen EADDRINUSE: address already in use :::80', code: 'EADDRINUSE', errno: -98, syscall: 'listen', address: '::', port: 80 },
    ],
    ['an error without fields', new Error('boom'), { message: 'boom' }],
    ['fields of the wrong type are left out', Object.assign(new Error('odd'), { code: 5, errno: '-98', port: '80' }), { message: 'odd' }],
    ['a thrown string', 'just text', { message: 'just text' }],
  ])('%s', (_, error, wire) => {
    expect(serializeError(error)).toEqual(wire);
    const revived = reviveError(serializeError(error), 'fallback', ' (worker pid 1)');
    expect(revived).toBeInstanceOf(Error);
    expect(revived.message).toBe(`${wire.message} (worker pid 1)`);
    expect({ ...revived }).toEqual(Object.fromEntries(Object.entries(wire).filter(([key]) => key !== 'message')));
  });

  it('revives the fallback when no error came', () => {
    expect(reviveError(undefined, 'the supervisor lent no socket').message).toBe('the supervisor lent no socket');
  });
});

describe('dispatch', () => {
  type Message = { act: 'a'; n: number } | { act: 'b'; s: string };
  it.each([
    [{ act: 'a', n: 1 }, true, ['a 1 ctx']],
    [{ act: 'b', s: 'x' }, false, []],
    [{ act: 'toString' }, false, []],
    [{ act: '__proto__' }, false, []],
  ])('%j', (message, handled, calls) => {
    const seen: string[] = [];
    const handlers = { a: (message: { n: number }, context: string) => seen.push(`a ${message.n} ${context}`) };
    expect(dispatch<Message, [string]>(handlers, message as Message, 'ctx')).toBe(handled);
    expect(seen).toEqual(calls);
  });
});
