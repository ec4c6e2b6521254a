// Steering by weight on real SO_REUSEPORT groups (127.0.0.1): the weighted program spreads new
// connections by weight, SlotSockets attaches it (and leaves sticky and CPU-local programs as they
// are), replacing it moves no queued connection, and frequent replacements cost no connection.
import fs from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type NativeBinding, type NativeSocket, loadBinding } from '../lib/binding';
import { slotsByCpu } from '../lib/supervisor/slots/affinity';
import { SlotSockets } from '../lib/supervisor/slots/slot-sockets';
import { cpuLocalProgram, flatten, stickyProgram } from '../lib/supervisor/slots/steering';
import { weightedProgram } from '../lib/supervisor/slots/weighted';

const loaded = loadBinding();
if (!loaded.binding) throw loaded.error;
const real = loaded.binding;
const request = { address: '127.0.0.1', port: 0, ipv6Only: false, group: false as const };

// A binding that records every program attached.
function recording(programs: number[][]): NativeBinding {
  return { ...real, attachReusePortProgram: (fd, program) => (programs.push(program), real.attachReusePortProgram(fd, program)) };
}

// Opens `count` connections one after the other and leaves them open (nobody need accept them).
async function connectMany(port: number, count: number): Promise<net.Socket[]> {
  const clients: net.Socket[] = [];
  for (let i = 0; i < count; i++) {
    clients.push(
      await new Promise<net.Socket>((resolve, reject) => {
        const client = net.connect(port, '127.0.0.1', () => resolve(client));
        client.once('error', reject);
      }),
    );
  }
  return clients;
}

// `count` sockets of one group on 127.0.0.1, listening in order (their indexes in the group).
function group(count: number, backlog = 511): NativeSocket[] {
  const sockets: NativeSocket[] = [];
  for (let i = 0; i < count; i++) {
    const socket = real.openListener({ address: '127.0.0.1', port: sockets[0]?.port ?? 0, listen: false });
    sockets.push(socket);
  }
  for (const socket of sockets) real.listenSocket(socket.fd, backlog);
  return sockets;
}

describe('SlotSockets.steer with weights', () => {
  const opened: SlotSockets[] = [];
  const clients: net.Socket[] = [];
  afterEach(() => {
    for (const client of clients.splice(0)) client.destroy();
    for (const sockets of opened.splice(0)) sockets.closeAll();
  });

  it('weights 1:3 over 400 connections: the second socket gets clearly more, the first some', async () => {
    const programs: number[][] = [];
    const sockets = new SlotSockets(recording(programs), 2);
    opened.push(sockets);
    const { port } = sockets.get(0, request);
    sockets.get(1, request);
    sockets.steer(
      [0, 1],
      new Map([
        [0, 1],
        [1, 3],
      ]),
    );
    expect(programs.at(-1)).toEqual(flatten(weightedProgram([0, 1], [1, 3])));
    // Nobody accepts: every connection waits in the queue of the socket the program chose.
    clients.push(...(await connectMany(port, 400)));
    const [first, second] = [sockets.queued(0), sockets.queued(1)];
    expect(first + second).toBe(400);
    // 100 and 300 expected; 2x apart is over 3.5 standard deviations of the binomial away.
    expect(second).toBeGreaterThan(2 * first);
    expect(first).toBeGreaterThan(40);
  });

  it('the same weights attach nothing new; steer() without weights keeps them; null goes back to the hash', () => {
    const programs: number[][] = [];
    const sockets = new SlotSockets(recording(programs), 2);
    opened.push(sockets);
    sockets.get(0, request);
    sockets.get(1, request);
    const hash = programs.at(-1);
    const weights = new Map([
      [0, 8],
      [1, 56],
    ]);
    sockets.steer([0, 1], weights);
    sockets.steer([0, 1], new Map(weights));
    sockets.steer([0, 1]);
    expect(programs).toHaveLength(3);
    sockets.steer([0, 1], null);
    expect(programs.at(-1)).toEqual(hash);
  });

  it("slots whose workers ask in the order 1, 0: each slot weighed at its socket's place in the kernel's group", () => {
    const programs: number[][] = [];
    const sockets = new SlotSockets(recording(programs), 2);
    opened.push(sockets);
    sockets.get(1, request);
    sockets.get(0, request);
    sockets.steer(
      [0, 1],
      new Map([
        [0, 10],
        [1, 20],
      ]),
    );
    // Slot 1's socket joined the group first (index 0), slot 0's second (index 1).
    expect(programs.at(-1)).toEqual(flatten(weightedProgram([1, 0], [10, 20])));
  });

  it('a group only slot 1 listens on gets the program for slot 1 alone', () => {
    const programs: number[][] = [];
    const sockets = new SlotSockets(recording(programs), 3);
    opened.push(sockets);
    sockets.get(1, request);
    sockets.steer(
      [0, 1, 2],
      new Map([
        [0, 10],
        [1, 20],
        [2, 30],
      ]),
    );
    // The group holds slot 1's socket alone, at index 0.
    expect(programs.at(-1)).toEqual(flatten(weightedProgram([0], [20])));
  });

  it.each<[string, (binding: NativeBinding) => SlotSockets, number[]]>([
    ['sticky', (binding) => new SlotSockets(binding, 2, undefined, {}), flatten(stickyProgram([0, 1]))],
    ['cpuLocal', (binding) => new SlotSockets(binding, 2, [0, 1]), flatten(cpuLocalProgram(slotsByCpu([0, 1], [0, 1]), [0, 1]))],
  ])('%s keeps its program: weights change nothing', (_name, make, program) => {
    const programs: number[][] = [];
    const sockets = make(recording(programs));
    opened.push(sockets);
    sockets.get(0, request);
    sockets.get(1, request);
    const attached = programs.length;
    expect(programs.at(-1)).toEqual(program);
    sockets.steer(
      [0, 1],
      new Map([
        [0, 1],
        [1, 3],
      ]),
    );
    expect(programs).toHaveLength(attached);
  });
});

