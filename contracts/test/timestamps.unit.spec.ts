import { describe, expect, it } from 'vitest';
import { checkTimestamps, epochMicros, InputError } from '@kaching/contracts';
import { jobStatus, usage } from './support/fixtures.js';

const opts = { maxSkewMs: 5_000, maxFutureMs: 60_000, maxAgeMs: 30 * 24 * 3600_000 };
const NOW = new Date('2026-11-23T04:00:00Z');

const withJob = (job: Partial<ReturnType<typeof usage>['job']>) => ({ ...usage(), job: { ...usage().job, ...job } });

function errorOf(r: unknown) {
  expect(r).toBeInstanceOf(InputError);
  const e = r as InputError;
  return { code: e.code, field: e.field, rule: e.rule };
}

describe('checkTimestamps', () => {
  it('ordinary events pass with skew 0', () => {
    expect(checkTimestamps(usage(), NOW, opts)).toEqual({ skewMs: 0 });
    expect(checkTimestamps(jobStatus(), NOW, opts)).toEqual({ skewMs: 0 });
    expect(checkTimestamps(withJob({ status: 'running', ended_at: undefined }), NOW, opts)).toEqual({ skewMs: 0 });
  });

  it('ended_at slightly before started_at is accepted and the skew reported', () => {
    const e = withJob({ started_at: '2026-11-23T03:00:02.500Z', ended_at: '2026-11-23T03:00:00Z' });
    expect(checkTimestamps(e, NOW, opts)).toEqual({ skewMs: 2500 });
    const edge = withJob({ started_at: '2026-11-23T03:00:05Z', ended_at: '2026-11-23T03:00:00Z' });
    expect(checkTimestamps(edge, NOW, opts)).toEqual({ skewMs: 5000 });
  });

  it('more skew than tolerated is CLOCK_SKEW_TOO_LARGE on job.ended_at', () => {
    const e = withJob({ started_at: '2026-11-23T03:00:05.001Z', ended_at: '2026-11-23T03:00:00Z' });
    expect(errorOf(checkTimestamps(e, NOW, opts))).toEqual({ code: 'CLOCK_SKEW_TOO_LARGE', field: 'job.ended_at', rule: 'maxSkewMs:5000' });
    expect((checkTimestamps(e, NOW, opts) as InputError).status).toBe(400);
  });

  it('job_status observed_at before started_at is judged the same way', () => {
    const small = jobStatus({ observed_at: '2026-11-23T02:59:59Z' });
    expect(checkTimestamps(small, NOW, opts)).toEqual({ skewMs: 1000 });
    const big = jobStatus({ observed_at: '2026-11-23T02:00:00Z' });
    expect(errorOf(checkTimestamps(big, NOW, opts))).toMatchObject({ code: 'CLOCK_SKEW_TOO_LARGE', field: 'observed_at' });
  });

  it('any timestamp too far ahead is TIMESTAMP_IN_FUTURE naming it', () => {
    const started = withJob({ started_at: '2026-11-23T04:01:00.001Z', ended_at: '2026-11-23T04:01:00.002Z' });
    expect(errorOf(checkTimestamps(started, NOW, opts))).toEqual({ code: 'TIMESTAMP_IN_FUTURE', field: 'job.started_at', rule: 'maxFutureMs:60000' });
    const ended = withJob({ ended_at: '2026-11-23T05:00:00Z' });
    expect(errorOf(checkTimestamps(ended, NOW, opts))).toMatchObject({ code: 'TIMESTAMP_IN_FUTURE', field: 'job.ended_at' });
    expect(checkTimestamps(withJob({ ended_at: '2026-11-23T04:01:00Z' }), NOW, opts)).toEqual({ skewMs: 0 });
  });

  it('an event whose latest timestamp is older than maxAgeMs is TIMESTAMP_TOO_OLD', () => {
    const old = withJob({ started_at: '2026-10-01T00:00:00Z', ended_at: '2026-10-01T01:00:00Z' });
    expect(errorOf(checkTimestamps(old, NOW, opts))).toEqual({ code: 'TIMESTAMP_TOO_OLD', field: 'job.ended_at', rule: `maxAgeMs:${opts.maxAgeMs}` });
    // A long job that started long ago but just ended is current.
    const longJob = withJob({ started_at: '2026-10-01T00:00:00Z', ended_at: '2026-11-23T03:59:00Z' });
    expect(checkTimestamps(longJob, NOW, opts)).toEqual({ skewMs: 0 });
    const oldRunning = withJob({ status: 'running', ended_at: undefined, started_at: '2026-10-01T00:00:00Z' });
    expect(errorOf(checkTimestamps(oldRunning, NOW, opts))).toMatchObject({ code: 'TIMESTAMP_TOO_OLD', field: 'job.started_at' });
  });

  it('an unparseable timestamp is FIELD_FORMAT, never a crash', () => {
    expect(errorOf(checkTimestamps(withJob({ ended_at: 'yesterday' }), NOW, opts))).toEqual({ code: 'FIELD_FORMAT', field: 'job.ended_at', rule: 'format:date-time' });
  });
});

describe('epochMicros', () => {
  it('is exact to the microsecond, honours offsets and rejects non-RFC 3339', () => {
    expect(epochMicros('1970-01-01T00:00:00.000001Z')).toBe(1n);
    expect(epochMicros('1970-01-01T01:00:00+01:00')).toBe(0n);
    expect(epochMicros('2026-11-23T03:00:00.1234567Z')).toBe(BigInt(Date.UTC(2026, 10, 23, 3)) * 1000n + 123456n);
    expect(epochMicros('2026-11-23 03:00:00')).toBeUndefined();
  });
});
