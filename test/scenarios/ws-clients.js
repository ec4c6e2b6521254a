// Websocket clients (ws) for the long-lived-traffic scenarios (test/scenarios/streams.js): `count`
// sockets, each sending a message every `everyMs` and expecting its echo. A socket the server closes
// (or that is cut) is reconnected after 50 ms, at most `maxReconnects` times in all; every close the
// client did not ask for is counted by its code (1001 "going away", 1006 no close frame, ...).
// 'status' answers with how many are open now; 'stop' closes them (those closes are not counted).
'use strict';
const { WebSocket } = require('ws');

let running = false;
const sockets = new Set();
const counts = { opened: 0, closes: {}, errors: {}, echoes: 0, lostEchoes: 0, reconnects: 0, failedConnects: 0 };
let maxReconnects = 0;

function connect(url, everyMs) {
  const socket = new WebSocket(url);
  let timer;
  let waiting = 0;
  socket.on('open', () => {
    counts.opened += 1;
    sockets.add(socket);
    timer = setInterval(() => {
      waiting += 1;
      socket.send(String(Date.now()));
    }, everyMs);
  });
  socket.on('message', () => {
    counts.echoes += 1;
    waiting = Math.max(0, waiting - 1);
  });
  socket.on('error', (error) => {
    counts.errors[error.code ?? error.message] = (counts.errors[error.code ?? error.message] ?? 0) + 1;
  });
  socket.on('close', (code) => {
    clearInterval(timer);
    const wasOpen = sockets.delete(socket);
    if (!running) return;
    if (wasOpen) {
      counts.closes[code] = (counts.closes[code] ?? 0) + 1;
      counts.lostEchoes += waiting;
    } else {
      counts.failedConnects += 1;
    }
    if (counts.reconnects >= maxReconnects) return;
    counts.reconnects += 1;
    setTimeout(() => running && connect(url, everyMs), 50);
  });
}

process.on('message', (message) => {
  if (message.type === 'start') {
    running = true;
    maxReconnects = message.maxReconnects ?? 1000;
    const url = `ws://127.0.0.1:${message.port}/`;
    for (let i = 0; i < (message.count ?? 40); i++) connect(url, message.everyMs ?? 100);
    process.send({ type: 'started' });
  } else if (message.type === 'status') {
    process.send({ type: 'status', open: sockets.size });
  } else if (message.type === 'stop') {
    running = false;
    for (const socket of sockets) socket.close(1000);
    process.send({ type: 'result', result: { ...counts, openAtStop: sockets.size } });
  }
});
process.on('disconnect', () => process.exit(0));
