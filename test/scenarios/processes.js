// The deploy scenarios' process bookkeeping (test/scenarios/deploy.js, managers.js): every pid seen,
// with its start time, killed at the end only while still the same process (a pid that exited may be
// someone else's by then); waiting, bounded, for pids to be gone; and the JSON lines the services print,
// with waiting for the first one that matches.
'use strict';
const fs = require('node:fs');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function startTime(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const seen = new Map();

/** Remembers a pid (and its start time) to kill at the end. */
function see(pid) {
  if (pid && !seen.has(pid)) seen.set(pid, startTime(pid));
}

/** SIGKILLs every pid seen that is still the same process. */
function killSeen() {
  for (const [pid, started] of seen) {
    if (!started || startTime(pid) !== started) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** Resolves once none of `pids` is alive; rejects after `timeoutMs`. */
async function gone(pids, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive)) {
    if (Date.now() > deadline) throw new Error(`pids ${pids.filter(alive).join(', ')} still alive after ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Lines (parsed JSON events) in arrival order, and the first one from `since` on that matches. */
function lineLog() {
  const lines = [];
  const waiting = [];
  return {
    lines,
    push(line) {
      lines.push(line);
      for (const waiter of waiting.splice(0)) {
        if (waiter.match(line)) waiter.resolve(line);
        else waiting.push(waiter);
      }
    },
    next(match, since = 0, timeoutMs = 30_000) {
      const found = lines.slice(since).find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no such line within ${timeoutMs} ms: ${JSON.stringify(lines).slice(-1500)}`)), timeoutMs);
        waiting.push({ match, resolve: (line) => (clearTimeout(timer), resolve(line)) });
      });
    },
  };
}

/** Calls `onLine` with each JSON line a child prints on stdout. */
function readLines(stream, onLine) {
  let buffer = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    buffer += chunk;
    for (let end = buffer.indexOf('\n'); end >= 0; end = buffer.indexOf('\n')) {
      const line = JSON.parse(buffer.slice(0, end));
      buffer = buffer.slice(end + 1);
      onLine(line);
    }
  });
}

module.exports = { alive, gone, killSeen, lineLog, readLines, see, sleep };
