// Type declarations for bench/proxies.mjs, so the balance load test type-checks under strict TypeScript.
export function proxyConfig(
  proxy: 'nginx' | 'haproxy',
  options: { dir: string; listen: number; upstream: number; keepalive?: number },
): { file: string; text: string; args: string[] };
