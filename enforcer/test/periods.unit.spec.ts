import { describe, expect, it } from 'vitest';
import { localDay, localMidnight, windowAt, windowForDay } from '@kaching/contracts';
import { decisionId } from '@kaching/enforcer';
import { fromMicro, toMicro } from '@kaching/contracts';

const TZ = 'Europe/Berlin'; // DST: 2026-03-29 02:00 → 03:00, 2026-10-25 03:00 → 02:00

describe('period windows in the deployment timezone', () => {
  it('assigns instants to the local day, not the UTC day', () => {
    expect(localDay('2026-01-31T23:30:00Z', TZ)).toBe('2026-02-01');
    expect(localDay('2026-01-31T22:59:59Z', TZ)).toBe('2026-01-31');
    expect(localDay('2026-03-01T04:00:00Z', 'America/Los_Angeles')).toBe('2026-02-28');
  });

  it('local midnight is right on both sides of a DST change', () => {
    expect(localMidnight('2026-03-29', TZ).toISOString()).toBe('2026-03-28T23:00:00.000Z');
    expect(localMidnight('2026-03-30', TZ).toISOString()).toBe('2026-03-29T22:00:00.000Z');
    expect(localMidnight('2026-10-25', TZ).toISOString()).toBe('2026-10-24T22:00:00.000Z');
    expect(localMidnight('2026-10-26', TZ).toISOString()).toBe('2026-10-25T23:00:00.000Z');
    // Santiago springs forward at local midnight: the day starts at 01:00
    expect(localMidnight('2026-09-06', 'America/Santiago').toISOString()).toBe('2026-09-06T04:00:00.000Z');
  });

  it('the DST day is 23 h long and its daily window says so', () => {
    const w = windowForDay('daily', '2026-03-29', TZ);
    expect(Date.parse(w.windowEnd) - Date.parse(w.windowStart)).toBe(23 * 3600_000);
    const f = windowForDay('daily', '2026-10-25', TZ);
    expect(Date.parse(f.windowEnd) - Date.parse(f.windowStart)).toBe(25 * 3600_000);
  });

  it('weekly windows are ISO weeks (Monday) in local time, across the DST change', () => {
    const w = windowAt('weekly', '2026-03-29T21:30:00Z', TZ); // Sunday 23:30 local (CEST)
    expect([w.startDay, w.endDay]).toEqual(['2026-03-23', '2026-03-30']);
    expect(w.windowStart).toBe('2026-03-22T23:00:00.000Z');
    expect(w.windowEnd).toBe('2026-03-29T22:00:00.000Z');
    const next = windowAt('weekly', '2026-03-29T22:30:00Z', TZ); // Monday 00:30 local
    expect(next.startDay).toBe('2026-03-30');
  });

  it('monthly windows follow month ends (leap year, 30/31 days, year end)', () => {
    expect(windowForDay('monthly', '2028-02-29', TZ)).toMatchObject({ startDay: '2028-02-01', endDay: '2028-03-01' });
    expect(windowForDay('monthly', '2026-04-30', TZ)).toMatchObject({ startDay: '2026-04-01', endDay: '2026-05-01' });
    expect(windowForDay('monthly', '2026-12-31', TZ)).toMatchObject({ startDay: '2026-12-01', endDay: '2027-01-01', windowEnd: '2026-12-31T23:00:00.000Z' });
    // 2026-03-31T22:30Z is already April 1st in Berlin (CEST)
    expect(windowAt('monthly', '2026-03-31T22:30:00Z', TZ).startDay).toBe('2026-04-01');
    expect(windowAt('monthly', '2026-03-31T21:30:00Z', TZ).startDay).toBe('2026-03-01');
  });

  it('rolling_30d is the 30 local days ending at the event day, across DST and month ends', () => {
    const w = windowForDay('rolling_30d', '2026-04-10', TZ);
    expect([w.startDay, w.endDay]).toEqual(['2026-03-12', '2026-04-11']);
    expect(w.windowStart).toBe('2026-03-11T23:00:00.000Z'); // CET
    expect(w.windowEnd).toBe('2026-04-10T22:00:00.000Z'); // CEST
    expect(windowForDay('rolling_30d', '2026-03-01', 'UTC').startDay).toBe('2026-01-31');
  });
});

describe('exact amounts', () => {
  it('micro-unit decimals round-trip without float error', () => {
    expect(fromMicro(toMicro('0.1') + toMicro('0.2'))).toBe('0.3');
    expect(fromMicro(toMicro(1.000001) * 3n)).toBe('3.000003');
    expect(fromMicro(-toMicro('2.5'))).toBe('-2.5');
  });

  it('decision ids are deterministic in (deployment, code, scope, window, threshold)', () => {
    const a = decisionId('d', 'QUOTA_EXCEEDED', 'cpu', '2026-01-01T00:00:00.000Z', '100');
    expect(decisionId('d', 'QUOTA_EXCEEDED', 'cpu', '2026-01-01T00:00:00.000Z', '100')).toBe(a);
    expect(decisionId('d', 'QUOTA_EXCEEDED', 'cpu', '2026-01-02T00:00:00.000Z', '100')).not.toBe(a);
    expect(decisionId('d', 'QUOTA_EXCEEDED', 'cpu', '2026-01-01T00:00:00.000Z', '200')).not.toBe(a);
  });
});
