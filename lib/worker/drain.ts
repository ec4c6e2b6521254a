// Graceful drain of a server in a worker being replaced: stop accepting without closing the
// listening socket for anyone else, answer what is in flight, close idle keep-alive connections
// (over TLS too), send every http2 session a GOAWAY. Nothing is done per request or per connection:
// the connections, and what a drain needs to know of them (a response in flight, bytes still
// arriving), are found when the drain starts.
import http from 'node:http';
import type http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';

/** How long a connection that has sent nothing yet may take to send its first request while draining. */
export const FIRST_REQUEST_GRACE_MS = 2_000;
/**
 * How long a keep-alive connection must have been idle before a drain closes it. A client that is
 * using the connection sends its next request sooner, and gets `Connection: close` with the answer;
 * closing a connection the instant it goes idle would race that next request.
 */
export const IDLE_GRACE_MS = 250;
/** HTTP/2's CANCEL (RFC 9113 section 7): the GOAWAY code of a session cut at the timeout, so its client's open streams fail rather than end empty. */
const NGHTTP2_CANCEL = 0x8;

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

// Sockets remembered until they close (`remember` is one function per set, not a closure per socket).
function socketSet(): { sockets: Set<net.Socket>; remember: (socket: net.Socket) => void } {
  const sockets = new Set<net.Socket>();
  // `this`: the socket that closed.
  function forget(this: net.Socket): void {
    sockets.delete(this);
  }
  return {
    sockets,
    remember(socket) {
      sockets.add(socket);
      socket.on('close', forget);
    },
  };
}

const { sockets: rememberedSockets, remember } = socketSet();
const trackedServers = new WeakSet<net.Server>();
const sessions = new WeakMap<net.Server, Set<http2.Http2Session>>();
// Servers being drained: an http2 session that arrives, or finishes its TLS handshake, meanwhile gets its GOAWAY at once.
const drainingServers = new WeakSet<net.Server>();

// The server that counts the socket (for one accepted from a lent slot, the server it was handed to).
function serverOf(socket: net.Socket): net.Server | null | undefined {
  return (socket as net.Socket & { _server?: net.Server | null })._server;
}

/** The server's open connections now (`lister`: Node's handle list, if it has one). */
export function connectionsOf(server: net.Server, lister: HandleLister | undefined = handleLister()): net.Socket[] {
  const candidates = lister ? lister() : [...rememberedSockets];
  return candidates.filter((socket): socket is net.Socket => socket instanceof net.Socket && !socket.destroyed && serverOf(socket) === server);
}

// TLS: the handle list holds the raw TCP socket of a connection, while HTTP reads and answers on its
// TLSSocket (whose `_parent` is the raw one; nothing links back). Node keeps, for every server that
// parses HTTP/1 (http.Server, https.Server, an Http2SecureServer with allowHTTP1; Node >= 18.2, once
// listening), the list behind closeIdleConnections(): its HTTP parsers, each with the socket it
// parses (the TLSSocket for TLS). It is read when a drain starts; nothing is added per connection.
interface HttpParserEntry {
  socket?: net.Socket | null;
}
interface ConnectionsList {
  all(): HttpParserEntry[];
}

/** Node's list of the server's HTTP/1 connections (an internal: undefined where Node has none or renamed it). */
export function connectionsListOf(server: net.Server): ConnectionsList | undefined {
  for (const symbol of Object.getOwnPropertySymbols(server)) {
    if (symbol.description !== 'http.server.connections') continue;
    const list = (server as unknown as Record<symbol, unknown>)[symbol] as Partial<ConnectionsList> | undefined;
    return typeof list?.all === 'function' ? (list as ConnectionsList) : undefined;
  }
  return undefined;
}

// Where Node has no such list, an https.Server's TLS sockets are remembered as they finish their
// handshake (and leave as they close): a cost per connection, only where there is no other way.
const { sockets: rememberedTlsSockets, remember: rememberTls } = socketSet();

