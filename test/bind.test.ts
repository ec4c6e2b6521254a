// bindReusePort in one process: planBind's table, each backend, the result, the sharing-group check,
// the SO_REUSEADDR libuv sets on adoption (cleared), and what a supervised worker's reasons say.
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { loadBinding } from '../lib/binding';
import { bindReusePort } from '../lib/index';
import { bindWith } from '../lib/listen/bind-reuseport';
import { gatherFacts } from '../lib/plan/facts';
import type { Facts } from '../lib/plan/facts';
import type { PlanOptions } from '../lib/plan/plan';
import { planBind } from '../lib/plan/plan-datagram';
import { udpWrap } from '../lib/udp-handle';

const base: Facts = {
  platform: 'linux',
  release: '6.8.0',
  nodeReusePort: false,
  nodeUdpReusePort: false,
  addon: true,
  addonError: undefined,
  role: 'none',
  override: undefined,
};

const opened: dgram.Socket[] = [];
function udp(type: 'udp4' | 'udp6' = 'udp4'): dgram.Socket {
  const socket = dgram.createSocket(type);
  opened.push(socket);
  return socket;
}
afterEach(() => {
  for (const socket of opened.splice(0)) {
    try {
      socket.close();
    } catch {
      // already closed
    }
  }
});

// One datagram to port from a fresh socket; the answer's body.
async function ask(port: number, address = '127.0.0.1'): Promise<string> {
  const client = udp(address.includes(':') ? 'udp6' : 'udp4');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer')), 5_000);
    client.once('message', (message) => {
      clearTimeout(timer);
      resolve(message.toString());
    });
    client.send('who', port, address);
  });
}

function echo(socket: dgram.Socket, name: string): dgram.Socket {
  socket.on('message', (_message, remote) => socket.send(name, remote.port, remote.address));
  return socket;
}

describe('planBind', () => {
  it.each<[name: string, facts: Partial<Facts>, options: PlanOptions | undefined, mode: string, backend: string, mention: string]>([
    ['Linux with the addon: reuseport', {}, undefined, 'reuseport', 'addon', 'spreads datagrams'],
    [
      "Linux without the addon, Node's dgram reusePort: reuseport by Node",
      { addon: false, nodeUdpReusePort: true },
      undefined,
      'reuseport',
      'node',
      'dgram.createSocket({ reusePort: true })',
    ],
    ['TCP reusePort alone does not count for UDP', { addon: false, nodeReusePort: true }, undefined, 'exclusive', 'node', 'binds alone'],
    ['a worker with no way to open the socket: the shared socket', { addon: false, role: 'worker' }, undefined, 'shared', 'cluster', 'only as one socket'],
    [
      'a macOS worker: the shared socket, never round-robin',
      { platform: 'darwin', release: '23.1.0', role: 'worker' },
      undefined,
      'shared',
      'cluster',
      'no round-robin for UDP',
    ],
    [
      'a Windows worker binds alone (node:cluster has no UDP there)',
      { platform: 'win32', release: '10.0.22631', addon: false, role: 'worker' },
      undefined,
      'exclusive',
      'node',
      'ENOTSUP',
    ],
    ["explicit 'shared' in a worker", { role: 'worker' }, { mode: 'shared' }, 'shared', 'cluster', 'only as one socket'],
    ["explicit 'exclusive'", {}, { mode: 'exclusive' }, 'exclusive', 'node', 'binds alone'],
  ])('%s', (_name, facts, options, mode, backend, mention) => {
    const plan = planBind({ ...base, ...facts }, options);
    expect([plan.mode, plan.backend]).toEqual([mode, backend]);
    expect(plan.reasons.join(' ')).toContain(mention);
  });

  it('a Windows worker is told once how it binds: alone, never also "the cluster shared handle"', () => {
    const plan = planBind({ ...base, platform: 'win32', release: '10.0.22631', addon: false, role: 'worker' });
    const said = plan.reasons.join(' ');
    expect(said).toContain('binds alone');
    expect(said).not.toMatch(/shared handle|accepts on that socket/);
  });

  it.each<[name: string, facts: Partial<Facts>, options: PlanOptions]>([
    ["'round-robin' in a worker", { role: 'worker' }, { mode: 'round-robin' }],
    ["'round-robin' from REUSEPORT_MODE", { role: 'worker', override: 'round-robin' }, {}],
    ["'shared' on Windows", { platform: 'win32', release: '10.0.22631', role: 'worker' }, { mode: 'shared' }],
    ["'reuseport' on macOS", { platform: 'darwin', release: '23.1.0' }, { mode: 'reuseport' }],
  ])('refuses %s with ERR_REUSEPORT_MODE_UNSUPPORTED', (_name, facts, options) => {
    expect(() => planBind({ ...base, ...facts }, options)).toThrow(expect.objectContaining({ code: 'ERR_REUSEPORT_MODE_UNSUPPORTED' }));
  });
});

