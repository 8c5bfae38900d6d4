/**
 * Token prices in memory are integer atto-USD (1e-18 USD) per token: every decimal USD-per-token price with up
 * to 18 decimals converts exactly (LiteLLM publishes prices with 13), and token counts times prices stay
 * integers. Stored and shown, a price is micro-USD per 1M tokens (= 1e-12 USD per token) with up to 6
 * decimals, e.g. 4687.5 for LiteLLM's 4.6875e-9 USD per token.
 */
export type AttoPerToken = bigint;

const ATTO_DECIMALS = 18;

/** A non-negative decimal (a JSON number, or its string) scaled to an integer by 10^decimals, exactly or not at all. */
function scaled(v: number | string | bigint, decimals: number, what: string): bigint {
  if (typeof v === 'bigint') {
    if (v < 0n) throw new RangeError(`not a non-negative ${what}: ${v}`);
    return v * 10n ** BigInt(decimals);
  }
  const s = typeof v === 'number' ? numberToPlainDecimal(v) : v.trim();
  const m = /^(\d*)(?:\.(\d*))?$/.exec(s);
  if (!m || (!m[1] && !m[2])) throw new RangeError(`not a non-negative decimal ${what}: ${String(v)}`);
  const frac = (m[2] ?? '').padEnd(decimals, '0');
  if (/[1-9]/.test(frac.slice(decimals))) throw new RangeError(`${what} ${String(v)} has more than ${decimals} decimals`);
  return BigInt(m[1] || '0') * 10n ** BigInt(decimals) + BigInt(frac.slice(0, decimals) || '0');
}

function unscaled(x: bigint, decimals: number): string {
  const d = 10n ** BigInt(decimals);
  const frac = (x % d).toString().padStart(decimals, '0').replace(/0+$/, '');
  return frac ? `${x / d}.${frac}` : `${x / d}`;
}

/** USD per token as LiteLLM writes it (3.75e-8, or a decimal string) to atto-USD per token. */
export function usdPerTokenToAtto(v: number | string): AttoPerToken {
  return scaled(v, ATTO_DECIMALS, 'price (USD per token)');
}

/** atto-USD per token back to USD per token, the shortest decimal string. */
export function attoToUsdPerToken(a: AttoPerToken): string {
  return unscaled(a, ATTO_DECIMALS);
}

/** micro-USD per 1M tokens (up to 6 decimals; integer, decimal string or bigint) to atto-USD per token. */
export function microPerMillionToAtto(v: number | string | bigint): AttoPerToken {
  return scaled(v, 6, 'price (micro-USD per 1M tokens)');
}

/** atto-USD per token to micro-USD per 1M tokens as a decimal string (what the book stores and shows). */
export function attoToMicroPerMillion(a: AttoPerToken): string {
  return unscaled(a, 6);
}

/** A JS number as a plain decimal (no exponent), exactly as its shortest round-trip form says. */
export function numberToPlainDecimal(x: number): string {
  if (!Number.isFinite(x) || x < 0) throw new RangeError(`not a non-negative number: ${x}`);
  const [mant, expS] = String(x).split('e');
  const exp = Number(expS ?? 0);
  const [i, f = ''] = mant!.split('.');
  const digits = i! + f;
  const point = i!.length + exp;
  const s = point <= 0 ? `0.${'0'.repeat(-point)}${digits}` : point >= digits.length ? digits + '0'.repeat(point - digits.length) : `${digits.slice(0, point)}.${digits.slice(point)}`;
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s.replace(/^0+(?=\d)/, '');
}

/** micro-USD (bigint) as a decimal USD string with 6 places: what the ledger and the API show. */
export function microUsdToUsd(micro: bigint): string {
  const neg = micro < 0n;
  const a = neg ? -micro : micro;
  return `${neg ? '-' : ''}${a / 1_000_000n}.${(a % 1_000_000n).toString().padStart(6, '0')}`;
}
