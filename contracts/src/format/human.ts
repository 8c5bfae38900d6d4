// Numbers as people read them, for alert messages, Slack text and the dashboard. Machines get the exact
// values elsewhere (the decision's observed/limit, the alert's context): these strings are lossy on purpose.

export type QuantityUnit = 'cpu_s' | 'gpu_s' | 'seconds' | 'bytes' | 'megabytes' | 'tokens' | 'usd' | 'micro_usd' | 'count';

/** The unit a metric is counted in, from its name (the schema's and the enforcer's metric names). */
export function metricUnit(metric: string): QuantityUnit {
  if (metric === 'cpu_seconds') return 'cpu_s';
  if (metric === 'gpu_seconds') return 'gpu_s';
  if (metric.endsWith('_seconds')) return 'seconds';
  if (/(^|_)bytes(_|$)/.test(metric)) return 'bytes';
  if (/(^|_)mb(_|$)/.test(metric)) return 'megabytes';
  if (metric.includes('tokens')) return 'tokens';
  if (metric.endsWith('micro_usd')) return 'micro_usd';
  if (metric === 'cost_usd' || metric.endsWith('_usd')) return 'usd';
  return 'count';
}

function num(v: number | string | bigint): number {
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isFinite(n)) throw new RangeError(`not a finite number: ${String(v)}`);
  return n;
}

/** 2502.867177 → "2,502.87" with at most `digits` decimals (trailing zeros dropped). */
export function groupNumber(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits });
}

// one decimal from 100 up, two below, three under 1: "2,502.9", "12.35", "0.125"
function auto(n: number): string {
  const a = Math.abs(n);
  return groupNumber(n, a >= 100 ? 1 : a >= 1 || a === 0 ? 2 : 3);
}

/** Decimal (SI) byte units, as disks and network links are sold: 120802782 → "120.8 MB". */
export function formatBytes(v: number | string | bigint): string {
  let n = num(v);
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${groupNumber(n, i ? 1 : 0)} ${units[i]}`;
}

/** Whole counts below ten thousand, then k/M/B: 1234 → "1,234", 2500000 → "2.5M". */
export function formatCount(v: number | string | bigint): string {
  const n = num(v);
  const a = Math.abs(n);
  if (a >= 1e9) return `${groupNumber(n / 1e9, 2)}B`;
  if (a >= 1e6) return `${groupNumber(n / 1e6, 2)}M`;
  if (a >= 1e4) return `${groupNumber(n / 1e3, 1)}k`;
  return groupNumber(n, a < 10 ? 2 : 1);
}

/** US dollars with cents; amounts under a cent keep two significant digits ("$0.0042"). */
export function formatUsd(v: number | string | bigint): string {
  const n = num(v);
  const a = Math.abs(n);
  if (a > 0 && a < 0.01) return `${n < 0 ? '-' : ''}$${a.toPrecision(2).replace(/0+$/, '')}`;
  return `${n < 0 ? '-' : ''}$${Math.abs(n).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

/** Integer micro-USD (the cost columns) → "$1.23". */
export function formatMicroUsd(v: number | string | bigint): string {
  return formatUsd(num(v) / 1e6);
}

/** A metric's value with its unit: cpu_seconds 2502.867177 → "2,502.9 CPU-s". */
export function formatQuantity(metric: string, v: number | string | bigint): string {
  switch (metricUnit(metric)) {
    case 'cpu_s': return `${auto(num(v))} CPU-s`;
    case 'gpu_s': return `${auto(num(v))} GPU-s`;
    case 'seconds': return `${auto(num(v))} s`;
    case 'bytes': return formatBytes(v);
    case 'megabytes': return formatBytes(num(v) * 1e6);
    case 'tokens': return `${formatCount(v)} tokens`;
    case 'usd': return formatUsd(v);
    case 'micro_usd': return formatMicroUsd(v);
    default: return formatCount(v);
  }
}

/** A ratio with two decimals: 1.0011 → "1.00×". */
export function formatRatio(r: number): string {
  if (!Number.isFinite(r)) return '∞×';
  return `${r.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}×`;
}

/** A share as a percentage: 0.873 → "87%". */
export function formatPercent(r: number): string {
  return `${groupNumber(r * 100, Math.abs(r) < 0.1 ? 1 : 0)}%`;
}