describe('bindReusePort', () => {
  it('binds two sockets on one port with the addon; the result says how', async () => {
    const first = echo(udp(), 'first');
    const info = await bindReusePort(first, 0, { address: '127.0.0.1' });
    expect(info).toMatchObject({ mode: 'reuseport', backend: 'addon', address: { address: '127.0.0.1', family: 'IPv4' } });
    expect(info.reasons.join(' ')).toContain('no SO_REUSEADDR');
    const second = echo(udp(), 'second');
    const again = await bindReusePort(second, { port: info.address.port, address: '127.0.0.1' });
    expect(again.address.port).toBe(info.address.port);
    expect(['first', 'second']).toContain(await ask(info.address.port));
  });

  it("binds a udp6 socket on '::' by default, dual-stack: it answers IPv4 and IPv6", async () => {
    const socket = echo(udp('udp6'), 'six');
    const info = await bindReusePort(socket, 0);
    expect(info.address).toMatchObject({ address: '::', family: 'IPv6' });
    expect(await ask(info.address.port, '127.0.0.1')).toBe('six');
    expect(await ask(info.address.port, '::1')).toBe('six');
  });

  it('a udp6 socket with ipv6Only receives IPv6 only: a second udp4 socket may take the same port for IPv4', async () => {
    const six = echo(udp('udp6'), 'six');
    const info = await bindReusePort(six, 0, { ipv6Only: true });
    const four = echo(udp(), 'four');
    // Not in the IPv6 socket's group: without ipv6Only this bind would have joined it (same group, both SO_REUSEPORT).
    await bindReusePort(four, info.address.port, { address: '0.0.0.0' });
    expect(await ask(info.address.port, '::1')).toBe('six');
    expect(await ask(info.address.port, '127.0.0.1')).toBe('four');
  });

  it("resolves a name in the socket's family", async () => {
    const info = await bindReusePort(udp(), 0, { address: 'localhost' });
    expect(info.address.address).toBe('127.0.0.1');
  });

  it('refuses a port held by a UDP socket of another sharing group, and closes its own', async () => {
    const holder = udp();
    await bindReusePort(holder, 0, { address: '127.0.0.1', group: 'other-app' });
    const socket = udp();
    await expect(bindReusePort(socket, holder.address().port, { address: '127.0.0.1', group: 'this-app' })).rejects.toMatchObject({
      code: 'EADDRINUSE',
      syscall: 'bind',
      port: holder.address().port,
    });
    expect(() => socket.address()).toThrow();
  });

  it('shares with another group when the check is off ({ group: false }), with a warning', async () => {
    const holder = udp();
    await bindReusePort(holder, 0, { address: '127.0.0.1', group: 'other-app' });
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      await bindReusePort(udp(), holder.address().port, { address: '127.0.0.1', group: false });
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.map((w) => (w as Error & { code?: string }).code)).toContain('REUSEPORT_GROUP_DISABLED');
  });

  it.runIf(process.getuid?.() === 0)('leaves no SO_REUSEADDR on the adopted socket: another user cannot bind beside it', async () => {
    const info = await bindReusePort(udp(), 0, { address: '127.0.0.1' });
    // Node as uid 65534 tries what any user could: SO_REUSEADDR (dgram's reuseAddr) and bind the same address and port.
    const script =
      "const s = require('node:dgram').createSocket({ type: 'udp4', reuseAddr: true });" +
      "s.on('error', (e) => { console.log(e.code); process.exit(0); });" +
      "s.bind(Number(process.argv[1]), '127.0.0.1', () => { console.log('bound'); process.exit(0); });";
    const out = execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script, String(info.address.port)], {
      timeout: 10_000,
    });
    expect(out.toString().trim()).toBe('EADDRINUSE');
  });

  it.runIf(udpWrap().constants.UV_UDP_REUSEPORT !== undefined)("uses Node's own UV_UDP_REUSEPORT without the addon (Node >= 22.12)", async () => {
    const facts = { ...gatherFacts(), addon: false, addonError: 'no addon in this test' };
    const first = echo(udp(), 'first');
    const info = await bindWith({ binding: undefined, facts }, first, 0, { address: '127.0.0.1' });
    expect([info.mode, info.backend]).toEqual(['reuseport', 'node']);
    const second = await bindWith({ binding: undefined, facts }, echo(udp(), 'second'), info.address.port, { address: '127.0.0.1' });
    expect(second.address.port).toBe(info.address.port);
    expect(['first', 'second']).toContain(await ask(info.address.port));
  });

  it('binds alone without the addon where this Node has no dgram reusePort, and says so', async () => {
    const facts = { ...gatherFacts(), addon: false, addonError: 'no addon in this test', nodeUdpReusePort: false };
    const info = await bindWith({ binding: undefined, facts }, udp(), 0, { address: '127.0.0.1' });
    expect([info.mode, info.backend]).toEqual(['exclusive', 'node']);
    expect(info.reasons.join(' ')).toContain('binds alone');
  });

  it('a supervised worker binds its own socket and its reasons say stall lending is TCP-only', async () => {
    const binding = loadBinding().binding;
    const info = await bindWith({ binding, supervision: { slot: 1, supervisorPid: 4242 }, isWorker: false }, udp(), 0, { address: '127.0.0.1' });
    expect([info.mode, info.backend]).toEqual(['reuseport', 'addon']);
    expect(info.reasons.join(' ')).toContain('Stall lending and primary-held slot sockets are TCP-only');
  });

  it("port 0 in a cluster worker with an explicit 'reuseport' is refused: workers could not agree on a port", async () => {
    const facts = { ...gatherFacts(), role: 'worker' as const };
    await expect(
      bindWith({ facts, isWorker: true, sharedPlan: undefined, supervision: undefined }, udp(), 0, { address: '127.0.0.1', mode: 'reuseport' }),
    ).rejects.toMatchObject({
      code: 'ERR_REUSEPORT_MODE_UNSUPPORTED',
    });
  });
});
