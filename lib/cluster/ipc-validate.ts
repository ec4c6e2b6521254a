// Every message from a worker is checked where it arrives in the primary, before anything acts on it:
// a worker runs app code, and `process.send({ cmd: 'NODE_REUSEPORT', ... })` from there reaches the
// same channel. A malformed message is refused with a reason (and, for a request that carries a seq,
// a coded error reply), never an exception in the primary, which holds every worker's socket.
import { COMMAND, type ErrorReply, MAX_ERROR_TEXT, REPLY_TO, type WorkerMessage, type WorkerRequest } from './ipc';

/** The code of the error a worker gets for a message the primary refuses, and of the primary's warning. */
export const BAD_MESSAGE = 'ERR_REUSEPORT_BAD_MESSAGE';
/** The code of the primary's warning about a worker's malformed messages. */
export const BAD_MESSAGE_WARNING = 'REUSEPORT_BAD_MESSAGE';

/** The longest address, group, error message or other string a worker's message may carry. */
export const MAX_STRING = 1_024;
/** The longest message (as JSON) a worker may send. */
export const MAX_MESSAGE = 65_536;

/** A message from a worker: valid, or refused with a reason (and the seq to answer, when it had a valid one). */
export type Checked = { ok: true; message: WorkerMessage } | { ok: false; reason: string; seq?: number; act?: string };

type Fields = Record<string, unknown>;
/** Returns why a field is wrong, or undefined. */
type Check = (value: unknown, limits: Limits) => string | undefined;

/** What the primary knows to check against: how many slots it has (none: setupPrimary without startCluster). */
export interface Limits {
  slots: number;
}

const isObject = (value: unknown): value is Fields => typeof value === 'object' && value !== null && !Array.isArray(value);
const integer = (value: unknown, min: number, max: number): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max;
const show = (value: unknown): string => {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value);
  if (typeof value === 'object' && value !== null) return Array.isArray(value) ? 'an array' : 'an object';
  return String(value);
};

const seq: Check = (value) => (integer(value, 0, Number.MAX_SAFE_INTEGER) ? undefined : `seq must be a non-negative integer, not ${show(value)}`);
const slot: Check = (value, { slots }) => (integer(value, 0, slots - 1) ? undefined : `slot must be an integer from 0 to ${slots - 1}, not ${show(value)}`);
const port: Check = (value) => (integer(value, 0, 65_535) ? undefined : `port must be an integer from 0 to 65535, not ${show(value)}`);
const flag: Check = (value) => (typeof value === 'boolean' ? undefined : `must be a boolean, not ${show(value)}`);
const longText: Check = (value) =>
  typeof value === 'string' && value.length <= MAX_ERROR_TEXT ? undefined : `must be a string of at most ${MAX_ERROR_TEXT} characters, not ${show(value)}`;
const text: Check = (value) =>
  typeof value === 'string' && value.length <= MAX_STRING ? undefined : `must be a string of at most ${MAX_STRING} characters, not ${show(value)}`;
const address: Check = (value) =>
  typeof value === 'string' && value.length > 0 && value.length <= MAX_STRING
    ? undefined
    : `must be a non-empty string of at most ${MAX_STRING} characters, not ${show(value)}`;
const group: Check = (value) =>
  value === false ? undefined : text(value, { slots: 0 }) && `must be false or a string of at most ${MAX_STRING} characters, not ${show(value)}`;
const count: Check = (value) => (integer(value, 0, Number.MAX_SAFE_INTEGER) ? undefined : `must be a non-negative integer, not ${show(value)}`);
const optional =
  (check: Check): Check =>
  (value, limits) =>
    value === undefined ? undefined : check(value, limits);

// A listen error: an object with a string message, and Node's fields where present with their types.
const error: Check = (value) => {
  if (!isObject(value)) return `error must be an object with a string message, not ${show(value)}`;
  const fields: Record<string, Check> = {
    message: longText,
    code: optional(text),
    errno: optional((v) => (integer(v, -1e9, 1e9) ? undefined : 'must be an integer')),
    syscall: optional(text),
    address: optional(text),
    port: optional(port),
  };
  for (const [name, check] of Object.entries(fields)) {
    const wrong = check(value[name], { slots: 0 });
    if (wrong) return `error.${name} ${wrong.replace(/^port /, '')}`;
  }
  return undefined;
};

// A beat's counts: per slot index (a key from 0 to slots - 1), a non-negative integer.
const accepted: Check = (value, { slots }) => {
  if (!isObject(value)) return `accepted must be an object of counts per slot, not ${show(value)}`;
  const entries = Object.entries(value);
  if (entries.length > slots) return `accepted has ${entries.length} entries for ${slots} slots`;
  for (const [key, total] of entries) {
    if (!/^(0|[1-9]\d*)$/.test(key) || Number(key) >= slots) return `accepted has a key ${show(key)} that is not a slot from 0 to ${slots - 1}`;
    if (!integer(total, 0, Number.MAX_SAFE_INTEGER)) return `accepted[${key}] must be a non-negative integer, not ${show(total)}`;
  }
  return undefined;
};

