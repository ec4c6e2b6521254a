// Reads a kernel release string and judges whether that kernel spreads connections across SO_REUSEPORT sockets.

/** A kernel version as numbers; `patch` is 0 when the release gives only major.minor. */
export interface KernelVersion {
  major: number;
  minor: number;
  patch: number;
}

/** Whether a kernel balances SO_REUSEPORT listeners, and a sentence naming the release that decided it. */
export interface KernelBalancing {
  /** True when the kernel spreads new connections across every SO_REUSEPORT socket on a port. */
  balances: boolean;
  /** False when the release or platform could not be read and `balances` is an assumption. */
  certain: boolean;
  /** A sentence a person can read, naming the platform and release. */
  reason: string;
}

// Only the leading "major.minor[.patch]" matters: suffixes (-1160.el7.x86_64, -RELEASE-p4, -aws, a
// fourth WSL2 component) vary by distribution and say nothing about the balancing code.
const versionPattern = /^(\d+)\.(\d+)(?:\.(\d+))?/;

/** Parses the leading "major.minor[.patch]" of a kernel release; undefined when there is none. */
export function parseKernelVersion(release: string): KernelVersion | undefined {
  const match = versionPattern.exec(release.trim());
  if (!match) return undefined;
  const [major, minor, patch] = [match[1], match[2], match[3] ?? '0'].map(Number) as [number, number, number];
  if (![major, minor, patch].every(Number.isSafeInteger)) return undefined;
  return { major, minor, patch };
}

/** True when `version` is at least major.minor. */
export function isAtLeast(version: KernelVersion, major: number, minor: number): boolean {
  return version.major > major || (version.major === major && version.minor >= minor);
}

const linuxPlatforms = new Set(['linux', 'android']);
// Node has no platform string of its own for DragonFly; accept the names a port might report.
const dragonflyPlatforms = new Set(['dragonfly', 'dragonflybsd']);
const nonBalancingBsds: Record<string, string> = { darwin: 'Darwin', openbsd: 'OpenBSD', netbsd: 'NetBSD' };

const spreads = 'spreads new connections across every SO_REUSEPORT socket bound to the port';

function judgeLinux(release: string): KernelBalancing {
  const name = `Linux ${release}`;
  // WSL1 is Windows answering Linux system calls, and names itself "-Microsoft" (capital M);
  // WSL2 ("-microsoft-standard-WSL2") is a real Linux kernel and is judged as one.
  if (release.includes('Microsoft')) {
    return {
      balances: false,
      certain: true,
      reason:
        `${name} is WSL1 (its release contains "Microsoft"): Windows emulates the Linux system calls there ` +
        'and does not spread connections across SO_REUSEPORT sockets; WSL2 runs a real Linux kernel that does.',
    };
  }
  const version = parseKernelVersion(release);
  if (!version) {
    return {
      balances: false,
      certain: false,
      reason:
        `The Linux kernel release "${release}" could not be read, so this assumes the kernel cannot balance ` +
        'SO_REUSEPORT sockets (Linux >= 3.9 can); if you know it can, set REUSEPORT_MODE=reuseport ' +
        "or pass { mode: 'reuseport' }.",
    };
  }
  const wsl2 = /microsoft/i.test(release) ? ' (WSL2, a real Linux kernel)' : '';
  if (!isAtLeast(version, 3, 9)) {
    return {
      balances: false,
      certain: true,
      reason: `${name}${wsl2} is older than 3.9, the first Linux that ${spreads}.`,
    };
  }
  return { balances: true, certain: true, reason: `${name}${wsl2} is Linux >= 3.9, which ${spreads}.` };
}

function judgeFreeBsd(release: string): KernelBalancing {
  const version = parseKernelVersion(release);
  if (!version) {
    return {
      balances: false,
      certain: false,
      reason:
        `The FreeBSD release "${release}" could not be read, so this assumes it lacks SO_REUSEPORT_LB ` +
        '(FreeBSD >= 12 has it); if you know it has it, set REUSEPORT_MODE=reuseport.',
    };
  }
  if (version.major < 12) {
    return {
      balances: false,
      certain: true,
      reason: `FreeBSD ${release} is older than 12, the first with SO_REUSEPORT_LB; ` + 'its plain SO_REUSEPORT does not spread connections across sockets.',
    };
  }
  return {
    balances: true,
    certain: true,
    reason: `FreeBSD ${release} has SO_REUSEPORT_LB (FreeBSD >= 12), which spreads new connections ` + 'across every SO_REUSEPORT_LB socket bound to the port.',
  };
}

/** Judges from `process.platform` and `os.release()` alone whether the kernel balances SO_REUSEPORT listeners. */
export function judgeKernel(platform: string, release: string): KernelBalancing {
  if (linuxPlatforms.has(platform)) return judgeLinux(release);
  if (platform === 'freebsd') return judgeFreeBsd(release);
  if (dragonflyPlatforms.has(platform)) {
    return { balances: true, certain: true, reason: `DragonFly BSD ${release} ${spreads}.` };
  }
  if (platform === 'win32') {
    return {
      balances: false,
      certain: true,
      reason:
        `Windows ${release} has no SO_REUSEPORT, and SO_REUSEADDR must never be set there: ` +
        'it lets any other process bind the same port and steal its connections.',
    };
  }
  const bsd = nonBalancingBsds[platform];
  if (bsd) {
    const name = platform === 'darwin' ? `${bsd} ${release} (macOS)` : `${bsd} ${release}`;
    return {
      balances: false,
      certain: true,
      reason: `${name} has SO_REUSEPORT, but it does not spread connections across the sockets bound to a port.`,
    };
  }
  return {
    balances: false,
    certain: false,
    reason:
      `This platform ("${platform}", release "${release}") is not known to spread connections across ` + 'SO_REUSEPORT sockets, so this assumes it cannot.',
  };
}
