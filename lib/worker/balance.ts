// Balance in a supervised worker: it publishes its load, and sheds keep-alive connections it holds
// beyond its share when the supervisor says so.
//
// The load is the worker's open connections (every server's `_connections`, which Node keeps for
// getConnections(); a connection handed in from a lent slot is counted there too), the connections
// it has shed, and its event-loop utilisation over the interval (performance.eventLoopUtilization),
// written into its progress cell every LOAD_MS by an unref'd timer, and only when they changed: no
// message and no syscall per request or per connection. Open connections are the main signal: behind
// a proxy's keep-alive pool each pooled connection stays on the worker the kernel's hash gave it,
// and they say which worker can fix an imbalance by letting a connection go, and how many. But a
// proxy does not use its pooled connections alike: nginx takes the most recently used idle one, so
// while fewer requests are in flight than it holds connections, a few hot connections carry them
// and the others sit idle; 2/2 connections can then be 2 hot on one worker and 2 idle on the other.
// Event-loop utilisation shows that (at no cost per request); counting requests would need a
// listener on every request.
//
// Shedding: the supervisor sends a limit when this worker holds more than its share (see
// supervisor/slots/balancer.ts), and none when it no longer does. While it has a limit, and only
// then, a 'request' listener (prepended, as the drain's) answers a request on an HTTP/1.1 keep-alive
// connection with `Connection: close` while the worker's open connections exceed the limit, within a
// budget (shedDecision). The response is one the app was about to send anyway: its connection closes
// once the response ends, never mid-response, and the client (the proxy) opens a new one, which the
// kernel may place on another worker. Never on an upgraded connection (those are not 'request's,
// or are answered with an upgrade). HTTP/2 is left out: Node's GOAWAY refuses streams that neither
// Node's client nor undici retries, so an http2 server is never armed.
import type http from 'node:http';
import type net from 'node:net';
import type { ProgressCell } from './progress';

/** How often the worker writes its load into its cell (and the supervisor reads the cells) while it changes or the worker is busy. */
export const LOAD_MS = 50;
/** The longest wait between looks while nothing changes and the worker is idle: the wait doubles from LOAD_MS up to this (a process waking every 50 ms costs about 0.2% of a core here). */
export const QUIET_LOAD_MS = 1_000;
/** An event loop at least this busy is not idle. */
export const IDLE_BELOW = 0.05;

/** The wait before the next look (pure): LOAD_MS after a change or while busy, else twice the last, up to QUIET_LOAD_MS. */
export function nextLoadDelay(changed: boolean, busy: number, lastMs: number): number {
  return changed || busy >= IDLE_BELOW ? LOAD_MS : Math.min(QUIET_LOAD_MS, lastMs * 2);
}
/** At most this many connections shed per second per worker, sustained. */
export const SHED_PER_SECOND = 10;
/** And at most this many at once (the bucket's size): one, then one every 1000 / SHED_PER_SECOND ms. */
export const SHED_BURST = 1;

/** A token bucket: tokens left, as of when (monotonic ms). */
export interface ShedBudget {
  tokens: number;
  at: number;
}

export interface ShedInput {
  /** The worker's open connections now, and those it shed whose connection has not closed yet. */
  open: number;
  closing: number;
  /** The supervisor's limit; undefined: not armed. */
  limit: number | undefined;
  budget: ShedBudget;
  now: number;
  perSecond?: number;
  burst?: number;
}

/**
 * Whether the connection of the response about to be sent is shed (pure), and the budget after: only
 * while armed, while the connections not already on their way out exceed the limit, and while the
 * budget has a token (refilled at perSecond, up to burst).
 */
export function shedDecision({ open, closing, limit, budget, now, perSecond = SHED_PER_SECOND, burst = SHED_BURST }: ShedInput): {
  shed: boolean;
  budget: ShedBudget;
} {
  if (limit === undefined) return { shed: false, budget };
  const tokens = Math.min(burst, budget.tokens + (Math.max(0, now - budget.at) * perSecond) / 1000);
  // (A hair under one token counts as one: the refill adds fractions of a token, which floating point leaves a hair short.)
  if (open - closing <= limit || tokens < 1 - 1e-9) return { shed: false, budget: { tokens, at: now } };
  return { shed: true, budget: { tokens: Math.max(0, tokens - 1), at: now } };
}

