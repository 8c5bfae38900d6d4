const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|([+-])(\d{2}):(\d{2}))$/;

/**
 * Epoch microseconds of an RFC 3339 timestamp, exact (Date.parse drops sub-millisecond digits and
 * refuses leap seconds). Undefined when the string is not RFC 3339. Fraction digits beyond 6 are truncated.
 */
export function epochMicros(ts: string): bigint | undefined {
  const m = RFC3339.exec(ts);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, , sign, oh, om] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  if (!Number.isFinite(ms)) return undefined;
  const micro = BigInt((frac ?? '').slice(0, 6).padEnd(6, '0'));
  let offsetMin = 0;
  if (sign) offsetMin = (Number(oh) * 60 + Number(om)) * (sign === '-' ? -1 : 1);
  return BigInt(ms) * 1000n + micro - BigInt(offsetMin) * 60_000_000n;
}

/** Epoch milliseconds (fractional, microsecond precision) or NaN. */
export function epochMillis(ts: string): number {
  const us = epochMicros(ts);
  return us === undefined ? Number.NaN : Number(us) / 1000;
}
