/** Numbers as people read them; the API sends exact decimals as strings. */
export function num(s: unknown): number {
  const n = Number(s);
  return Number.isFinite(n) ? n : 0;
}

export function group(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits });
}

export function compact(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e9) return group(n / 1e9, 2) + 'B';
  if (a >= 1e6) return group(n / 1e6, 2) + 'M';
  if (a >= 1e4) return group(n / 1e3, 1) + 'k';
  return group(n, 2);
}

export function bytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return group(n, i ? 2 : 0) + ' ' + units[i];
}

export function usd(v: number): string {
  return '$' + v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

/**
 * Integer micro-USD as the PDF report prints it: cents from $1 up ("$1,234.57"), four decimals below
 * ("$0.0325") so small LLM bills do not all read "$0.00".
 */
export function usdMicro(micro: number): string {
  const a = Math.abs(micro);
  const sign = micro < 0 ? '-' : '';
  // from 999,950 the four-decimal form would round up to $1.0000: print cents
  if (a >= 999_950) {
    const cents = Math.floor((a + 5_000) / 10_000);
    return `${sign}$${Math.floor(cents / 100).toLocaleString('en-US')}.${String(cents % 100).padStart(2, '0')}`;
  }
  return `${sign}$0.${String(Math.floor((a + 50) / 100)).padStart(4, '0')}`;
}

export type Unit = 'bytes' | 'usd' | 'tokens' | string;

export function fmt(unit: Unit, s: unknown): string {
  const n = num(s);
  if (unit === 'bytes') return bytes(n);
  if (unit === 'usd') return usd(n);
  if (unit === 'tokens') return compact(n);
  return group(n);
}

/** "42s ago", "5m ago", "3h ago", "2d ago". */
export function ago(t: string, now = Date.now()): string {
  const s = Math.max(0, (now - new Date(t).getTime()) / 1000);
  if (s < 90) return Math.round(s) + 's ago';
  if (s < 5400) return Math.round(s / 60) + 'm ago';
  if (s < 129600) return Math.round(s / 3600) + 'h ago';
  return Math.round(s / 86400) + 'd ago';
}
