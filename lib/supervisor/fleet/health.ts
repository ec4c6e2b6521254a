// The supervisor's own health server, on a port of its own: a stalled worker cannot make it lie.
// GET /ready: 200 while every slot is served by its own worker (slots a crash loop stopped aside: "degraded") and no shutdown has begun, else 503,
// with a JSON body per slot; GET /live: 200 while the supervisor's event loop runs; GET /metrics:
// the Prometheus text format (prom-client, loaded only when the server is asked for); GET /status:
// the supervisor's pid, plan, ports, counts, start times, the last reload's and upgrade's outcomes and
// every slot's figures, as JSON (`reuseport status`); GET /exit: held open until the supervisor has
// stopped its workers, then answered with what the drain cut (`reuseport stop`). On a non-loopback
// address (a probe port on the network) /status and /exit are served on a loopback control listener
// only. Bounded against floods: see HealthLimits.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { loadBinding } from '../../binding';
import { type SystemError, systemError, uvErrno } from '../../errors';
import { findPortHolders } from '../../ports/port-holders';
import type { Plan } from '../../plan/plan';
import type { ShutdownResult, SlotStats } from '../core/types';
import { type Registry, metricsRegistry } from './metrics';
import type { Outcomes, ServiceRecord } from './outcomes';
import type { BalanceReport } from '../slots/balancer';

/** What the health server reports, read at each request. */
export interface HealthSource {
  ready(): boolean;
  shuttingDown(): boolean;
  stats(): SlotStats[];
  counts(): { restarts: number; reloads: number; upgrades: number; cut: number };
  plan(): Plan;
  ports(): number[];
  outcomes(): Outcomes;
  /** When the service began (ms since the epoch): the first supervisor's start, carried across upgrades. */
  serviceStartedAt(): number;
  /** Balance: whether it runs, the spread of open connections over the workers, connections shed. */
  balance?(): BalanceReport;
}

/** A supervisor's health source: its public view, its service record, and whether its shutdown has begun. */
export function supervisorSource(
  supervisor: { readonly ready: boolean; readonly plan: Plan; readonly ports: number[]; stats(): SlotStats[]; balance(): BalanceReport },
  record: ServiceRecord,
  shutdown: { readonly begun: boolean },
): HealthSource {
  return {
    ready: () => supervisor.ready,
    shuttingDown: () => shutdown.begun,
    stats: () => supervisor.stats(),
    counts: () => record.counts,
    plan: () => supervisor.plan,
    ports: () => supervisor.ports,
    outcomes: () => record.outcomes,
    serviceStartedAt: () => record.startedAt,
    balance: () => supervisor.balance(),
  };
}

/** GET /exit's answer: the end of the shutdown's drain, just before the process exits. */
export interface ExitReport {
  pid: number;
  cut: number;
  killed: number[];
  /** The exit status a graceful shutdown ends with (1 when the drain cut connections or killed a worker). */
  exitCode: number;
}

/** GET /status: what `reuseport status` shows. */
export interface StatusReport {
  pid: number;
  ready: boolean;
  shuttingDown: boolean;
  plan: Plan;
  ports: number[];
  /**
   * Across upgrades: a successor goes on from its predecessor's counts (upgrades included). `cut`:
   * connections the reloads' drains cut at drainTimeoutMs (absent from versions before it).
   */
  counts: { restarts: number; reloads: number; upgrades: number; cut?: number };
  /** When this process started, and when the service did (its first supervisor; ms since the epoch). */
  startedAt: number;
  serviceStartedAt: number;
  /** The last reload's and upgrade's outcomes. */
  last: Outcomes;
  slots: SlotStats[];
  balance?: BalanceReport;
}

/** When this process started (ms since the epoch). */
const STARTED_AT = Math.round(performance.timeOrigin);

/**
 * The health server's bounds against a flood: at most `maxExitWaiters` GET /exit requests held (past
 * it: 503 at once, and the connection closed), and a request's head must arrive within
 * `headersTimeoutMs` and the whole request within `requestTimeoutMs` (checked every
 * `checkIntervalMs`). A request fully received is never timed out: a GET /exit is held until the
 * drain ends, however long.
 */
export interface HealthLimits {
  maxExitWaiters: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  checkIntervalMs: number;
}

/** A handful of `reuseport stop` callers at once is plenty; a flood beyond it costs no fd. */
export const HEALTH_LIMITS: HealthLimits = { maxExitWaiters: 32, headersTimeoutMs: 10_000, requestTimeoutMs: 15_000, checkIntervalMs: 1_000 };

