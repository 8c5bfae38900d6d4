import fc from 'fast-check';
import type { IngestFacts, JobStatusEvent, StreamRecord, Unsigned, UsageEvent } from '@kaching/contracts';

export const DEPLOYMENT = '0b7d6f0e-2c1a-4a8e-9f3b-5d2e1c0a9b8f';
export const ORG = '7e3c1b2a-9d8f-4e6a-b5c4-3a2b1c0d9e8f';

export function unsignedUsage(over: Partial<Unsigned<UsageEvent>> = {}): Unsigned<UsageEvent> {
  return {
    schema: 'kaching.v1.usage',
    deployment_id: DEPLOYMENT,
    agent: { agent_id: '1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d', agent_type: 'coder', version: '1.4.2' },
    node: { node_id: '2b3c4d5e-6f7a-4b2c-9d3e-4f5a6b7c8d9e', hostname: 'gpu-node-07', hw_class: 'a100' },
    job: {
      job_id: '3c4d5e6f-7a8b-4c3d-8e4f-5a6b7c8d9e0f',
      correlation_id: 'run-42/step-7',
      ucxl_addr: 'ucxl://coder:dev@kaching:metering/#/src/main.ts',
      started_at: '2026-11-23T03:00:00Z',
      ended_at: '2026-11-23T03:02:30.250Z',
      status: 'succeeded',
      meta: { team: 'platform', ticket: 'KC-12' },
    },
    metrics: {
      cpu_seconds: 141.25,
      gpu_seconds: 88.5,
      ram_mb_peak: 2048,
      disk_io_mb: 12.75,
      net_in_mb: 3.2,
      net_out_mb: 0.4,
      context_reads: 17,
      context_writes: 3,
      context_bytes_read: 1048576,
      context_bytes_written: 4096,
    },
    llm: { model_name: 'claude-sonnet', provider: 'anthropic', tokens_in: 12000, tokens_out: 850 },
    ...over,
  };
}

export function unsignedJobStatus(over: Partial<Unsigned<JobStatusEvent>> = {}): Unsigned<JobStatusEvent> {
  return {
    schema: 'kaching.v1.job_status',
    deployment_id: DEPLOYMENT,
    agent: { agent_id: '1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d', agent_type: 'coder' },
    node: { node_id: '2b3c4d5e-6f7a-4b2c-9d3e-4f5a6b7c8d9e', hostname: 'gpu-node-07' },
    job: {
      job_id: '3c4d5e6f-7a8b-4c3d-8e4f-5a6b7c8d9e0f',
      correlation_id: 'run-42/step-7',
      started_at: '2026-11-23T03:00:00Z',
      status: 'running',
    },
    observed_at: '2026-11-23T03:01:00Z',
    ...over,
  };
}

/** A syntactically valid signature (64 zero bytes) for tests that do not verify. */
export const DUMMY_SIG = { algo: 'ed25519' as const, key_id: 'agent-key-1', signature: Buffer.alloc(64).toString('base64') };

export function usage(over: Partial<Unsigned<UsageEvent>> = {}): UsageEvent {
  return { ...unsignedUsage(over), sig: DUMMY_SIG };
}

export function jobStatus(over: Partial<Unsigned<JobStatusEvent>> = {}): JobStatusEvent {
  return { ...unsignedJobStatus(over), sig: DUMMY_SIG };
}

// ---- fast-check arbitraries that respect the JSON Schemas ----

const str = (min: number, max: number) => fc.string({ minLength: min, maxLength: max, unit: 'binary' });
// Ids and names: no control characters (the schemas refuse them).
const name = (min: number, max: number) => str(min, max).map((s) => s.replace(/[\u0000-\u001f\u007f]/g, '_'));
const uuid = fc.uuid({ version: 4 });
// Within 1970..2100, with 0, 3 or 6 fraction digits and Z or an offset.
const timestamp = fc
  .tuple(
    fc.integer({ min: 0, max: 4102444799 }),
    fc.constantFrom(0, 3, 6),
    fc.integer({ min: 0, max: 999999 }),
    fc.constantFrom('Z', '+00:00', '+05:30', '-08:00'),
  )
  .map(([secs, digits, frac, tz]) => {
    const base = new Date(secs * 1000).toISOString().slice(0, 19);
    const f = digits === 0 ? '' : '.' + String(frac).padStart(6, '0').slice(0, digits);
    return `${base}${f}${tz}`;
  });
const num = (max: number) =>
  fc.oneof(
    fc.double({ min: 0, max, noNaN: true, noDefaultInfinity: true }).map((x) => (Object.is(x, -0) ? 0 : x)),
    fc.integer({ min: 0, max: Math.min(max, 2 ** 31) }),
    fc.constantFrom(0, max),
  );
