const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration setting: "30d", "12h", "5m", "90s", "500ms" or a bare number of milliseconds. */
export function durationFromEnv(env: NodeJS.ProcessEnv, key: string, fallbackMs: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallbackMs;
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(raw.trim());
  if (!m) throw new Error(`${key}="${raw}" must be a duration like 30d, 12h, 5m, 90s or 500ms`);
  return Number(m[1]) * UNITS[m[2] ?? 'ms']!;
}