/** Whether a numeric address is a loopback one (127.0.0.0/8, ::1, or 127/8 mapped into IPv6) (pure). */
export function isLoopback(host: string): boolean {
  const plain = host.toLowerCase().startsWith('::ffff:') ? host.slice(7) : host;
  return (net.isIPv4(plain) && plain.startsWith('127.')) || host === '::1' || host === '0:0:0:0:0:0:0:1';
}

/** The paths only the control listener serves when the health server binds a non-loopback address. */
const CONTROL_PATHS = new Set(['/status', '/exit']);

/** The health server of one supervisor. */
export class HealthServer {
  readonly #server: http.Server;
  /**
   * Where GET /status and /exit are served when the health server binds a non-loopback address (a
   * probe port on the network): a loopback listener of its own, on a port the kernel picks, which
   * `reuseport status|reload|stop|upgrade` find among the supervisor's sockets as they find the health port.
   */
  #control: http.Server | undefined;
  /** Whether the health server binds a non-loopback address (decided before it listens). */
  #split = false;
  readonly #source: HealthSource;
  readonly #limits: HealthLimits;
  #metrics: { registry: Registry } | undefined;
  /** GET /exit requests waiting for the end of the drain. */
  readonly #exitWaiters = new Set<http.ServerResponse>();

  constructor(source: HealthSource, limits: HealthLimits = HEALTH_LIMITS) {
    this.#source = source;
    this.#limits = limits;
    this.#server = this.#newServer(() => !this.#split);
  }

