// The platforms the release tarball ships a prebuild for, in one place: `npm run prebuild:all`
// builds each with its script, and scripts/ci/check-pack.mjs and the install test accept exactly
// these files under prebuilds/. `file` is the name node-gyp-build looks for (prebuildify --napi
// --tag-libc: no ABI tag, the libc tag, so that musl never loads a glibc build); `machine` is the
// machine the binary must be built for, as its header names it: ELF e_machine (62 x86-64, 183
// AArch64), or for a Windows DLL the PE/COFF Machine field (0x8664 x64, 0xaa64 arm64).
export const TARGETS = [
  { name: 'linux-x64', script: 'linux-x64.sh', file: 'reuseport.glibc.node', machine: 62 },
  { name: 'linux-arm64', script: 'linux-arm64.sh', file: 'reuseport.glibc.node', machine: 183 },
];

/** The tarball paths of every shipped prebuild. */
export function prebuildPaths() {
  return TARGETS.map((target) => `prebuilds/${target.name}/${target.file}`);
}