describe('replacing the weighted program', () => {
  const servers: net.Server[] = [];
  const clients: net.Socket[] = [];
  const fds: number[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.destroy();
    await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
    for (const fd of fds.splice(0)) {
      try {
        fs.closeSync(fd);
      } catch {
        // closed with its server
      }
    }
  });

  it('moves no connection already queued: they stay in their socket and are all served after 20 swaps', async () => {
    const sockets = group(2);
    fds.push(...sockets.map((socket) => socket.fd));
    const [first, second] = sockets as [NativeSocket, NativeSocket];
    real.attachReusePortProgram(first.fd, flatten(weightedProgram([0, 1], [1, 63])));
    clients.push(...(await connectMany(first.port, 100)));
    const before = [real.acceptQueue(first.fd).queued, real.acceptQueue(second.fd).queued];
    expect(before[0] + before[1]).toBe(100);
    for (let swap = 0; swap < 20; swap++) {
      real.attachReusePortProgram(first.fd, flatten(weightedProgram([0, 1], swap % 2 ? [1, 63] : [63, 1])));
    }
    expect([real.acceptQueue(first.fd).queued, real.acceptQueue(second.fd).queued]).toEqual(before);
    // Every queued connection is served whole: none was reset by the swaps.
    let served = 0;
    for (const socket of sockets) {
      const server = net.createServer((connection) => {
        served += 1;
        connection.end('ok');
      });
      server.listen({ fd: socket.fd });
      servers.push(server);
    }
    const answers = await Promise.all(
      clients.map(
        (client) =>
          new Promise<string>((resolve) => {
            let data = '';
            client.setEncoding('utf8');
            client.on('data', (chunk) => (data += chunk));
            client.on('end', () => resolve(data));
            client.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
          }),
      ),
    );
    expect(answers.filter((answer) => answer !== 'ok')).toEqual([]);
    expect(served).toBe(100);
  });

  it('every 20-50 ms while 2000 new connections are made: 0 fail, every socket serves some', async () => {
    const sockets = group(3);
    fds.push(...sockets.map((socket) => socket.fd));
    const [first] = sockets as [NativeSocket];
    const served = [0, 0, 0];
    sockets.forEach((socket, i) => {
      const server = net.createServer((connection) => {
        served[i] = (served[i] ?? 0) + 1;
        connection.end('ok');
      });
      server.listen({ fd: socket.fd });
      servers.push(server);
    });
    const sets = [
      [2, 30, 32],
      [56, 4, 4],
      [8, 8, 48],
      [22, 22, 22],
    ];
    let swaps = 0;
    const swap = () => {
      real.attachReusePortProgram(first.fd, flatten(weightedProgram([0, 1, 2], sets[swaps % sets.length] as number[])));
      swaps += 1;
    };
    swap();
    let timer: NodeJS.Timeout | undefined;
    const again = () => {
      timer = setTimeout(
        () => {
          swap();
          again();
        },
        20 + (swaps % 4) * 10,
      );
    };
    again();
    const failures: string[] = [];
    // One connection: connect, read "ok" to its end.
    const once = () =>
      new Promise<void>((resolve) => {
        const client = net.connect(first.port, '127.0.0.1');
        let data = '';
        client.setEncoding('utf8');
        client.on('data', (chunk) => (data += chunk));
        client.on('end', () => {
          if (data !== 'ok') failures.push(`answer ${JSON.stringify(data)}`);
          client.destroy();
          resolve();
        });
        client.on('error', (error: NodeJS.ErrnoException) => {
          failures.push(error.code ?? error.message);
          resolve();
        });
      });
    try {
      // 40 batches of 50 (20 at a time), each begun after a swap since the last one.
      for (let batch = 0; batch < 40; batch++) {
        const seen = swaps;
        for (let wait = 0; swaps === seen && wait < 200; wait++) await new Promise((resolve) => setTimeout(resolve, 5));
        for (let round = 0; round < 50; round += 25) await Promise.all(Array.from({ length: 25 }, once));
      }
    } finally {
      clearTimeout(timer);
    }
    expect(failures).toEqual([]);
    expect(served.reduce((a, b) => a + b, 0)).toBe(2000);
    for (const count of served) expect(count).toBeGreaterThan(0);
    expect(swaps).toBeGreaterThanOrEqual(40);
  });
});
