import { beforeAll, describe, expect, it } from 'vitest';
import {
  compareRevisions,
  cryptoReady,
  digestOfSigningBytes,
  signingBytes,
  eventDigest,
  messageId,
  revisionKey,
  signEvent,
  generateSigningKeyPair,
  type UsageEvent,
} from '@kaching/contracts';
import { DEPLOYMENT, jobStatus, unsignedUsage, usage } from './support/fixtures.js';

beforeAll(() => cryptoReady());

const heartbeat = (endedAt: string | undefined, cpu = 1): UsageEvent => {
  const u = usage();
  const job = { ...u.job, status: 'running' as const };
  if (endedAt === undefined) delete job.ended_at;
  else job.ended_at = endedAt;
  return { ...u, job, metrics: { ...u.metrics, cpu_seconds: cpu } };
};

describe('eventDigest and messageId', () => {
  it('digest is 32 hex chars and ignores the sig member', () => {
    const e = usage();
    expect(eventDigest(e)).toMatch(/^[0-9a-f]{32}$/);
    const kp = generateSigningKeyPair();
    expect(eventDigest(signEvent<UsageEvent>(unsignedUsage(), 'k', kp.secretKey))).toBe(eventDigest(e));
  });

  it('a precomputed digest (from signingBytes) gives the same id and key', () => {
    const u = usage();
    const d = digestOfSigningBytes(signingBytes(u));
    expect(d).toBe(eventDigest(u));
    expect(messageId(u, d)).toBe(messageId(u));
    expect(revisionKey(u, d)).toBe(revisionKey(u));
  });

  it('usage id is deployment:correlation:digest; job_status id has :hb:', () => {
    const u = usage();
    expect(messageId(u)).toBe(`${DEPLOYMENT}:run-42/step-7:${eventDigest(u)}`);
    const j = jobStatus();
    expect(messageId(j)).toBe(`${DEPLOYMENT}:run-42/step-7:hb:${eventDigest(j)}`);
  });

  it('an exact resend (even re-ordered members) gives the same id; any change a new one', () => {
    const u = usage();
    const resent = JSON.parse(JSON.stringify(Object.fromEntries(Object.entries(u).reverse()))) as UsageEvent;
    expect(messageId(resent)).toBe(messageId(u));
    expect(messageId({ ...u, metrics: { ...u.metrics, context_reads: 18 } })).not.toBe(messageId(u));
    expect(messageId({ ...u, job: { ...u.job, ended_at: '2026-11-23T03:02:30.251Z' } })).not.toBe(messageId(u));
  });
});

describe('revisionKey ordering', () => {
  it('a heartbeat then the final report: the final compares greater', () => {
    const hb = heartbeat('2026-11-23T03:01:00Z');
    const final = usage(); // ended 03:02:30.250
    expect(revisionKey(final) > revisionKey(hb)).toBe(true);
    expect(compareRevisions(hb, final)).toBe(-1);
    expect(compareRevisions(final, hb)).toBe(1);
  });

  it('heartbeats advance with their timestamps; a heartbeat without ended_at is the oldest', () => {
    const a = heartbeat(undefined);
    const b = heartbeat('2026-11-23T03:00:30Z');
    const c = heartbeat('2026-11-23T03:00:30.000001Z');
    expect([c, a, b].map((e) => revisionKey(e)).sort()).toEqual([a, b, c].map((e) => revisionKey(e)));
  });

  it('at the same instant a terminal status outranks running', () => {
    const t = '2026-11-23T03:02:30.250Z';
    const running = heartbeat(t, 999);
    const done = usage();
    expect(compareRevisions(running, done)).toBe(-1);
  });

  it('a late older revision compares lower than what is stored', () => {
    const stored = usage();
    const late = { ...usage(), job: { ...usage().job, ended_at: '2026-11-23T03:02:00Z' }, metrics: { ...usage().metrics, cpu_seconds: 500 } };
    expect(compareRevisions(late, stored)).toBe(-1);
    expect(revisionKey(late) < revisionKey(stored)).toBe(true);
  });

  it('an exact resend compares equal; differing content at the same instant is ordered deterministically', () => {
    const u = usage();
    expect(compareRevisions(u, structuredClone(u))).toBe(0);
    expect(revisionKey(u)).toBe(revisionKey(structuredClone(u)));
    const other = { ...u, metrics: { ...u.metrics, cpu_seconds: 1 } };
    const c = compareRevisions(u, other);
    expect(c).not.toBe(0);
    expect(compareRevisions(other, u)).toBe(-c);
  });

  it('offsets are normalised: the same instant in another zone is the same time', () => {
    const z = heartbeat('2026-11-23T03:00:00Z');
    const plus1 = heartbeat('2026-11-23T04:00:00+01:00');
    expect(revisionKey(z).slice(0, 20)).toBe(revisionKey(plus1).slice(0, 20));
    const later = heartbeat('2026-11-23T03:30:00-00:30');
    expect(compareRevisions(later, z)).toBe(1);
  });

  it('job_status revisions order by observed_at', () => {
    const a = jobStatus({ observed_at: '2026-11-23T03:01:00Z' });
    const b = jobStatus({ observed_at: '2026-11-23T03:01:05Z' });
    expect(compareRevisions(a, b)).toBe(-1);
    expect(compareRevisions(revisionKey(b), revisionKey(a))).toBe(1);
  });

  it('keys have a fixed-width timestamp so string order is time order across digit counts', () => {
    const old = heartbeat('1970-01-01T00:00:01Z');
    const now = heartbeat('2026-11-23T03:00:00Z');
    expect(revisionKey(old)).toMatch(/^000000000001000000\.0\.[0-9a-f]{32}$/);
    expect(revisionKey(old) < revisionKey(now)).toBe(true);
  });
});
