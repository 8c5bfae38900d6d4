import avro from 'avsc';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalize,
  decodeStreamRecord,
  encodeStreamRecord,
  KNOWN_STREAM_SCHEMA_FINGERPRINTS,
  SCHEMA_FINGERPRINT_HEADER,
  STREAM_SCHEMA_FINGERPRINT,
  UnknownSchemaError,
  validateJobStatus,
  validateUsage,
  type StreamRecord,
} from '@kaching/contracts';
import { STREAM_RECORD_AVRO_SCHEMA_V1 } from '../src/codec/stream.v1.avsc.js';
import { jobStatus, ORG, streamRecordArb, usage } from './support/fixtures.js';

const ingest = { received_at: '2026-11-23T03:02:31.001Z', org_id: ORG, clock_skew_ms: 0, redacted_segments: [], flags: [] };

describe('stream record Avro codec', () => {
  it('names its header and a sha256 hex fingerprint', () => {
    expect(SCHEMA_FINGERPRINT_HEADER).toBe('Kaching-Schema');
    expect(STREAM_SCHEMA_FINGERPRINT).toMatch(/^[0-9a-f]{64}$/);
  });

  it('round-trips a usage record exactly, into plain objects', () => {
    const rec: StreamRecord = { kind: 'usage', ingest: { ...ingest, clock_skew_ms: 1500, flags: ['clock_skew'], redacted_segments: ['project'] }, usage: usage() };
    const bytes = encodeStreamRecord(rec);
    expect(bytes).toBeInstanceOf(Uint8Array);
    const back = decodeStreamRecord(bytes, STREAM_SCHEMA_FINGERPRINT);
    expect(back).toStrictEqual(rec);
    expect(JSON.stringify(back)).toBe(JSON.stringify(rec));
  });

  it('keeps absent optional members absent (not null)', () => {
    const u = structuredClone(usage()) as any;
    delete u.llm;
    delete u.job.meta;
    delete u.job.ended_at;
    delete u.agent.version;
    delete u.node.hw_class;
    u.job.status = 'running';
    const back = decodeStreamRecord(encodeStreamRecord({ kind: 'usage', ingest, usage: u })) as Extract<StreamRecord, { kind: 'usage' }>;
    expect(back.usage).toStrictEqual(u);
    expect('llm' in back.usage).toBe(false);
    expect('ended_at' in back.usage.job).toBe(false);
    expect('job_status' in back).toBe(false);
  });

  it('treats members set to undefined as absent, like JSON does', () => {
    const u = { ...usage(), llm: undefined, job: { ...usage().job, status: 'running' as const, ended_at: undefined } };
    const back = decodeStreamRecord(encodeStreamRecord({ kind: 'usage', ingest, usage: u })) as Extract<StreamRecord, { kind: 'usage' }>;
    expect(back.usage).toStrictEqual(JSON.parse(JSON.stringify(u)));
  });

  it('refuses values of the wrong Avro type instead of coercing them', () => {
    const bad = (m: Record<string, unknown>) => ({ kind: 'usage', ingest, usage: { ...usage(), metrics: { ...usage().metrics, ...m } } }) as unknown as StreamRecord;
    expect(() => encodeStreamRecord(bad({ cpu_seconds: '1' }))).toThrow(/double/);
    expect(() => encodeStreamRecord(bad({ context_reads: 1.5 }))).toThrow(/long/);
  });

  it('round-trips a job_status record and an empty meta map', () => {
    const rec: StreamRecord = { kind: 'job_status', ingest, job_status: jobStatus() };
    expect(decodeStreamRecord(encodeStreamRecord(rec))).toStrictEqual(rec);
    const withEmptyMeta: StreamRecord = { kind: 'usage', ingest, usage: { ...usage(), job: { ...usage().job, meta: {} } } };
    expect(decodeStreamRecord(encodeStreamRecord(withEmptyMeta))).toStrictEqual(withEmptyMeta);
  });

  it('keepNulls leaves absent optional members as null and every present member as it was', () => {
    const { llm: _absent, ...withoutLlm } = usage();
    const rec = { kind: 'usage', ingest, usage: withoutLlm } as StreamRecord;
    const loose = decodeStreamRecord(encodeStreamRecord(rec), undefined, { keepNulls: true }) as Extract<StreamRecord, { kind: 'usage' }>;
    const strict = decodeStreamRecord(encodeStreamRecord(rec)) as Extract<StreamRecord, { kind: 'usage' }>;
    expect('llm' in strict.usage).toBe(false);
    expect(loose.usage.llm).toBeNull();
    const dropNulls = (v: unknown): unknown =>
      v === null || typeof v !== 'object' || Array.isArray(v)
        ? v
        : Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null).map(([k, x]) => [k, dropNulls(x)]));
    expect(dropNulls(loose)).toStrictEqual(strict);
  });

  it('decodes from a Uint8Array view at an offset (as NATS hands payloads over)', () => {
    const bytes = encodeStreamRecord({ kind: 'job_status', ingest, job_status: jobStatus() });
    const padded = new Uint8Array(bytes.length + 8);
    padded.set(bytes, 5);
    expect(decodeStreamRecord(padded.subarray(5, 5 + bytes.length))).toStrictEqual({ kind: 'job_status', ingest, job_status: jobStatus() });
  });

  it('refuses an unknown schema fingerprint with a clear error', () => {
    const bytes = encodeStreamRecord({ kind: 'job_status', ingest, job_status: jobStatus() });
    expect(() => decodeStreamRecord(bytes, 'ab'.repeat(32))).toThrow(UnknownSchemaError);
    expect(() => decodeStreamRecord(bytes, 'ab'.repeat(32))).toThrow(/unknown to this build/);
  });

  it('refuses truncated bytes and records whose kind and member disagree', () => {
    const bytes = encodeStreamRecord({ kind: 'usage', ingest, usage: usage() });
    expect(() => decodeStreamRecord(bytes.subarray(0, bytes.length - 3))).toThrow();
    expect(() => encodeStreamRecord({ kind: 'usage', ingest, job_status: jobStatus() } as unknown as StreamRecord)).toThrow(TypeError);
    expect(() => encodeStreamRecord({ kind: 'job_status', ingest, job_status: jobStatus(), usage: usage() } as unknown as StreamRecord)).toThrow(TypeError);
  });

  it('property: 1000 random valid records are schema-valid and survive JSON → Avro → JSON unchanged', () => {
    fc.assert(
      fc.property(streamRecordArb, (rec) => {
        const event = rec.kind === 'usage' ? validateUsage(rec.usage) : validateJobStatus(rec.job_status);
        if (!event.ok) throw new Error(`generator produced an invalid event: ${JSON.stringify(event.error.toBody())}`);
        // Through JSON first: that is what ingest receives.
        const json = JSON.parse(JSON.stringify(rec)) as StreamRecord;
        const back = decodeStreamRecord(encodeStreamRecord(json), STREAM_SCHEMA_FINGERPRINT);
        expect(back).toStrictEqual(json);
        // Member order may differ; the canonical form (what signatures cover) must not.
        expect(canonicalize(back)).toBe(canonicalize(json));
      }),
      { numRuns: 1000 },
    );
  });

  describe('records written with an older schema (stream and archive keep them for years)', () => {
    const v1 = avro.Type.forSchema(STREAM_RECORD_AVRO_SCHEMA_V1 as unknown as avro.Schema, { omitRecordMethods: true });
    const v1Fingerprint = v1.fingerprint('sha256').toString('hex');
    /** What a v1 writer could hold: the record without the members v2 added. */
    const asV1 = (rec: StreamRecord): StreamRecord => {
      const r = structuredClone(rec) as any;
      delete r.ingest.original_sha256;
      delete r.ingest.batch;
      if (r.usage) {
        delete r.usage.tags;
        if (r.usage.llm) delete r.usage.llm.tokens_cache_write;
      }
      return r;
    };

    it('knows v1 and the current fingerprint, and they differ', () => {
      expect(KNOWN_STREAM_SCHEMA_FINGERPRINTS).toEqual([v1Fingerprint, STREAM_SCHEMA_FINGERPRINT]);
      expect(v1Fingerprint).not.toBe(STREAM_SCHEMA_FINGERPRINT);
    });

    it('property: 500 random v1-encoded records decode by their fingerprint into the same record', () => {
      fc.assert(
        fc.property(streamRecordArb, (rec) => {
          const old = JSON.parse(JSON.stringify(asV1(rec))) as StreamRecord;
          const bytes = v1.toBuffer(old);
          expect(decodeStreamRecord(bytes, v1Fingerprint)).toStrictEqual(old);
          // the v2-only members come back absent (null under keepNulls), never invented
          const loose = decodeStreamRecord(bytes, v1Fingerprint, { keepNulls: true }) as any;
          expect(loose.ingest.batch).toBeNull();
          expect(loose.ingest.original_sha256).toBeNull();
        }),
        { numRuns: 500 },
      );
    });
  });
});
