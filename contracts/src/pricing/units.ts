/**
 * Prices are integer micro-USD per 1M tokens (= pico-USD per token): every decimal USD-per-token price with up
 * to 12 decimals (all LiteLLM publishes) converts exactly, and token counts times prices stay integers.
 */
export type MicroPerMillion = bigint;

/** USD per token as written in JSON (a number such as 3.75e-8, or its decimal string) to micro-USD per 1M tokens. */
export function usdPerTokenToMicroPerMillion(v: number | string): MicroPerMillion {
  const s = typeof v === 'number' ? numberToPlainDecimal(v) : v.trim();
  const m = /^(\d*)(?:\.(\d*))?$/.exec(s);
  if (!m || (!m[1] && !m[2])) throw new RangeError(`not a non-negative decimal price: ${String(v)}`);
  const frac = (m[2] ?? '').padEnd(12, '0');
  if (/[1-9]/.test(frac.slice(12))) throw new RangeError(`price ${String(v)} has more than 12 decimals (below a pico-USD)`);
  return BigInt(m[1] || '0') * 1_000_000_000_000n + BigInt(frac.slice(0, 12) || '0');
}

/** micro-USD per 1M tokens back to USD per token as the shortest decimal string. */
export function microPerMillionToUsdPerToken(p: MicroPerMillion): string {
  const int = p / 1_000_000_000_000n;
  const frac = (p % 1_000_000_000_000n).toString().padStart(12, '0').replace(/0+$/, '');
  return frac ? `${int}.${frac}` : `${int}`;
}

/** A JS number as a plain decimal (no exponent), exactly as its shortest round-trip form says. */
function numberToPlainDecimal(x: number): string {
  if (!Number.isFinite(x) || x < 0) throw new RangeError(`not a non-negative price: ${x}`);
  const [mant, expS] = String(x).split('e');
  const exp = Number(expS ?? 0);
  const [i, f = ''] = mant!.split('.');
  const digits = i! + f;
  const point = i!.length + exp;
  if (point <= 0) return `0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return digits + '0'.repeat(point - digits.length);
  return `${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** micro-USD (bigint) as a decimal USD string with 6 places: what the ledger and the API show. */
export function microUsdToUsd(micro: bigint): string {
  const neg = micro < 0n;
  const a = neg ? -micro : micro;
  return `${neg ? '-' : ''}${a / 1_000_000n}.${(a % 1_000_000n).toString().padStart(6, '0')}`;
}
