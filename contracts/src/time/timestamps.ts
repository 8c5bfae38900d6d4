import { InputError } from '../errors/errors.js';
import type { SignedEvent } from '../types/usage.js';
import { epochMillis } from './rfc3339.js';

export interface TimestampPolicy {
  /** How far ended_at (or observed_at) may lie before started_at and still be accepted as clock skew. */
  maxSkewMs: number;
  /** How far any timestamp may lie ahead of the ingest clock. */
  maxFutureMs: number;
  /** How old the event's latest timestamp may be (keep ≤ the stream's max age). */
  maxAgeMs: number;
}

/**
 * Ingest-time sanity of an event's timestamps. Returns the accepted skew (0 when none) or the InputError
 * to answer with. Small skew is accepted: the caller flags it (`clock_skew`) in the IngestFacts.
 */
export function checkTimestamps(event: SignedEvent, now: Date, opts: TimestampPolicy): { skewMs: number } | InputError {
  const stamps: Array<[field: string, value: string]> = [['job.started_at', event.job.started_at]];
  let latestField: string;
  if (event.schema === 'kaching.v1.job_status') {
    stamps.push(['observed_at', event.observed_at]);
    latestField = 'observed_at';
  } else if (event.job.ended_at !== undefined) {
    stamps.push(['job.ended_at', event.job.ended_at]);
    latestField = 'job.ended_at';
  } else {
    latestField = 'job.started_at';
  }

  const nowMs = now.getTime();
  const ms = new Map<string, number>();
  for (const [field, value] of stamps) {
    const t = typeof value === 'string' ? epochMillis(value) : Number.NaN;
    if (!Number.isFinite(t)) {
      return new InputError('FIELD_FORMAT', { message: `\`${field}\` is not an RFC 3339 date-time`, field, rule: 'format:date-time' });
    }
    if (t > nowMs + opts.maxFutureMs) {
      return new InputError('TIMESTAMP_IN_FUTURE', {
        message: `\`${field}\` lies ${Math.round(t - nowMs)} ms in the future (at most ${opts.maxFutureMs} ms allowed)`,
        field,
        rule: `maxFutureMs:${opts.maxFutureMs}`,
      });
    }
    ms.set(field, t);
  }

  const latest = ms.get(latestField)!;
  if (nowMs - latest > opts.maxAgeMs) {
    return new InputError('TIMESTAMP_TOO_OLD', {
      message: `\`${latestField}\` is older than ${opts.maxAgeMs} ms`,
      field: latestField,
      rule: `maxAgeMs:${opts.maxAgeMs}`,
    });
  }

  let skewMs = 0;
  if (latestField !== 'job.started_at') {
    const started = ms.get('job.started_at')!;
    if (latest < started) {
      skewMs = started - latest;
      if (skewMs > opts.maxSkewMs) {
        return new InputError('CLOCK_SKEW_TOO_LARGE', {
          message: `\`${latestField}\` is ${Math.round(skewMs)} ms before \`job.started_at\` (at most ${opts.maxSkewMs} ms tolerated)`,
          field: latestField,
          rule: `maxSkewMs:${opts.maxSkewMs}`,
        });
      }
    }
  }
  return { skewMs };
}
