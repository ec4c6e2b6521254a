// Type declarations for bench/stall-client.mjs (the parts test/bench.test.ts uses).
export const BUCKET_MS: number;
export interface ConnectionRecord {
  ok: boolean;
  ms: number;
  code?: string;
  atMs: number;
}
export interface ConnectionSummary {
  sent: number;
  ok: number;
  failed: number;
  errors: Record<string, number>;
  overSlowMs: number;
  slowMs: number;
  latencyMs: { p50: number | null; p90: number | null; p99: number | null; max: number | null };
  timeline: { bucketMs: number; buckets: Array<{ atMs: number; started: number; slow: number; failed: number; maxMs: number }> };
}
export function summarizeConnections(
  conns: readonly ConnectionRecord[],
  options: { durationMs: number; bucketMs?: number; slowMs?: number },
): ConnectionSummary;
