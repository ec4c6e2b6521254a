// The runner's event lines: `event key=value ...` words a journal reads (a list as comma-separated
// numbers, `-` for none), or with --json one object per line whose fields keep their JSON types.

/** One event as a line: `key=value` words, or one JSON object with --json. */
export function formatEvent(event: string, fields: Record<string, unknown>, json: boolean): string {
  if (json) return `${JSON.stringify({ event, time: new Date().toISOString(), ...fields })}\n`;
  const words = Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => {
      const text = Array.isArray(value) ? value.join(',') || '-' : String(value);
      return `${key}=${typeof value === 'string' && /\s/.test(value) ? JSON.stringify(value) : text}`;
    });
  return `${[event, ...words].join(' ')}\n`;
}