/** Whether a supervisor's limit is one (a message from the supervisor is checked where it arrives). */
export function isLimit(value: unknown): value is number | null {
  return value === null || (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 1e9);
}

// Node's count of a server's connections (net.js), kept for getConnections().
type Counted = net.Server & { _connections?: number };

// An http2 server (Http2Server, Http2SecureServer): never armed.
function isHttp2Server(server: net.Server): boolean {
  return typeof (server as net.Server & { updateSettings?: unknown }).updateSettings === 'function';
}

/** One worker's load reports and shedding, for its supervised servers. */
export class Balance {
  readonly #servers: Set<net.Server>;
  readonly #cell: ProgressCell;
  #timer: NodeJS.Timeout | undefined;
  #delay: number;
  readonly #armed = new Set<net.Server>();
  #limit: number | undefined;
  #budget: ShedBudget = { tokens: SHED_BURST, at: 0 };
  #shed = 0;
  #closing = 0;
  #written = { open: -1, shed: -1, busy: -1 };
  #elu = performance.eventLoopUtilization();
  readonly #onRequest = (request: http.IncomingMessage, response: http.ServerResponse) => this.#consider(request, response);
  readonly #onShedClose = () => {
    this.#closing -= 1;
  };

  /** Starts the load reports (an unref'd timer, paced by nextLoadDelay) for `servers` (the live set of the worker's servers). */
  constructor(servers: Set<net.Server>, cell: ProgressCell, firstMs = LOAD_MS) {
    this.#servers = servers;
    this.#cell = cell;
    this.#delay = firstMs;
    this.#schedule();
  }

  #schedule(): void {
    this.#timer = setTimeout(() => {
      const { changed, busy } = this.report();
      this.#delay = nextLoadDelay(changed, busy, this.#delay);
      if (this.#timer) this.#schedule();
    }, this.#delay);
    this.#timer.unref();
  }

  /** The worker's open connections now. */
  get open(): number {
    let open = 0;
    for (const server of this.#servers) open += (server as Counted)._connections ?? 0;
    return open;
  }

  get shed(): number {
    return this.#shed;
  }

  /** Writes the load into the cell, if it changed since the last write (the event-loop use by 0.02 or more); says whether it did, and the event-loop use. */
  report(): { changed: boolean; busy: number } {
    const open = this.open;
    const now = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(now, this.#elu).utilization;
    this.#elu = now;
    if (open === this.#written.open && this.#shed === this.#written.shed && Math.abs(busy - this.#written.busy) < 0.02) return { changed: false, busy };
    this.#written = { open, shed: this.#shed, busy };
    this.#cell.load(open, this.#shed, busy);
    return { changed: true, busy };
  }

  /** The supervisor's word: shed down to `limit` connections, or (null) stop shedding. */
  setLimit(limit: number | null): void {
    this.#limit = limit ?? undefined;
    if (this.#limit === undefined) {
      for (const server of this.#armed) server.off('request', this.#onRequest);
      this.#armed.clear();
      return;
    }
    for (const server of this.#servers) this.#arm(server);
  }

  /** A server registered later: armed too while there is a limit. */
  added(server: net.Server): void {
    if (this.#limit !== undefined) this.#arm(server);
  }

  /** The worker drains (its drain closes every connection): no more shedding, no more reports. */
  stop(): void {
    this.setLimit(null);
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(server: net.Server): void {
    if (this.#armed.has(server) || isHttp2Server(server)) return;
    this.#armed.add(server);
    // Before the app's handler, which may answer at once.
    server.prependListener('request', this.#onRequest);
  }

  #consider(request: http.IncomingMessage, response: http.ServerResponse): void {
    // HTTP/1.1 keep-alive only: an HTTP/1.0 or `Connection: close` request closes anyway.
    if (request.httpVersionMajor !== 1 || response.headersSent || !(response as http.ServerResponse & { shouldKeepAlive?: boolean }).shouldKeepAlive) return;
    if ((request as http.IncomingMessage & { upgrade?: boolean }).upgrade) return;
    const decision = shedDecision({ open: this.open, closing: this.#closing, limit: this.#limit, budget: this.#budget, now: performance.now() });
    this.#budget = decision.budget;
    if (!decision.shed) return;
    response.setHeader('connection', 'close');
    this.#shed += 1;
    this.#closing += 1;
    request.socket.once('close', this.#onShedClose);
  }
}