const int = (max: number) => fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.constantFrom(max), fc.double({ min: 0, max, noNaN: true }).map(Math.floor));
const status = fc.constantFrom('running', 'succeeded', 'failed', 'canceled' as const);
const sig = fc.record({
  algo: fc.constant('ed25519' as const),
  key_id: name(1, 200),
  signature: fc.uint8Array({ minLength: 64, maxLength: 64 }).map((b) => Buffer.from(b).toString('base64')),
});
const agent = fc.record(
  { agent_id: uuid, agent_type: name(1, 100), version: name(1, 100) },
  { requiredKeys: ['agent_id', 'agent_type'] },
);
const node = fc.record(
  { node_id: uuid, hostname: name(1, 255), hw_class: name(1, 100) },
  { requiredKeys: ['node_id', 'hostname'] },
);
const meta = fc.dictionary(str(1, 64).filter((k) => k !== '__proto__'), str(0, 256), { maxKeys: 32, noNullPrototype: true });

export const usageArb: fc.Arbitrary<UsageEvent> = fc
  .record(
    {
      deployment_id: uuid,
      agent,
      node,
      job: fc.record(
        {
          job_id: uuid,
          correlation_id: name(1, 200),
          ucxl_addr: name(1, 1024),
          started_at: timestamp,
          ended_at: timestamp,
          status,
          meta,
        },
        { requiredKeys: ['job_id', 'correlation_id', 'ucxl_addr', 'started_at', 'status'] },
      ),
      metrics: fc.record({
        cpu_seconds: num(31536000),
        gpu_seconds: num(31536000),
        ram_mb_peak: num(16777216),
        disk_io_mb: num(1e9),
        net_in_mb: num(1e9),
        net_out_mb: num(1e9),
        context_reads: int(1e9),
        context_writes: int(1e9),
        context_bytes_read: int(1e15),
        context_bytes_written: int(1e15),
      }),
      llm: fc.record(
        {
          model_name: name(1, 200),
          provider: name(1, 100),
          tokens_in: int(1e10),
          tokens_out: int(1e10),
          tokens_cached_in: int(1e10),
          tokens_cache_write: int(1e10),
          tokens_reasoning: int(1e10),
        },
        { requiredKeys: ['model_name', 'provider', 'tokens_in', 'tokens_out'] },
      ),
      tags: fc.dictionary(
        fc.stringMatching(/^[a-z][a-z0-9_.-]{0,63}$/),
        name(1, 256),
        { maxKeys: 16 },
      ),
      sig,
    },
    { requiredKeys: ['deployment_id', 'agent', 'node', 'job', 'metrics', 'sig'] },
  )
  .map((e) => {
    const job = { ...e.job };
    // ended_at is required unless the job is still running.
    if (job.status !== 'running' && job.ended_at === undefined) job.ended_at = job.started_at;
    return { schema: 'kaching.v1.usage' as const, ...e, job } as UsageEvent;
  });

export const jobStatusArb: fc.Arbitrary<JobStatusEvent> = fc
  .record({
    deployment_id: uuid,
    agent,
    node,
    job: fc.record(
      { job_id: uuid, correlation_id: name(1, 200), ucxl_addr: name(1, 1024), started_at: timestamp, status },
      { requiredKeys: ['job_id', 'correlation_id', 'started_at', 'status'] },
    ),
    observed_at: timestamp,
    sig,
  })
  .map((e) => ({ schema: 'kaching.v1.job_status' as const, ...e }) as JobStatusEvent);

const b64 = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b).toString('base64'));
const ingestArb: fc.Arbitrary<IngestFacts> = fc.record(
  {
    received_at: timestamp,
    org_id: uuid,
    clock_skew_ms: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 300000 }), fc.double({ min: 0, max: 300000, noNaN: true })),
    redacted_segments: fc.array(str(1, 40), { maxLength: 4 }),
    flags: fc.array(fc.constantFrom('clock_skew', 'redacted'), { maxLength: 2 }),
    original_sha256: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex')),
    batch: fc.record({
      key_id: name(1, 200),
      root: b64(32),
      signature: b64(64),
      leaf_index: fc.integer({ min: 0, max: 999 }),
      tree_size: fc.integer({ min: 1, max: 1000 }),
      path: fc.array(b64(32), { maxLength: 10 }),
    }),
  },
  { requiredKeys: ['received_at', 'org_id', 'clock_skew_ms', 'redacted_segments', 'flags'] },
);

export const streamRecordArb: fc.Arbitrary<StreamRecord> = fc.oneof(
  fc.record({ kind: fc.constant('usage' as const), ingest: ingestArb, usage: usageArb }),
  fc.record({ kind: fc.constant('job_status' as const), ingest: ingestArb, job_status: jobStatusArb }),
);
