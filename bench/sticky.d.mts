// Type declarations for bench/sticky.mjs (the parts test/bench.test.ts uses).
export const STICKY_CONFIGURATIONS: ReadonlyArray<{
  id: 'reuseport' | 'sticky' | 'socketio-sticky';
  label: string;
  workloads: ReadonlyArray<'close' | 'keepalive'>;
}>;
export interface StickyMeasurement {
  round?: number;
  config: string;
  workload: string;
  requests: number;
  errors: number;
  requestsPerSecond: number;
  cpuMicrosPerRequest: number;
  primaryMicrosPerRequest: number;
}
export interface StickyMove {
  from: number;
  to: number;
  clients: number;
  seen: number;
  moved: number;
  fraction: number;
  ideal: number;
}
export function stickyMarkdown(result: { measurements: StickyMeasurement[]; moves: StickyMove[] }): string;
