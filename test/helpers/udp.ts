// A UDP client for tests: one datagram from each of `count` fresh source ports, the answers counted by body.
import dgram from 'node:dgram';

// Sends from one new socket (so one new source port) and waits for the first answer; resends from the
// same socket, which the kernel hashes to the same receiver, when loopback dropped one (bounded).
// The socket stays open (in `open`) until every datagram is answered, so no two share a source port.
async function ask(port: number, open: dgram.Socket[], tries = 5, waitMs = 1_000): Promise<string> {
  const socket = dgram.createSocket('udp4');
  open.push(socket);
  {
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    for (let attempt = 0; attempt < tries; attempt++) {
      const answer = await new Promise<string | undefined>((resolve) => {
        const timer = setTimeout(() => {
          socket.off('message', onMessage);
          resolve(undefined);
        }, waitMs);
        const onMessage = (message: Buffer) => {
          clearTimeout(timer);
          resolve(message.toString());
        };
        socket.once('message', onMessage);
        socket.send('who', port, '127.0.0.1');
      });
      if (answer !== undefined) return answer;
    }
    throw new Error(`no answer on udp 127.0.0.1:${port} after ${tries} tries`);
  }
}

/** Sends `count` datagrams, each from its own source port (all distinct), 20 at a time; returns answers by body (the pid). */
export async function countDatagramAnswers(port: number, count: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const open: dgram.Socket[] = [];
  try {
    for (let sent = 0; sent < count; sent += 20) {
      const batch = Array.from({ length: Math.min(20, count - sent) }, () => ask(port, open));
      for (const body of await Promise.all(batch)) counts.set(body, (counts.get(body) ?? 0) + 1);
    }
    const ports = new Set(open.map((socket) => socket.address().port));
    if (ports.size !== count) throw new Error(`${count} datagrams came from ${ports.size} source ports`);
  } finally {
    for (const socket of open) socket.close();
  }
  return counts;
}
