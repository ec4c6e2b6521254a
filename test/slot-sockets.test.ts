// The supervisor's slot sockets on real SO_REUSEPORT groups (the real addon, 127.0.0.1): the
// steering a worker is told of is the steering the kernel took. The refused attach is injected (the
// binding's attachReusePortProgram throws what the addon throws for ENOPROTOOPT, as qemu-user and
// some seccomp profiles answer SO_ATTACH_REUSEPORT_CBPF); the real refusal runs under qemu in
// `npm run test:arm64`.
import net from 'node:net';
import os from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { type NativeBinding, loadBinding } from '../lib/binding';
import { SlotSockets } from '../lib/supervisor/slots/slot-sockets';

const loaded = loadBinding();
if (!loaded.binding) throw loaded.error;
const real = loaded.binding;
const request = { address: '127.0.0.1', port: 0, ipv6Only: false, group: false as const };

function refusing(calls: number[]): NativeBinding {
  return {
    ...real,
    attachReusePortProgram(fd: number) {
      calls.push(fd);
      const error = Object.assign(new Error('setsockopt ENOPROTOOPT: Protocol not available'), {
        code: 'ENOPROTOOPT',
        errno: -(os.constants.errno.ENOPROTOOPT as number),
        syscall: 'setsockopt',
        fd,
      });
      throw error;
    },
  };
}

describe('SlotSockets steering', () => {
  const opened: SlotSockets[] = [];
  afterEach(() => {
    for (const sockets of opened.splice(0)) sockets.closeAll();
  });

  it('attaches the program when the group opens, before the first socket is handed out', () => {
    const calls: number[] = [];
    const sockets = new SlotSockets({ ...real, attachReusePortProgram: (fd, program) => (calls.push(fd), real.attachReusePortProgram(fd, program)) }, 2);
    opened.push(sockets);
    const socket = sockets.get(0, request);
    expect(calls).toHaveLength(1);
    const [state] = sockets.steering();
    expect(state).toMatchObject({ enabled: true, port: socket.port });
    expect(state?.reason).toMatch(/^a cBPF program on the SO_REUSEPORT group/);
    // The second slot's worker asks: the program now steers to it too; steer() with the same slots attaches nothing new.
    sockets.get(1, request);
    expect(calls).toHaveLength(2);
    sockets.steer([0, 1]);
    expect(calls).toHaveLength(2);
  });

  it('steers only to the slots whose workers asked for the group: connections queue in their sockets, none where no worker accepts', async () => {
    const sockets = new SlotSockets(real, 3);
    opened.push(sockets);
    // Only slot 1's worker listens on this port (an admin port, a port of its own).
    const socket = sockets.get(1, request);
    const clients = await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<net.Socket>((resolve) => {
            const client = net.connect(socket.port, '127.0.0.1', () => resolve(client));
            client.on('error', () => undefined);
          }),
      ),
    );
    try {
      // Nobody accepts here: every connection waits in the queue the kernel put it in. A client's
      // connect can complete before the listener has taken the final ACK (loopback's receive runs
      // later on a loaded machine): read until all 20 are queued somewhere, up to 5 s.
      const queues = () => [sockets.queued(0), sockets.queued(1), sockets.queued(2)];
      const deadline = Date.now() + 5_000;
      for (let i = 0; i < 500 && Date.now() < deadline && queues().reduce((a, b) => a + b, 0) < 20; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(queues()).toEqual([0, 20, 0]);
    } finally {
      for (const client of clients) client.destroy();
    }
  });

  it('says "no steering" to the first worker when the attach is refused', () => {
    const calls: number[] = [];
    const sockets = new SlotSockets(refusing(calls), 2);
    opened.push(sockets);
    const socket = sockets.get(0, request);
    expect(calls).toHaveLength(1);
    const [state] = sockets.steering();
    expect(state).toMatchObject({ enabled: false, port: socket.port });
    expect(state?.reason).toBe('no steering: attaching the program failed (setsockopt ENOPROTOOPT: Protocol not available)');
    // Nothing claims it later, and no further attach is tried.
    sockets.get(1, request);
    sockets.steer([0, 1]);
    expect(calls).toHaveLength(1);
    expect(sockets.steering()[0]?.reason).toMatch(/^no steering: attaching the program failed/);
  });
});