  // `control()`: whether this server answers GET /status and /exit (asked per request).
  #newServer(control: () => boolean): http.Server {
    const limits = this.#limits;
    const server = http.createServer(
      { headersTimeout: limits.headersTimeoutMs, requestTimeout: limits.requestTimeoutMs, connectionsCheckingInterval: limits.checkIntervalMs },
      (request, response) => this.#answer(request, response, control()),
    );
    // A balancer's checks come often; keeping their connections costs nothing here.
    server.keepAliveTimeout = 5_000;
    // No idle timeout: a held GET /exit waits for the end of the drain.
    server.timeout = 0;
    return server;
  }

  /** The control listener's port (GET /status and /exit) when the health server binds a non-loopback address. */
  get controlPort(): number | undefined {
    const address = this.#control?.address();
    return address && typeof address === 'object' ? address.port : undefined;
  }

  /** The listening socket's fd (handed to a successor in an upgrade), once listening. */
  get fd(): number | undefined {
    const fd = (this.#server as unknown as { _handle?: { fd?: number } })._handle?.fd;
    return typeof fd === 'number' && fd >= 0 ? fd : undefined;
  }

  /**
   * Listens, on `handed` (the predecessor's health socket, in an upgrade) when it is bound to this
   * address and port, else on a socket of its own; rejects with EADDRINUSE naming the holder of the
   * port (nothing else is started before this).
   */
  async listen(port: number, host: string, handed?: number): Promise<number> {
    const reuse = handed !== undefined && handedMatches(handed, host, port);
    if (handed !== undefined && !reuse) fs.closeSync(handed);
    this.#split = !isLoopback(host);
    const bound = await listenOn(this.#server, reuse ? ({ fd: handed } as net.ListenOptions) : { port, host, exclusive: true }, host, port);
    if (this.#split) {
      const control = this.#newServer(() => true);
      this.#control = control;
      try {
        await listenOn(control, { port: 0, host: '127.0.0.1', exclusive: true }, '127.0.0.1', 0);
      } catch (error) {
        this.#control = undefined;
        this.#server.close();
        throw error;
      }
    }
    return bound;
  }

  /** Stops serving; `result` (a shutdown's drain) answers the GET /exit requests that wait. */
  close(result?: ShutdownResult, exitCode = 0): void {
    const report: ExitReport | undefined = result && { pid: process.pid, cut: result.cut, killed: result.killed, exitCode };
    for (const response of this.#exitWaiters) {
      if (report) response.end(`${JSON.stringify(report)}\n`);
      else response.destroy();
    }
    this.#exitWaiters.clear();
    for (const server of [this.#server, this.#control]) {
      server?.close();
      server?.closeAllConnections();
    }
  }

  #answer(request: http.IncomingMessage, response: http.ServerResponse, control: boolean): void {
    const path = (request.url ?? '/').split('?')[0] ?? '/';
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (!control && CONTROL_PATHS.has(path)) {
      // A probe port on the network shows no pids, plan or ports, and holds no GET /exit.
      this.#json(response, 404, { error: 'not found: GET /ready, /live or /metrics (GET /status and /exit are served on loopback only)' });
    } else if (path === '/ready') {
      const ready = this.#source.ready();
      const stats = this.#source.stats();
      const slots = stats.map(({ slot, pid, lentTo, queued, stopped }) => ({ slot, pid, lentTo, queued, stopped }));
      const stopped = stats.filter((slot) => slot.stopped).map((slot) => slot.slot);
      this.#json(response, ready ? 200 : 503, { ready, degraded: stopped.length > 0, stopped, shuttingDown: this.#source.shuttingDown(), slots });
    } else if (path === '/status') {
      const source = this.#source;
      const report: StatusReport = {
        pid: process.pid,
        ready: source.ready(),
        shuttingDown: source.shuttingDown(),
        plan: source.plan(),
        ports: source.ports(),
        counts: source.counts(),
        startedAt: STARTED_AT,
        serviceStartedAt: source.serviceStartedAt(),
        last: source.outcomes(),
        slots: source.stats(),
        ...(source.balance ? { balance: source.balance() } : {}),
      };
      this.#json(response, 200, report);
    } else if (path === '/exit' && request.method === 'GET' && this.#exitWaiters.size >= this.#limits.maxExitWaiters) {
      // A flood of held requests would hold as many fds: past the cap, answered at once and closed.
      response.shouldKeepAlive = false;
      this.#json(response, 503, { error: `${this.#exitWaiters.size} GET /exit requests wait already; try again` });
    } else if (path === '/exit' && request.method === 'GET') {
      // The head at once: the caller then knows its request is held before it signals the supervisor.
      response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).flushHeaders();
      this.#exitWaiters.add(response);
      response.on('close', () => this.#exitWaiters.delete(response));
    } else if (path === '/live') {
      this.#json(response, 200, { live: true });
    } else if (path === '/metrics') {
      this.#metricsText().then(
        ({ text, contentType }) => response.writeHead(200, { 'content-type': contentType }).end(text),
        (error: Error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
      );
    } else {
      this.#json(response, 404, { error: 'not found: GET /ready, /live, /metrics, /status or /exit' });
    }
  }

  #json(response: http.ServerResponse, status: number, body: unknown): void {
    response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify(body)}\n`);
  }

  async #metricsText(): Promise<{ text: string; contentType: string }> {
    const registry = this.#registry();
    return { text: await registry.metrics(), contentType: registry.contentType };
  }

  // The registry is the supervisor's own (not prom-client's global one), filled at each scrape.
  #registry(): Registry {
    this.#metrics ??= { registry: metricsRegistry(this.#source) };
    return this.#metrics.registry;
  }
}

// Listens `server` as `options` say; resolves with its port, rejects with EADDRINUSE naming the holder.
function listenOn(server: http.Server, options: net.ListenOptions, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: SystemError) => {
      server.off('listening', onListening);
      reject(error.code === 'EADDRINUSE' ? portTaken(error, host, port) : error);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve((server.address() as net.AddressInfo).port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(options);
  });
}

// Whether an inherited fd is a listening TCP socket on host:port (port 0: any).
function handedMatches(fd: number, host: string, port: number): boolean {
  const { binding } = loadBinding();
  try {
    const info = binding?.socketInfo(fd);
    return info !== undefined && info.listening && info.address === host && (port === 0 || info.port === port);
  } catch {
    return false;
  }
}

// EADDRINUSE on the health port, naming who holds it.
function portTaken(error: SystemError, host: string, port: number): SystemError {
  let holders = '';
  try {
    holders = findPortHolders(port)
      .map(
        (holder) =>
          `${holder.address}:${holder.port} by ${holder.processes.map((p) => `pid ${p.pid} (${p.command || '?'})`).join(', ') || `uid ${holder.uid}`}`,
      )
      .join('; ');
  } catch {
    // who holds it is advice; the error stands without it
  }
  const taken = systemError(error.errno ?? uvErrno('EADDRINUSE'), 'listen', host, port);
  taken.message = `${taken.message} (the health port${holders ? ` is held by ${holders}` : ' is taken'}: choose another health.port)`;
  return taken;
}