// The server a TLS socket was accepted by (`_server` is its raw socket's).
function tlsServerOf(socket: net.Socket): net.Server | null | undefined {
  return (socket as net.Socket & { server?: net.Server | null }).server;
}

// The raw socket under a TLS socket, or the socket itself.
function rawOf(socket: net.Socket): net.Socket {
  return (socket as net.Socket & { _parent?: net.Socket | null })._parent ?? socket;
}

/**
 * The server's TLS connections that speak HTTP/1, by their raw socket (the one the handle list
 * holds): the TLSSocket HTTP answers on. A connection still in its handshake, or one serving an
 * http2 session, is not there.
 */
export function tlsHttpSocketsOf(server: net.Server): Map<net.Socket, net.Socket> {
  const found = new Map<net.Socket, net.Socket>();
  const list = connectionsListOf(server);
  if (list) {
    for (const entry of list.all()) {
      const socket = entry?.socket;
      if (socket instanceof net.Socket && !socket.destroyed) found.set(rawOf(socket), socket);
    }
  } else {
    for (const socket of rememberedTlsSockets) if (!socket.destroyed && tlsServerOf(socket) === server) found.set(rawOf(socket), socket);
  }
  return found;
}

// An http2 server (Http2Server, Http2SecureServer); neither class is exported by node:http2.
function isHttp2Server(server: net.Server): boolean {
  return typeof (server as net.Server & { updateSettings?: unknown }).updateSettings === 'function';
}

/**
 * Makes the server drainable: its http2 sessions are followed (for their GOAWAY), and where Node has
 * no handle list its connections are remembered (an https.Server's TLS sockets too, where Node has no
 * list of HTTP connections); `onConnection` runs for each connection (the caller's bookkeeping, in the
 * same listener).
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
  if (server instanceof https.Server) {
    // Node sets its list up on 'listening' (its listener comes first).
    const check = () => {
      if (!connectionsListOf(server)) server.on('secureConnection', rememberTls);
    };
    if (server.listening) check();
    else server.once('listening', check);
  }
  // Only http2 servers emit 'session'; a GOAWAY on drain lets their streams finish.
  const open = new Set<http2.Http2Session>();
  sessions.set(server, open);
  server.on('session', (session: http2.Http2Session) => {
    open.add(session);
    session.once('close', () => open.delete(session));
    // One that arrives (or ends its TLS handshake) during a drain: a GOAWAY before anything else.
    if (drainingServers.has(server)) session.close();
  });
}

// The response an HTTP/1 server is writing on a socket now, if any (Node keeps it there until it finishes).
function responseOn(socket: net.Socket): http.ServerResponse | null {
  return (socket as net.Socket & { _httpMessage?: http.ServerResponse | null })._httpMessage ?? null;
}

function closeAfter(response: http.ServerResponse): void {
  if (!response.headersSent) response.setHeader('connection', 'close');
}

// HTTP/1 only: an http2 server's 'request' carries HTTP/2 streams too, whose response must not get a
// Connection header (Node warns, and the GOAWAY closes the session).
function closeAfterResponse(request: http.IncomingMessage, response: http.ServerResponse): void {
  if (request.httpVersionMajor === 1) closeAfter(response);
}

// Node's HTTP/1 server gives a connection's parser up when the connection is upgraded (and keeps it
// for as long as it serves HTTP, from the connection's first byte): no parser, an upgraded socket.
function isUpgraded(socket: net.Socket): boolean {
  return (socket as net.Socket & { parser?: unknown }).parser === null;
}

function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * Stops accepting and waits, at most `timeoutMs`, for the connections to finish; then destroys
 * what is left. Resolves with the number of connections that had to be destroyed.
 *
 * HTTP/1 (http, https, an Http2SecureServer's allowHTTP1 connections): what is in flight is
 * answered with `Connection: close`, idle keep-alive connections are ended (a TLS one with its
 * close_notify). Upgraded connections (websockets) are left to the app, which closes them on
 * drainSignal(); what is still open at the timeout is cut and counted. HTTP/2: every session gets a GOAWAY (one that arrives meanwhile too) and closes
 * once its streams finish; one still open at the timeout is destroyed with a GOAWAY of its own
 * (CANCEL; the server's 'sessionError' event gets the reason).
 */
