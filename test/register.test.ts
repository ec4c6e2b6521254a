// The preload hook, reuseport/register: which listens it takes (a table), and real processes that
// load it with --require / --import. Node's own behaviour is the reference: the same fixture runs
// every listen() form with and without the hook, standalone and as a cluster worker, and what the app
// can observe must be the same but for the socket's SO_REUSEPORT (and a hint after Node's message).
import fs from 'node:fs';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { gatherFacts } from '../lib/plan/facts';
import { defaultGroup } from '../lib/ports/ownership';
import { type ListenCall, routeListen } from '../lib/register/route';
import { firstTarget, hookTargets } from '../lib/register/targets';
import { countResponses } from './helpers/http';
import { startFixture, stopAll } from './helpers/processes';
import { listeningInodes, socketInodesOf } from './helpers/proc-net';
import { freePort } from './helpers/ports';

const root = path.join(__dirname, '..');
const hook = ['--require', path.join(root, 'dist', 'register', 'index.js')];

afterEach(() => stopAll());

const tcp: ListenCall = { port: 3000, addressType: 6, fd: undefined, hasHandle: false, exclusive: false, own: false };

describe('routeListen: which listens go through the package', () => {
  it.each<[string, Partial<ListenCall>, string | undefined]>([
    ['a TCP port, no host (Node passes address type 4)', { addressType: 4 }, undefined],
    ['a TCP port on an IPv6 address', { addressType: 6 }, undefined],
    ['port 0', { port: 0 }, 'port 0: each process would get a port of its own'],
    ['port null (none given)', { port: null }, 'port 0: each process would get a port of its own'],
    ['a unix socket or pipe', { port: -1, addressType: -1 }, 'a unix socket or pipe'],
    ['a dgram socket in a cluster worker', { addressType: 'udp4' }, 'a UDP socket'],
    ['listen({ fd })', { fd: 3 }, 'an fd'],
    ['listen(handle), or a handle from the primary', { hasHandle: true }, 'a handle'],
    ['exclusive: true', { exclusive: true }, 'exclusive: true'],
    ["the package's own listen", { own: true }, "the package's own listen"],
  ])('%s', (_name, change, why) => {
    const route = routeListen({ ...tcp, ...change });
    expect(route).toEqual(why === undefined ? { through: 'package' } : { through: 'node', why });
  });
});

describe('hookTargets: where a hooked listen binds, as Node does', () => {
  it.each([
    ['no host: "::" then "0.0.0.0", ipv6Only ignored as Node ignores it', null, 4, 1, ['::/6/false', '0.0.0.0/4/false']],
    ['an IPv4 host', '127.0.0.1', 4, undefined, ['127.0.0.1/4/false']],
    ['an IPv6 host with ipv6Only (libuv flag 1)', '::1', 6, 1, ['::1/6/true']],
    ['an IPv6 host with reusePort only (flag 2)', '::', 6, 2, ['::/6/false']],
  ] as const)('%s', (_name, address, type, flags, expected) => {
    expect(hookTargets(address, type, flags).map((t) => `${t.address}/${t.addressType}/${t.ipv6Only}`)).toEqual(expected);
  });

  it('tries 0.0.0.0 after "::" fails to bind, but not after EADDRINUSE (which Node reports on "::")', () => {
    const targets = hookTargets(null, 4, undefined);
    const fail = (code: string) => () => {
      throw Object.assign(new Error(code), { code });
    };
    const noIpv6 = (target: { address: string }) => (target.address === '::' ? fail('EAFNOSUPPORT')() : target.address);
    expect(firstTarget(targets, noIpv6)).toEqual({ target: targets[1], value: '0.0.0.0' });
    expect(() => firstTarget(targets, fail('EADDRINUSE'))).toThrow(expect.objectContaining({ target: targets[0] }));
  });
});

