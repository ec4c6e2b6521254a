// What the steering on one address does, or why there is none, in the words a worker's reasons use.

/** Which program a supervisor's groups get: by a hash of address and port, by CPU, or by the client's address. */
export type SteeringKind = 'hash' | 'cpu-local' | 'sticky';

/** What the steering on one address does, or why there is none (pure). */
export function steeringReason(steerable: boolean, othersFirst: number, kind: SteeringKind): string {
  const cpuLocal = kind === 'cpu-local';
  if (steerable && kind === 'sticky') {
    return 'sticky: a cBPF program on the SO_REUSEPORT group sends every new connection from one client address to one slot (a rendezvous hash of the address), none to a socket of another app that joins later';
  }
  if (steerable && cpuLocal) {
    return 'CPU-local: each worker is pinned to one CPU, and a cBPF program on the SO_REUSEPORT group sends each new connection to the slot of the CPU that received it (SKF_AD_CPU), none to a socket of another app that joins later';
  }
  if (steerable) {
    return "a cBPF program on the SO_REUSEPORT group sends new connections only to the slots' own sockets, none to a socket of another app that joins later";
  }
  const why =
    process.platform !== 'linux'
      ? 'no steering: classic BPF on SO_REUSEPORT groups is Linux only; stall protection lends the slot instead'
      : `no steering: ${othersFirst} other listener(s) were on the port first, so the slots' places in the kernel's group are unknown`;
  return cpuLocal ? `${why} (cpuLocal: the workers are pinned, but connections are not kept on their CPU)` : why;
}