// What each act must carry. `named` checks put the field's name in front of their reason.
const SHAPES: Record<WorkerMessage['act'], Record<string, Check>> = {
  reserve: { seq, address, ipv6Only: flag },
  slot: { seq, address, port, ipv6Only: flag, group },
  'keys-request': { seq },
  listening: { slot, port },
  release: { address, port, ipv6Only: flag },
  drained: { destroyed: count },
  beat: { slot, accepted },
  failed: { slot, error },
};
const SELF_NAMED = new Set<Check>([seq, slot, port, error, accepted]);

/** Whether `act` is one a worker sends (setupPrimary's 'reserve' included). */
export function isWorkerAct(act: unknown): act is WorkerMessage['act'] {
  return typeof act === 'string' && Object.hasOwn(SHAPES, act);
}

/** Checks a message from a worker (one whose `cmd` is ours) against its act's shape and the primary's limits. */
export function checkWorkerMessage(raw: unknown, limits: Limits): Checked {
  if (!isObject(raw) || raw.cmd !== COMMAND) return { ok: false, reason: 'not a reuseport message' };
  const { act } = raw;
  const answer = seq(raw.seq, limits) === undefined ? (raw.seq as number) : undefined;
  const refuse = (reason: string): Checked => ({
    ok: false,
    reason,
    ...(answer !== undefined ? { seq: answer } : {}),
    ...(typeof act === 'string' ? { act: act.slice(0, 40) } : {}),
  });
  if (!isWorkerAct(act)) return refuse(`unknown act ${show(act)}`);
  let size = 0;
  try {
    size = JSON.stringify(raw).length;
  } catch {
    return refuse('it cannot be serialised');
  }
  if (size > MAX_MESSAGE) return refuse(`it is ${size} characters long (at most ${MAX_MESSAGE})`);
  for (const [name, check] of Object.entries(SHAPES[act])) {
    const wrong = check(raw[name], limits);
    if (wrong) return refuse(SELF_NAMED.has(check) ? wrong : `${name} ${wrong}`);
  }
  return { ok: true, message: raw as unknown as WorkerMessage };
}

/** The coded error reply to a refused request, when it had a seq to answer (undefined otherwise). */
export function refusal(checked: Checked & { ok: false }, code = BAD_MESSAGE): ErrorReply | undefined {
  if (checked.seq === undefined) return undefined;
  const replyAct = checked.act && Object.hasOwn(REPLY_TO, checked.act) ? ` (${REPLY_TO[checked.act as WorkerRequest['act']]})` : '';
  return { cmd: COMMAND, act: 'error', seq: checked.seq, error: { message: `reuseport: the primary refused the message${replyAct}: ${checked.reason}`, code } };
}

/**
 * How often the primary warns about one worker's bad messages: at most `burst` warnings per
 * `windowMs`; the rest are counted and the next warning says how many were not shown. Keeps a worker
 * that floods the channel from flooding stderr.
 */
export class WarningLimiter {
  readonly #burst: number;
  readonly #windowMs: number;
  readonly #state = new Map<unknown, { since: number; shown: number; suppressed: number }>();

  constructor(burst = 3, windowMs = 10_000) {
    this.#burst = burst;
    this.#windowMs = windowMs;
  }

  /** Whether to warn about `key` now; `suppressed`: warnings not shown since the last one. */
  take(key: unknown, now = performance.now()): { warn: boolean; suppressed: number } {
    let state = this.#state.get(key);
    if (!state || now - state.since >= this.#windowMs) {
      const suppressed = state?.suppressed ?? 0;
      state = { since: now, shown: 0, suppressed };
      this.#state.set(key, state);
    }
    if (state.shown >= this.#burst) {
      state.suppressed += 1;
      return { warn: false, suppressed: 0 };
    }
    state.shown += 1;
    const { suppressed } = state;
    state.suppressed = 0;
    return { warn: true, suppressed };
  }

  /** Forgets a key (its worker is gone). */
  forget(key: unknown): void {
    this.#state.delete(key);
  }
}

// One limiter for the primary: a worker's bad messages, wherever they arrive, share its budget.
const warnings = new WarningLimiter();

/** Warns (rate-limited per worker) that a worker's message was malformed and ignored; never throws. */
export function warnBadMessage(worker: { process: { pid?: number } }, checked: Checked & { ok: false }, where = ''): void {
  const { warn, suppressed } = warnings.take(worker);
  if (!warn) return;
  const more = suppressed > 0 ? ` (${suppressed} more not shown)` : '';
  process.emitWarning(`reuseport: the worker (pid ${worker.process.pid}${where}) sent a malformed message, ignored: ${checked.reason}${more}`, {
    code: BAD_MESSAGE_WARNING,
  });
}

/** Forgets a worker that is gone (its warning budget). */
export function forgetWorker(worker: object): void {
  warnings.forget(worker);
}
