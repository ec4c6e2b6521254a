// Graceful drain of a server in a worker being replaced: stop accepting without closing the
// listening socket for anyone else, answer what is in flight, close idle keep-alive connections.
// Nothing is done per request or per connection: the connections, and what a drain needs to know of
// them (a response in flight, bytes still arriving), are found when the drain starts.
import http from 'node:http';
import type http2 from 'node:http2';
import net from 'node:net';

/** How long a connection that has sent nothing yet may take to send its first request while draining. */
export const FIRST_REQUEST_GRACE_MS = 2_000;
/**
 * How long a keep-alive connection must have been idle before a drain closes it. A client that is
 * using the connection sends its next request sooner, and gets `Connection: close` with the answer;
 * closing a connection the instant it goes idle would race that next request.
 */
export const IDLE_GRACE_MS = 250;

// What a drain needs is found when it starts, not remembered per connection: Node's list of the
// process's referenced handles holds every open socket (process._getActiveHandles, in every Node
// this supports), and the server that counts one is its `_server`. Remembering sockets in a Set, even
// one each socket leaves on 'close', cost about 5% more CPU per new connection here: sockets held by a
// long-lived Set make every young-generation garbage collection copy more. Where Node has no such
// list, sockets are remembered after all (and leave as they close).
type HandleLister = () => unknown[];

function handleLister(): HandleLister | undefined {
  const list = (process as NodeJS.Process & { _getActiveHandles?: () => unknown[] })._getActiveHandles;
  return typeof list === 'function' ? () => list.call(process) : undefined;
}

const rememberedSockets = new Set<net.Socket>();
const trackedServers = new WeakSet<net.Server>();
const sessions = new WeakMap<net.Server, Set<http2.Http2Session>>();

// `this`: the socket that closed.
function forget(this: net.Socket): void {
  rememberedSockets.delete(this);
}

function remember(socket: net.Socket): void {
  rememberedSockets.add(socket);
  socket.on('close', forget);
}

// The server that counts the socket (for one accepted from a lent slot, the server it was handed to).
function serverOf(socket: net.Socket): net.Server | null | undefined {
  return (socket as net.Socket & { _server?: net.Server | null })._server;
}

/** The server's open connections now (`lister`: Node's handle list, if it has one). */
export function connectionsOf(server: net.Server, lister: HandleLister | undefined = handleLister()): net.Socket[] {
  const candidates = lister ? lister() : [...rememberedSockets];
  return candidates.filter((socket): socket is net.Socket => socket instanceof net.Socket && !socket.destroyed && serverOf(socket) === server);
}

/**
 * Makes the server drainable: its http2 sessions are followed (for their GOAWAY), and where Node has
 * no handle list its connections are remembered; `onConnection` runs for each connection (the
 * caller's bookkeeping, in the same listener).
 */
export function trackConnections(server: net.Server, onConnection?: (socket: net.Socket) => void): void {
  if (trackedServers.has(server)) return;
  trackedServers.add(server);
  if (!handleLister()) {
    server.on(
      'connection',
      onConnection
        ? (socket: net.Socket) => {
            remember(socket);
            onConnection(socket);
          }
        : remember,
    );
  } else if (onConnection) {
    server.on('connection', onConnection);
  }
  // Only http2 servers emit 'session'; a GOAWAY on drain lets their streams finish.
  const open = new Set<http2.Http2Session>();
  sessions.set(server, open);
  server.on('session', (session: http2.Http2Session) => {
    open.add(session);
    session.once('close', () => open.delete(session));
  });
}

// The response an http.Server is writing on a socket now, if any (Node keeps it there until it finishes).
function responseOn(socket: net.Socket): http.ServerResponse | null {
  return (socket as net.Socket & { _httpMessage?: http.ServerResponse | null })._httpMessage ?? null;
}

function closeAfterResponse(_request: http.IncomingMessage, response: http.ServerResponse): void {
  if (!response.headersSent) response.setHeader('connection', 'close');
}

function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * Stops accepting and waits, at most `timeoutMs`, for the connections to finish; then destroys
 * what is left. Resolves with the number of connections that had to be destroyed.
 */
export async function drainServer(server: net.Server, timeoutMs: number): Promise<number> {
  const isHttp = server instanceof http.Server;
  // Prepended, so `Connection: close` is set before the application's handler can answer.
  if (isHttp) server.prependListener('request', closeAfterResponse);
  // net.Server's close, not http.Server's: since Node 19 that one also closes idle connections,
  // which include connections accepted a moment ago whose first request has not arrived yet.
  if (server.listening) net.Server.prototype.close.call(server);
  for (const session of sessions.get(server) ?? []) session.close();
  let open = connectionsOf(server);
  // Requests in flight are answered, and their keep-alive connections then close.
  if (isHttp) {
    for (const socket of open) {
      const response = responseOn(socket);
      if (response && !response.headersSent) response.setHeader('connection', 'close');
    }
  }

  // A connection is idle when no response is being written and no byte arrived for a while: a
  // keep-alive connection after IDLE_GRACE_MS, one that never sent a byte after FIRST_REQUEST_GRACE_MS.
  const lastSeen = new Map<net.Socket, { bytesRead: number; since: number }>();
  const deadline = performance.now() + timeoutMs;
  while (open.length > 0 && performance.now() < deadline) {
    if (isHttp) {
      const now = performance.now();
      for (const socket of open) {
        const seen = lastSeen.get(socket);
        if (responseOn(socket) || !seen || seen.bytesRead !== socket.bytesRead) {
          lastSeen.set(socket, { bytesRead: socket.bytesRead, since: now });
          continue;
        }
        const idleFor = now - seen.since;
        const grace = socket.bytesRead > 0 ? IDLE_GRACE_MS : FIRST_REQUEST_GRACE_MS;
        if (idleFor > grace && !socket.writableEnded) socket.end();
      }
    }
    await wait(20);
    open = open.filter((socket) => !socket.destroyed);
  }
  for (const socket of open) socket.destroy();
  return open.length;
}
