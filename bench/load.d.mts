// Type declarations for bench/load.mjs (the parts test/bench.test.ts uses).
export const WORKLOADS: readonly ['keepalive', 'close'];
export function findWrk(envPath?: string): string | null;
export interface WrkParsed {
  requests: number;
  durationSec: number;
  requestsPerSecond: number;
  latencyMs: { p50: number | null; p90: number | null; p99: number | null };
  non2xx: number;
  socketErrors: number;
  timeouts: number;
}
export function parseWrkOutput(text: string): WrkParsed;
