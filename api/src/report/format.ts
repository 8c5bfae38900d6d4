/** Numbers as people read them in the PDF report (en-US grouping; amounts exact to the displayed digit). */

export function int(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/**
 * Integer micro-USD as dollars: cents from $1 up ("$1,234.57"), four decimals below ("$0.0325") so small
 * LLM bills do not all read "$0.00". Rounded half up on the integer, never through a float product.
 */
export function usd(micro: number): string {
  const neg = micro < 0;
  const a = Math.abs(micro);
  // from 999,950 the four-decimal form would round up to $1.0000: print cents
  if (a >= 999_950) {
    const cents = Math.floor((a + 5_000) / 10_000);
    return `${neg ? '-' : ''}$${int(Math.floor(cents / 100))}.${String(cents % 100).padStart(2, '0')}`;
  }
  const tenThousandths = Math.floor((a + 50) / 100);
  return `${neg ? '-' : ''}$0.${String(tenThousandths).padStart(4, '0')}`;
}

/** "3 h 25 min 46 s", "12 min 5 s", "42.5 s". */
export function duration(seconds: number): string {
  if (seconds < 60) return `${Number(seconds.toFixed(1)).toLocaleString('en-US')} s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const parts = [h ? `${int(h)} h` : '', m || h ? `${m} min` : '', `${s % 60} s`].filter(Boolean);
  return parts.join(' ');
}

/** Decimal units, as the dashboard: "1.40 GB". */
export function bytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i ? n.toFixed(2) : int(n)} ${units[i]}`;
}

export function pct(part: number, whole: number): string {
  return whole > 0 ? `${((part / whole) * 100).toFixed(1)}%` : '–';
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** A local day "2026-11-20" as "20 Nov 2026". */
export function day(d: string): string {
  const [y, m, dd] = d.split('-').map(Number) as [number, number, number];
  return `${dd} ${MONTHS[m - 1]} ${y}`;
}

/** An instant as the deployment's local wall time: "20 Nov 2026 09:10". */
export function localTime(iso: string, timezone: string): string {
  const p = Object.fromEntries(
    new Intl.DateTimeFormat('en-CA', { timeZone: timezone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
      .formatToParts(new Date(iso))
      .map((x) => [x.type, x.value]),
  );
  return `${day(`${p.year}-${p.month}-${p.day}`)} ${p.hour}:${p.minute}`;
}
