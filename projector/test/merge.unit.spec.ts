import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { loadConfig } from '@kaching/projector';
import { copyField, copyLine, dayBucket, hourBucket, intervalDelta, jobEnd, minuteRange, pickWinner } from '../src/records.js';

describe('pure merge logic', () => {
  it('picks the highest revision key in byte order, an exact duplicate loses to the first arrival', () => {
    const rows = [
      { revision: '000000000000000002.0.aa', seq: 5, v: 'running' },
      { revision: '000000000000000002.1.bb', seq: 3, v: 'final' },
      { revision: '000000000000000001.1.cc', seq: 9, v: 'older' },
    ];
    expect(pickWinner(rows)?.v).toBe('final');
    expect(pickWinner([{ revision: 'a', seq: 2, v: 2 }, { revision: 'a', seq: 1, v: 1 }])?.v).toBe(1);
    expect(pickWinner([])).toBeUndefined();
  });

  it('winner selection is independent of arrival order (last one wins by revision, not by arrival)', () => {
    fc.assert(fc.property(fc.array(fc.record({ revision: fc.string({ maxLength: 4 }), seq: fc.nat() }), { minLength: 1 }), (rows) => {
      const uniq = [...new Map(rows.map((r) => [`${r.revision}|${r.seq}`, r])).values()];
      const a = pickWinner(uniq);
      const b = pickWinner([...uniq].reverse());
      expect(a).toEqual(b);
    }));
  });

  it('hourly bucket is the UTC hour of ended_at, else started_at; daily the same UTC day', () => {
    expect(hourBucket('2026-03-01T10:59:59.999Z', '2026-03-01T11:00:00.5Z')).toBe('2026-03-01T11:00:00.000Z');
    expect(hourBucket('2026-03-01T23:30:00+02:00', null)).toBe('2026-03-01T21:00:00.000Z');
    expect(dayBucket('2026-03-01T23:30:00Z', '2026-03-02T00:10:00Z')).toBe('2026-03-02');
  });

  it('a running job extends to its latest heartbeat; a finished one ends at ended_at (skew absorbed)', () => {
    expect(jobEnd('2026-01-01T00:00:00Z', null, 'running', '2026-01-01T00:05:00Z')).toBe('2026-01-01T00:05:00.000Z');
    expect(jobEnd('2026-01-01T00:00:00Z', '2026-01-01T00:02:00Z', 'succeeded', '2026-01-01T00:05:00Z')).toBe('2026-01-01T00:02:00.000Z');
    expect(jobEnd('2026-01-01T00:00:10Z', '2026-01-01T00:00:07Z', 'failed', null)).toBe('2026-01-01T00:00:10.000Z');
  });

  it('moving an interval changes only the symmetric difference of minutes', () => {
    const a = minuteRange('2026-01-01T00:00:30Z', '2026-01-01T00:03:10Z');
    const b = minuteRange('2026-01-01T00:02:00Z', '2026-01-01T00:05:00Z');
    const d = intervalDelta(a, b);
    expect(Object.fromEntries(d)).toEqual({
      '2026-01-01T00:00:00.000Z': -1, '2026-01-01T00:01:00.000Z': -1,
      '2026-01-01T00:04:00.000Z': 1, '2026-01-01T00:05:00.000Z': 1,
    });
    expect(intervalDelta(a, a).size).toBe(0);
    expect(intervalDelta(null, a).size).toBe(4);
  });

  it('applying deltas in any order of revisions ends at the last interval', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(30), fc.nat(30)), { minLength: 1, maxLength: 6 }), (ivs) => {
      const base = Date.parse('2026-01-01T00:00:00Z');
      const ranges = ivs.map(([s, l]) => minuteRange(new Date(base + s * 60_000).toISOString(), new Date(base + (s + l) * 60_000).toISOString()));
      const index = new Map<string, number>();
      let prev: [string, string] | null = null;
      for (const r of ranges) {
        for (const [k, v] of intervalDelta(prev, r)) index.set(k, (index.get(k) ?? 0) + v);
        prev = r;
      }
      const expected = intervalDelta(null, ranges[ranges.length - 1]!);
      const actual = new Map([...index].filter(([, v]) => v !== 0));
      expect(actual).toEqual(expected);
    }));
  });

  it('COPY text encoding escapes control characters and marks nulls', () => {
    expect(copyField(null)).toBe('\\N');
    expect(copyField('a\tb\nc\\d\re')).toBe('a\\tb\\nc\\\\d\\re');
    expect(copyField(0.1)).toBe('0.1');
    expect(copyLine(['x', null, 3])).toBe('x\t\\N\t3\n');
    expect(() => copyField(Number.NaN)).toThrow();
  });

  it('loadConfig has the documented defaults and validates', () => {
    const c = loadConfig({});
    expect(c.port).toBe(7072);
    expect(c.retentionDays).toBe(30);
    expect(c.partitionsAhead).toBe(7);
    expect(c.projections).toEqual(['raw', 'rollups', 'concurrency']);
    expect(loadConfig({ PROJECTOR_PROJECTIONS: 'raw' }).projections).toEqual(['raw']);
    expect(() => loadConfig({ PROJECTOR_PROJECTIONS: 'nope' })).toThrow(/unknown projection/);
    expect(() => loadConfig({ PROJECTOR_BATCH_SIZE: 'x' })).toThrow();
  });
});
