// normalizeListenArgs: Node's own validation rules and error codes, before any side effect.
import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKLOG, normalizeListenArgs } from '../lib/listen/options';

const signal = new AbortController().signal;

describe('normalizeListenArgs accepts', () => {
  it.each<[string, unknown, unknown, Record<string, unknown>]>([
    ['a port number', 8000, undefined, { port: 8000, host: undefined, backlog: DEFAULT_BACKLOG, ipv6Only: false }],
    ['a numeric string port', '8000', undefined, { port: 8000 }],
    ['port 0', 0, undefined, { port: 0 }],
    ['port 65535', 65535, undefined, { port: 65535 }],
    ['no port', undefined, undefined, { port: 0 }],
    ['port and options', 80, { host: '::1', backlog: 7, ipv6Only: true }, { port: 80, host: '::1', backlog: 7, ipv6Only: true }],
    ['an options object', { port: 81, host: 'localhost' }, undefined, { port: 81, host: 'localhost' }],
    ['port 0 in an options object', { port: 0, host: '127.0.0.1' }, undefined, { port: 0 }],
    ['a host name with a trailing dot', { port: 1, host: 'localhost.' }, undefined, { host: 'localhost.' }],
    ['an IPv6 address with a scope', { port: 1, host: 'fe80::1%lo' }, undefined, { host: 'fe80::1%lo' }],
    ['a null host', { port: 1, host: null }, undefined, { host: undefined }],
    ['a signal', { port: 1, signal }, undefined, { signal }],
    ['options it does not know', { port: 1, exclusive: true }, undefined, { port: 1 }],
  ])('%s', (_name, first, second, expected) => {
    expect(normalizeListenArgs(first, second)).toMatchObject(expected);
  });
});

describe('normalizeListenArgs rejects', () => {
  it.each<[string, unknown, unknown, string, string]>([
    ['a negative port', -1, undefined, 'RangeError', 'ERR_SOCKET_BAD_PORT'],
    ['port 65536', 65536, undefined, 'RangeError', 'ERR_SOCKET_BAD_PORT'],
    ['a fractional port', 80.5, undefined, 'RangeError', 'ERR_SOCKET_BAD_PORT'],
    ['NaN', Number.NaN, undefined, 'RangeError', 'ERR_SOCKET_BAD_PORT'],
    ['Infinity', Number.POSITIVE_INFINITY, undefined, 'RangeError', 'ERR_SOCKET_BAD_PORT'],
    ['a word', 'http', undefined, 'RangeError', 'ERR_SOCKET_BAD_PORT'],
    ['a blank string', '  ', undefined, 'RangeError', 'ERR_SOCKET_BAD_PORT'],
    ['a boolean port', true, undefined, 'RangeError', 'ERR_SOCKET_BAD_PORT'],
    ['a null port', null, undefined, 'RangeError', 'ERR_SOCKET_BAD_PORT'],
    ['a port with letters', '80abc', undefined, 'RangeError', 'ERR_SOCKET_BAD_PORT'],
    ['an empty host', { port: 80, host: '' }, undefined, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    ['a dotted quad that is no address', { port: 80, host: '999.1.1.1' }, undefined, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    ['a colon that is no IPv6 address', { port: 80, host: '::zz' }, undefined, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    ['a host with a space', { port: 80, host: 'my host' }, undefined, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    ['a host label over 63 characters', { port: 80, host: `${'a'.repeat(64)}.test` }, undefined, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    ['an unknown mode', { port: 80, mode: 'turbo' }, undefined, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    ['a bad port in options', { port: 70000 }, undefined, 'RangeError', 'ERR_SOCKET_BAD_PORT'],
    ['options that are not an object', 80, 'fast', 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['an empty options object (as server.listen({}))', {}, undefined, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    ['an array (as server.listen([]))', [], undefined, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    ['options without port', { host: '127.0.0.1' }, undefined, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    ['an undefined port in options', { port: undefined }, undefined, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    ['a numeric host', { port: 80, host: 127 }, undefined, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['a string backlog', { port: 80, backlog: '10' }, undefined, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['a negative backlog', { port: 80, backlog: -1 }, undefined, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['a fractional backlog', { port: 80, backlog: 1.5 }, undefined, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['a string ipv6Only', { port: 80, ipv6Only: 'yes' }, undefined, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['a signal that is not an AbortSignal', { port: 80, signal: {} }, undefined, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
  ])('%s with %s %s', (_name, first, second, name, code) => {
    expect(() => normalizeListenArgs(first, second)).toThrow(expect.objectContaining({ name, code }));
  });

  it('words an options object without port as Node words server.listen({})', () => {
    expect(() => normalizeListenArgs({})).toThrow(`The argument 'options' must have the property "port". Received {}`);
  });

  it('words a bad port as Node does', () => {
    expect(() => normalizeListenArgs(65536)).toThrow('port should be >= 0 and < 65536. Received type number (65536).');
  });

  it('prints the code in the stack as Node does', () => {
    try {
      normalizeListenArgs(-1);
      expect.unreachable();
    } catch (error) {
      expect((error as Error).stack).toMatch(/^RangeError \[ERR_SOCKET_BAD_PORT\]: port should be/);
      expect((error as Error).name).toBe('RangeError');
    }
  });
});