describe('defaultGroup', () => {
  it("names the app by its main script, and by its directory when the script is a package's command line", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'group-'));
    try {
      const app = path.join(dir, 'app.js');
      const bin = path.join(dir, 'node_modules', 'next', 'dist', 'bin', 'next');
      fs.mkdirSync(path.dirname(bin), { recursive: true });
      fs.writeFileSync(app, '');
      fs.writeFileSync(bin, '');
      const real = fs.realpathSync(dir);
      expect(defaultGroup(app, '/elsewhere')).toBe(`app:${path.join(real, 'app.js')}`);
      expect(defaultGroup(bin, dir)).toBe(`app:${path.join(real, 'node_modules', 'next', 'dist', 'bin', 'next')} in ${real}`);
      expect(defaultGroup(bin, dir)).not.toBe(defaultGroup(bin, os.tmpdir()));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

interface FormRecord {
  name: string;
  reusePort?: boolean;
  error?: { message: string };
  [key: string]: unknown;
}

async function formsReport(mode: 'standalone' | 'worker', execArgv: string[], env: NodeJS.ProcessEnv = {}): Promise<FormRecord[]> {
  const child = startFixture(
    'listen-forms.js',
    mode === 'worker' ? ['worker'] : [],
    { LISTEN_FORMS_PREBUILD: process.env.REUSEPORT_PREBUILD ?? '', ...env },
    { execArgv },
  );
  const report = await child.next<{ hooked: boolean; records: FormRecord[] }>('report', 60_000);
  expect(report.hooked).toBe(execArgv.length > 0);
  return report.records;
}

// The forms whose socket is the package's: a TCP port other than 0, not exclusive.
const throughPackage = [
  'port',
  'numeric string port',
  'port, host',
  'port, host, backlog, cb',
  'port, backlog',
  '{ port }',
  '{ port, host ::1, ipv6Only }',
  '{ port: string, host: localhost }',
  '{ port, backlog }',
  '{ port, reusePort }',
];

// Without the addon (REUSEPORT_PREBUILD at an empty folder): Node >= 22.12 opens the SO_REUSEPORT
// socket itself (backend 'node'); on an older Node every listen stays Node's (exclusive standalone,
// round-robin through the primary in a worker).
const noAddon = { REUSEPORT_PREBUILD: fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-no-addon-')) };
const nodeReusePort = gatherFacts().nodeReusePort;

const formCases = [
  ['standalone', 'with the addon', {}],
  ['worker', 'with the addon', {}],
  ['standalone', 'without the addon', noAddon],
  ['worker', 'without the addon', noAddon],
] as const;

// Every case's two reports (Node's, and under the hook), run side by side the first time a test asks:
// each report mostly waits (half a second per form), so the eight processes take the time of one
// pair. Every test awaits them all, so no test's end (whose afterEach stops the fixtures) cuts another's.
let formReports: Promise<[FormRecord[], FormRecord[]][]> | undefined;
function reportsOf(index: number): Promise<[FormRecord[], FormRecord[]]> {
  formReports ??= Promise.all(formCases.map(([mode, , env]) => Promise.all([formsReport(mode, [], env), formsReport(mode, hook, env)] as const))) as Promise<
    [FormRecord[], FormRecord[]][]
  >;
  return formReports.then((all) => all[index] as [FormRecord[], FormRecord[]]);
}

describe.each(formCases.map((entry, index) => [...entry, index] as const))(
  'every listen() form under the hook, %s, %s, against Node without it',
  (_mode, addon, _env, index) => {
    it('observes what Node gives (thrown errors, return value, address(), _connectionKey, event order, emitted errors); only port listens get SO_REUSEPORT', async () => {
      const [plain, hooked] = await reportsOf(index);
      if (addon === 'without the addon' && !nodeReusePort) {
        // Nothing to balance with: the hook leaves every listen to Node, which is then all there is to compare.
        expect(hooked.filter((r) => r.reusePort === true)).toEqual([]);
        expect(hooked).toEqual(plain);
        return;
      }
      expect(hooked.map((r) => r.name)).toEqual(plain.map((r) => r.name));
      // The first of two listen() calls listens through the package (standalone the second throws; in a worker the
      // second comes after 'listening': see the fixture for why).
      expect(hooked.filter((r) => r.reusePort === true).map((r) => r.name)).toEqual([...throughPackage, 'twice']);
      // Node's own reusePort (Node >= 22.12) sets it too; no other form without the hook does.
      expect(
        plain
          .filter((r) => r.reusePort === true)
          .map((r) => r.name)
          .filter((name) => name !== '{ port, reusePort }'),
      ).toEqual([]);
      for (const [index, ours] of hooked.entries()) {
        const node = plain[index]!;
        // A hint may follow Node's own message.
        if (ours.error && node.error) expect(ours.error.message.startsWith(node.error.message), ours.name).toBe(true);
        const strip = ({ reusePort: _r, error, ...rest }: FormRecord) => ({ ...rest, error: error && { ...error, message: undefined } });
        expect(strip(ours), ours.name).toEqual(strip(node));
      }
    }, 90_000);
  },
);

interface Listening {
  pid: number;
  address: net.AddressInfo;
}

describe('unmodified apps under the hook', () => {
  it.each([
    ['--require, CommonJS', 'ordinary-app.js', ['--require', 'reuseport/register']],
    ['--import, ESM', 'ordinary-app.mjs', ['--import', 'reuseport/register']],
  ])('%s: two standalone processes each serve the port on a socket of their own', async (_name, fixture, execArgv) => {
    const port = await freePort();
    const env = { APP_PORT: String(port), APP_HOST: '127.0.0.1' };
    // Run from the package's directory, so `reuseport/register` resolves as it does in a user's app.
    const apps = [0, 1].map(() => startFixture(fixture, [], env, { execArgv, cwd: root }));
    const listening = await Promise.all(apps.map((app) => app.next<Listening>('listening')));
    // The app's own callback sees the port, as without the hook.
    expect(listening.map((l) => l.address)).toEqual([0, 1].map(() => ({ address: '127.0.0.1', family: 'IPv4', port })));
    const inodes = listeningInodes(port);
    expect(inodes).toHaveLength(2);
    for (const { pid } of listening) expect(inodes.filter((inode) => socketInodesOf(pid).has(inode))).toHaveLength(1);
    const counts = await countResponses(port, 200);
    expect([...counts.keys()].sort()).toEqual(listening.map((l) => String(l.pid)).sort());
  });

  it("a port held by an unrelated program reaches the app's own 'error' handler as Node's EADDRINUSE", async () => {
    const holder = startFixture('plain-listener.js');
    const { port } = await holder.next<{ port: number }>('ready');
    const app = startFixture('ordinary-app.js', [], { APP_PORT: String(port), APP_HOST: '127.0.0.1' }, { execArgv: hook });
    const { error } = await app.next<{ error: Record<string, unknown> }>('error');
    expect(error).toMatchObject({ code: 'EADDRINUSE', errno: -98, syscall: 'listen', address: '127.0.0.1', port });
    expect(error.message).toMatch(new RegExp(`^listen EADDRINUSE: address already in use 127\\.0\\.0\\.1:${port}`));
  });

  it('a port another app serves under the hook is refused as EADDRINUSE naming the holder and the sharing group, with no generic hint', async () => {
    const port = await freePort();
    const env = { APP_PORT: String(port), APP_HOST: '127.0.0.1' };
    const first = startFixture('ordinary-app.js', [], env, { execArgv: hook });
    const { pid } = await first.next<Listening>('listening');
    const other = startFixture('other-app.js', [], env, { execArgv: hook });
    const { error } = await other.next<{ error: { message: string } }>('error');
    expect(error).toMatchObject({ code: 'EADDRINUSE', errno: -98, syscall: 'listen', address: '127.0.0.1', port });
    expect(error.message).toMatch(
      new RegExp(`^listen EADDRINUSE: address already in use 127\\.0\\.0\\.1:${port} \\(held by 127\\.0\\.0\\.1:${port} by pid ${pid} `),
    );
    expect(error.message).toMatch(/which is not of this app's sharing group "app:[^"]*other-app\.js"/);
    // One explanation, closed: not also the hint for a plain (non-SO_REUSEPORT) holder.
    expect(error.message).not.toMatch(/without SO_REUSEPORT/);
    expect(error.message.split('(').length).toBe(error.message.split(')').length);
  });

  it('cluster workers of a plain node:cluster primary each get their own socket; the primary holds none and sees both listen', async () => {
    const port = await freePort();
    const primary = startFixture('ordinary-app.js', ['cluster'], { APP_PORT: String(port), APP_HOST: '127.0.0.1' }, { execArgv: hook });
    const ready = await primary.next<{ pid: number; listening: { pid: number; port: number }[] }>('ready');
    expect(ready.listening.map((l) => l.port)).toEqual([port, port]);
    const inodes = listeningInodes(port);
    expect(inodes).toHaveLength(2);
    expect(inodes.filter((inode) => socketInodesOf(ready.pid).has(inode))).toEqual([]);
    const counts = await countResponses(port, 200);
    expect([...counts.keys()].sort()).toEqual(ready.listening.map((l) => String(l.pid)).sort());
    for (const { pid } of ready.listening) process.kill(pid, 'SIGKILL');
  });

  it('is installed once when two copies of the package load it; the first copy does the listens', async () => {
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'reuseport-copy-'));
    try {
      fs.cpSync(path.join(root, 'dist'), path.join(copy, 'dist'), { recursive: true });
      fs.copyFileSync(path.join(root, 'package.json'), path.join(copy, 'package.json'));
      fs.symlinkSync(path.join(root, 'node_modules'), path.join(copy, 'node_modules'));
      fs.symlinkSync(path.join(root, 'build'), path.join(copy, 'build'));
      const copyHook = path.join(copy, 'dist', 'register', 'index.js');
      const port = await freePort();
      const app = startFixture(
        'ordinary-app.js',
        [],
        { APP_PORT: String(port), APP_HOST: '127.0.0.1' },
        { execArgv: ['--require', copyHook, ...hook, '--require', copyHook] },
      );
      await app.next<Listening>('listening');
      expect(listeningInodes(port)).toHaveLength(1);
      // The copy loaded first installed the hook; the package's own entry saw it and did nothing.
      const check = startFixture('hook-owner.js', [], {}, { execArgv: ['--require', copyHook, ...hook] });
      const owner = await check.next<{ owner: string; again: boolean }>('owner');
      expect(owner).toMatchObject({ owner: path.join(copy, 'dist', 'register', 'install.js'), again: false });
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });
});
