// uvErrno: the errno Node gives an error code on this platform, from util.getSystemErrorMap(), never
// -(os.constants.errno.X) (the C runtime's number, which is not libuv's on Windows).
import os from 'node:os';
import { getSystemErrorName } from 'node:util';
import { describe, expect, it } from 'vitest';
import { systemError, uvErrno } from '../lib/errors';

// The entries of Windows Node 22's getSystemErrorMap() for these codes (read under Wine from
// node.exe 22.23.3: libuv's own numbers there, not the CRT's 22, 98, 129).
const windowsMap = new Map<number, [string, string]>([
  [-4071, ['EINVAL', 'invalid argument']],
  [-4091, ['EADDRINUSE', 'address already in use']],
  [-4049, ['ENOTSUP', 'operation not supported on socket']],
]);

describe('uvErrno', () => {
  it.each<[code: string, errno: number]>([
    ['EINVAL', -4071],
    ['EADDRINUSE', -4091],
    ['ENOTSUP', -4049],
  ])("gives Windows' libuv errno for %s from a Windows map", (code, errno) => {
    expect(uvErrno(code, windowsMap)).toBe(errno);
  });

  it.each(['EINVAL', 'EADDRINUSE', 'ENOTSUP', 'EACCES'])('round-trips %s through Node on this platform', (code) => {
    expect(getSystemErrorName(uvErrno(code))).toBe(code);
    if (process.platform !== 'win32') expect(uvErrno(code)).toBe(-(os.constants.errno as Record<string, number>)[code]);
  });

  it("makes errors Node names by their code: systemError(uvErrno('EINVAL')) is EINVAL, not UNKNOWN", () => {
    expect(systemError(uvErrno('EINVAL'), 'bind', '::1', 9)).toMatchObject({ code: 'EINVAL', errno: uvErrno('EINVAL'), syscall: 'bind' });
  });

  it('refuses a name libuv does not have', () => {
    expect(() => uvErrno('ENOTANERROR')).toThrow(RangeError);
  });
});