export async function drainServer(server: net.Server, timeoutMs: number): Promise<number> {
  const isTls = server instanceof tls.Server;
  const list = connectionsListOf(server);
  // Whether the server reads HTTP/1 on connections this drain can find (for TLS, through Node's list).
  const isHttp = server instanceof http.Server || server instanceof https.Server || list !== undefined;
  drainingServers.add(server);
  // Prepended, so `Connection: close` is set before the application's handler can answer.
  if (isHttp || isHttp2Server(server)) server.prependListener('request', closeAfterResponse);
  // net.Server's close, not http.Server's: since Node 19 that one also closes idle connections,
  // which include connections accepted a moment ago whose first request has not arrived yet.
  if (server.listening) net.Server.prototype.close.call(server);
  const openSessions = sessions.get(server);
  for (const session of openSessions ?? []) session.close();
  let open = connectionsOf(server);
  // The socket HTTP/1 reads on, for each connection (for TLS, found again while some are unknown:
  // handshakes finish during the drain).
  let tlsSockets = isTls && isHttp ? tlsHttpSocketsOf(server) : undefined;
  const httpSocketOf = (raw: net.Socket): net.Socket | undefined => (isTls ? tlsSockets?.get(raw) : raw);
  // Which connections the loop below looks at: HTTP/1 ones, and on an http2 server over TLS the
  // ones that never sent a byte (no session yet, nothing to send a GOAWAY to).
  const watched = isHttp || (isTls && isHttp2Server(server));
  // Requests in flight are answered, and their keep-alive connections then close.
  if (isHttp) {
    for (const raw of open) {
      const socket = httpSocketOf(raw);
      const response = socket && responseOn(socket);
      if (response) closeAfter(response);
    }
  }

  // A connection is idle when no response is being written and no byte arrived for a while: a
  // keep-alive connection after IDLE_GRACE_MS, one that never sent a request after FIRST_REQUEST_GRACE_MS.
  // A TLS connection whose HTTP socket is unknown is left alone (its handshake is under way, or it
  // serves an http2 session, which its GOAWAY closes), unless it never sent a byte at all.
  const lastSeen = new Map<net.Socket, { bytesRead: number; since: number }>();
  const deadline = performance.now() + timeoutMs;
  while (open.length > 0 && performance.now() < deadline) {
    if (watched) {
      if (tlsSockets && open.some((raw) => !tlsSockets?.has(raw))) tlsSockets = tlsHttpSocketsOf(server);
      const now = performance.now();
      for (const raw of open) {
        const socket = httpSocketOf(raw);
        // An upgraded connection (a websocket) is no idle keep-alive one: the app ends it (on
        // drainSignal()), or the timeout cuts it below, counted.
        if (socket && isUpgraded(socket)) continue;
        const seen = lastSeen.get(raw);
        if ((socket && responseOn(socket)) || (!socket && raw.bytesRead > 0) || !seen || seen.bytesRead !== raw.bytesRead) {
          lastSeen.set(raw, { bytesRead: raw.bytesRead, since: now });
          continue;
        }
        const target = socket ?? raw;
        const grace = target.bytesRead > 0 ? IDLE_GRACE_MS : FIRST_REQUEST_GRACE_MS;
        if (now - seen.since > grace && !target.writableEnded) target.end();
      }
    }
    await wait(20);
    open = open.filter((socket) => !socket.destroyed);
  }
  if (open.length > 0 && openSessions && openSessions.size > 0) {
    // Never closed without a GOAWAY: destroying a session sends one (then its socket ends). With
    // NO_ERROR a client's streams would end without an error, as if answered.
    for (const session of openSessions) session.destroy(new Error(`the drain's timeout (${timeoutMs} ms) cut this http2 session`), NGHTTP2_CANCEL);
    await new Promise((resolve) => setImmediate(resolve));
  }
  for (const socket of open) socket.destroy();
  return open.length;
}
