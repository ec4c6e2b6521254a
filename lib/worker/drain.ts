// Graceful drain of a server in a worker being replaced: stop accepting without closing the
// listening socket for anyone else, answer what is in flight, close idle keep-alive connections.
import http from 'node:http';
import type http2 from 'node:http2';
import net from 'node:net';

interface ConnectionState {
  /** Requests seen on this connection. */
  requests: number;
  /** Requests not yet answered. */
  active: number;
  /** When it was accepted or last answered a request (ms, monotonic). */
  lastActive: number;
  /** Responses not yet sent, to be marked `Connection: close` when a drain starts. */
  pending: Set<http.ServerResponse>;
}

const tracked = new WeakMap<net.Server, Map<net.Socket, ConnectionState>>();
const draining = new WeakSet<net.Server>();
const sessions = new WeakMap<net.Server, Set<http2.Http2Session>>();

/** How long a connection that has sent nothing yet may take to send its first request while draining. */
export const FIRST_REQUEST_GRACE_MS = 2_000;
/**
 * How long a keep-alive connection must have been idle before a drain closes it. A client that is
 * using the connection sends its next request sooner, and gets `Connection: close` with the answer;
 * closing a connection the instant it goes idle would race that next request.
 */
export const IDLE_GRACE_MS = 250;

/** Starts counting connections and requests, so a later drain knows which connections are idle. */
export function trackConnections(server: net.Server): void {
  if (tracked.has(server)) return;
  const connections = new Map<net.Socket, ConnectionState>();
  tracked.set(server, connections);
  server.on('connection', (socket: net.Socket) => {
    connections.set(socket, { requests: 0, active: 0, lastActive: performance.now(), pending: new Set() });
    socket.once('close', () => connections.delete(socket));
  });
  if (server instanceof http.Server) {
    // Prepended, so `Connection: close` is set before the application's handler can answer.
    server.prependListener('request', (request: http.IncomingMessage, response: http.ServerResponse) => {
      const state = connections.get(request.socket);
      if (state) {
        state.requests += 1;
        state.active += 1;
        state.pending.add(response);
        response.once('close', () => {
          state.active -= 1;
          state.lastActive = performance.now();
          state.pending.delete(response);
        });
      }
      if (draining.has(server) && !response.headersSent) response.setHeader('connection', 'close');
    });
  }
  // Only http2 servers emit 'session'; a GOAWAY on drain lets their streams finish.
  const open = new Set<http2.Http2Session>();
  sessions.set(server, open);
  server.on('session', (session: http2.Http2Session) => {
    open.add(session);
    session.once('close', () => open.delete(session));
  });
}

function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * Stops accepting and waits, at most `timeoutMs`, for the connections to finish; then destroys
 * what is left. Resolves with the number of connections that had to be destroyed.
 */
export async function drainServer(server: net.Server, timeoutMs: number): Promise<number> {
  const connections = tracked.get(server) ?? new Map<net.Socket, ConnectionState>();
  draining.add(server);
  // net.Server's close, not http.Server's: since Node 19 that one also closes idle connections,
  // which include connections accepted a moment ago whose first request has not arrived yet.
  if (server.listening) net.Server.prototype.close.call(server);
  for (const session of sessions.get(server) ?? []) session.close();
  // Requests in flight are answered, and their keep-alive connections then close.
  for (const state of connections.values()) {
    for (const response of state.pending) if (!response.headersSent) response.setHeader('connection', 'close');
  }

  const deadline = performance.now() + timeoutMs;
  const isHttp = server instanceof http.Server;
  while (connections.size > 0 && performance.now() < deadline) {
    if (isHttp) {
      const now = performance.now();
      for (const [socket, state] of connections) {
        const idleFor = state.active === 0 ? now - state.lastActive : 0;
        const idleKeepAlive = state.requests > 0 && idleFor > IDLE_GRACE_MS;
        const silent = state.requests === 0 && idleFor > FIRST_REQUEST_GRACE_MS;
        if (idleKeepAlive || silent) socket.end();
      }
    }
    await wait(20);
  }
  const left = connections.size;
  for (const socket of connections.keys()) socket.destroy();
  return left;
}
