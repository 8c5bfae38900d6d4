import type { PeriodKind } from '../types/decision.js';

/** A period window as a range of local days [startDay, endDay) plus its instants in the deployment's zone. */
export interface PeriodWindow {
  kind: PeriodKind;
  timezone: string;
  startDay: string; // YYYY-MM-DD, local, inclusive
  endDay: string; // YYYY-MM-DD, local, exclusive
  windowStart: string; // RFC 3339 UTC instant of local midnight starting the window
  windowEnd: string;
}

export const PERIODS: readonly PeriodKind[] = ['daily', 'weekly', 'monthly', 'rolling_30d'];

const dayFormatters = new Map<string, Intl.DateTimeFormat>();
function dayFormatter(tz: string): Intl.DateTimeFormat {
  let f = dayFormatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' });
    dayFormatters.set(tz, f);
  }
  return f;
}

/** Local calendar day (YYYY-MM-DD) of an instant in a timezone. */
export function localDay(instant: Date | string | number, tz: string): string {
  const d = instant instanceof Date ? instant : new Date(instant);
  const parts = dayFormatter(tz).formatToParts(d);
  const get = (t: string) => parts.find((p) => p.type === t)!.value;
  return `${get('year')}-${get('month')}-${get('day')}`;
}

export function isValidTimezone(tz: string): boolean {
  try {
    dayFormatter(tz);
    return true;
  } catch {
    return false;
  }
}

// Plain calendar arithmetic on YYYY-MM-DD through UTC dates (no zone involved).
function toUtc(day: string): Date {
  const [y, m, d] = day.split('-').map(Number);
  return new Date(Date.UTC(y!, m! - 1, d!));
}
function fromUtc(d: Date): string {
  return d.toISOString().slice(0, 10);
}
export function addDays(day: string, n: number): string {
  const d = toUtc(day);
  d.setUTCDate(d.getUTCDate() + n);
  return fromUtc(d);
}

const offsetFormatters = new Map<string, Intl.DateTimeFormat>();
/** Offset of the zone from UTC at an instant, in ms (local = utc + offset). */
function zoneOffsetMs(tz: string, at: number): number {
  let f = offsetFormatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
    offsetFormatters.set(tz, f);
  }
  const p = Object.fromEntries(f.formatToParts(new Date(at)).map((x) => [x.type, x.value]));
  const asUtc = Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day), Number(p.hour), Number(p.minute), Number(p.second));
  return asUtc - Math.floor(at / 1000) * 1000;
}

/** The UTC instant where a local day begins (its first existing local instant, DST-safe). */
export function localMidnight(day: string, tz: string): Date {
  const naive = toUtc(day).getTime();
  let t = naive - zoneOffsetMs(tz, naive);
  // a second pass settles days whose offset differs from the guess's (DST change near midnight)
  t = naive - zoneOffsetMs(tz, t);
  // where midnight does not exist locally (a spring-forward at 00:00), step to the day's first instant
  while (localDay(t, tz) < day) t += 15 * 60_000;
  return new Date(t);
}

/** The window of a period that contains local day `day`. rolling_30d = the 30 local days ending at `day`. */
export function windowForDay(kind: PeriodKind, day: string, tz: string): PeriodWindow {
  let start: string;
  let end: string;
  switch (kind) {
    case 'daily':
      start = day;
      end = addDays(day, 1);
      break;
    case 'weekly': {
      // ISO weeks: Monday starts the week
      const dow = (toUtc(day).getUTCDay() + 6) % 7;
      start = addDays(day, -dow);
      end = addDays(start, 7);
      break;
    }
    case 'monthly': {
      start = `${day.slice(0, 7)}-01`;
      const d = toUtc(start);
      d.setUTCMonth(d.getUTCMonth() + 1);
      end = fromUtc(d);
      break;
    }
    case 'rolling_30d':
      start = addDays(day, -29);
      end = addDays(day, 1);
      break;
  }
  return {
    kind, timezone: tz, startDay: start, endDay: end,
    windowStart: localMidnight(start, tz).toISOString(),
    windowEnd: localMidnight(end, tz).toISOString(),
  };
}

export function windowAt(kind: PeriodKind, instant: Date | string | number, tz: string): PeriodWindow {
  return windowForDay(kind, localDay(instant, tz), tz);
}

export function periodLabel(kind: PeriodKind): string {
  return kind === 'rolling_30d' ? '30-day' : kind;
}
