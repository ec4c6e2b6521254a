// The scenarios' one IPC helper: the next message of a type from a child process, bounded in time.
'use strict';

function once(emitter, type, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} within ${timeoutMs} ms`)), timeoutMs);
    emitter.on('message', function onMessage(message) {
      if (message?.type !== type) return;
      clearTimeout(timer);
      emitter.off('message', onMessage);
      resolve(message);
    });
  });
}

module.exports = { once };
