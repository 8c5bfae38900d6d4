// Exact decimal handling in integer micro-units (6 decimals, the scale of every KACHING metric column).

const SCALE = 1_000_000n;

/** Decimal string or number → integer micro-units (digits past the 6th decimal are truncated). */
export function toMicro(v: string | number | bigint | null | undefined): bigint {
  if (v === null || v === undefined) return 0n;
  if (typeof v === 'bigint') return v * SCALE;
  const s = typeof v === 'number' ? numberToPlain(v) : v.trim();
  const m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(s);
  if (!m) throw new RangeError(`not a decimal: ${s}`);
  const int = BigInt(m[2] || '0');
  const frac = BigInt(((m[3] ?? '') + '000000').slice(0, 6));
  const r = int * SCALE + frac;
  return m[1] === '-' ? -r : r;
}

/** Integer micro-units → canonical decimal string ("1.5", "-0.000001", "3"). */
export function fromMicro(v: bigint): string {
  const neg = v < 0n;
  const a = neg ? -v : v;
  const int = a / SCALE;
  const frac = (a % SCALE).toString().padStart(6, '0').replace(/0+$/, '');
  return `${neg ? '-' : ''}${int}${frac ? '.' + frac : ''}`;
}

function numberToPlain(n: number): string {
  if (!Number.isFinite(n)) throw new RangeError(`not finite: ${n}`);
  const s = String(n);
  if (!/e/i.test(s)) return s;
  return n.toFixed(6);
}

/** Ratio a/b rounded to one decimal, for human text ("1.8×"). */
export function ratio1(a: bigint, b: bigint): number {
  if (b === 0n) return Infinity;
  return Math.round(Number((a * 1000n) / b) / 100) / 10;
}
