import { describe, expect, it } from 'vitest';
import {
  InputError,
  jobStatusSchema,
  policyDecisionSchema,
  usageSchema,
  validateJobStatus,
  validatePolicyDecision,
  validateUsage,
  type PolicyDecision,
} from '@kaching/contracts';
import { jobStatus, usage } from './support/fixtures.js';

/** Deep-clones the fixture and applies a mutation to it. */
function mutate<T>(base: T, fn: (x: any) => void): unknown {
  const c = structuredClone(base);
  fn(c);
  return c;
}

function errorOf(r: { ok: boolean; error?: InputError }) {
  expect(r.ok).toBe(false);
  const e = r.error!;
  expect(e).toBeInstanceOf(InputError);
  expect(e.status).toBe(400);
  return { code: e.code, field: e.field, rule: e.rule };
}

const decision: PolicyDecision = {
  schema: 'kaching.v1.policy_decision',
  decision_id: 'dec-0b7d6f0e-QUOTA_EXCEEDED-context-2026-11',
  deployment_id: '0b7d6f0e-2c1a-4a8e-9f3b-5d2e1c0a9b8f',
  org_id: '7e3c1b2a-9d8f-4e6a-b5c4-3a2b1c0d9e8f',
  code: 'QUOTA_EXCEEDED',
  scope: 'context_bytes',
  state: 'active',
  action: 'throttle',
  enforcement: 'soft',
  severity: 'error',
  metric: 'context_bytes_read',
  period: { kind: 'monthly', window_start: '2026-11-01T00:00:00Z', window_end: '2026-12-01T00:00:00Z', timezone: 'UTC' },
  threshold: 1,
  observed: 1.8e12,
  limit: 1e12,
  params: { max_concurrency: 4 },
  message: 'context quota exceeded',
  issued_at: '2026-11-23T03:00:00Z',
};

describe('valid events pass', () => {
  it('usage (full), usage running without ended_at, job_status, policy_decision', () => {
    expect(validateUsage(usage())).toEqual({ ok: true, value: usage() });
    const running = mutate(usage(), (e) => {
      e.job.status = 'running';
      delete e.job.ended_at;
      delete e.llm;
      delete e.job.meta;
    });
    expect(validateUsage(running).ok).toBe(true);
    expect(validateJobStatus(jobStatus()).ok).toBe(true);
    expect(validatePolicyDecision(decision).ok).toBe(true);
  });
  it('accepts upper bounds exactly', () => {
    const e = mutate(usage(), (x) => {
      Object.assign(x.metrics, {
        cpu_seconds: 31536000,
        ram_mb_peak: 16777216,
        disk_io_mb: 1e9,
        context_reads: 1e9,
        context_bytes_read: 1e15,
      });
      x.llm.tokens_in = 1e10;
      x.job.correlation_id = 'c'.repeat(200);
      x.job.ucxl_addr = 'u'.repeat(1024);
      x.job.meta = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`, 'v'.repeat(256)]));
    });
    expect(validateUsage(e).ok).toBe(true);
  });
});

describe('rejections carry code, dotted field and rule', () => {
  const cases: Array<[string, unknown, { code: string; field: string; rule: string }]> = [
    ['non-object', [1], { code: 'FIELD_TYPE', field: undefined as unknown as string, rule: 'type:object' }],
    ['missing schema', mutate(usage(), (e) => delete e.schema), { code: 'FIELD_REQUIRED', field: 'schema', rule: 'required' }],
    ['other schema', jobStatus(), { code: 'SCHEMA_UNKNOWN', field: 'schema', rule: 'const:kaching.v1.usage' }],
    ['missing correlation id', mutate(usage(), (e) => delete e.job.correlation_id), { code: 'FIELD_REQUIRED', field: 'job.correlation_id', rule: 'required' }],
    ['ended_at missing on a terminal job', mutate(usage(), (e) => delete e.job.ended_at), { code: 'FIELD_REQUIRED', field: 'job.ended_at', rule: 'required' }],
    ['unknown top-level field', mutate(usage(), (e) => (e.extra = 1)), { code: 'FIELD_UNKNOWN', field: 'extra', rule: 'additionalProperties:false' }],
    ['unknown nested field', mutate(usage(), (e) => (e.metrics.tpu_seconds = 1)), { code: 'FIELD_UNKNOWN', field: 'metrics.tpu_seconds', rule: 'additionalProperties:false' }],
    ['string metric', mutate(usage(), (e) => (e.metrics.cpu_seconds = '1')), { code: 'FIELD_TYPE', field: 'metrics.cpu_seconds', rule: 'type:number' }],
    ['fractional count', mutate(usage(), (e) => (e.metrics.context_reads = 1.5)), { code: 'FIELD_TYPE', field: 'metrics.context_reads', rule: 'type:integer' }],
    ['negative metric', mutate(usage(), (e) => (e.metrics.gpu_seconds = -1)), { code: 'FIELD_RANGE', field: 'metrics.gpu_seconds', rule: 'minimum:0' }],
    ['cpu above a year', mutate(usage(), (e) => (e.metrics.cpu_seconds = 31536000.5)), { code: 'FIELD_RANGE', field: 'metrics.cpu_seconds', rule: 'maximum:31536000' }],
    ['ram above bound', mutate(usage(), (e) => (e.metrics.ram_mb_peak = 16777217)), { code: 'FIELD_RANGE', field: 'metrics.ram_mb_peak', rule: 'maximum:16777216' }],
    ['bytes above bound', mutate(usage(), (e) => (e.metrics.context_bytes_written = 1e15 + 1)), { code: 'FIELD_RANGE', field: 'metrics.context_bytes_written', rule: 'maximum:1000000000000000' }],
    ['tokens above bound', mutate(usage(), (e) => (e.llm.tokens_out = 1e10 + 1)), { code: 'FIELD_RANGE', field: 'llm.tokens_out', rule: 'maximum:10000000000' }],
    ['NaN metric', mutate(usage(), (e) => (e.metrics.net_in_mb = Number.NaN)), { code: 'FIELD_RANGE', field: 'metrics.net_in_mb', rule: 'finite' }],
    ['Infinity metric', mutate(usage(), (e) => (e.metrics.net_out_mb = Number.POSITIVE_INFINITY)), { code: 'FIELD_RANGE', field: 'metrics.net_out_mb', rule: 'finite' }],
    ['bad uuid', mutate(usage(), (e) => (e.agent.agent_id = 'agent-1')), { code: 'FIELD_FORMAT', field: 'agent.agent_id', rule: 'format:uuid' }],
    ['bad deployment uuid', mutate(usage(), (e) => (e.deployment_id = '0b7d6f0e2c1a4a8e9f3b5d2e1c0a9b8f')), { code: 'FIELD_FORMAT', field: 'deployment_id', rule: 'format:uuid' }],
    ['uppercase uuid', mutate(usage(), (e) => (e.node.node_id = e.node.node_id.toUpperCase())), { code: 'FIELD_FORMAT', field: 'node.node_id', rule: 'format:uuid' }],
    ['urn:uuid form', mutate(usage(), (e) => (e.job.job_id = `urn:uuid:${e.job.job_id}`)), { code: 'FIELD_FORMAT', field: 'job.job_id', rule: 'format:uuid' }],
    ['timestamp without zone', mutate(usage(), (e) => (e.job.started_at = '2026-11-23T03:00:00')), { code: 'FIELD_FORMAT', field: 'job.started_at', rule: 'format:date-time' }],
    ['impossible date', mutate(usage(), (e) => (e.job.ended_at = '2026-02-30T03:00:00Z')), { code: 'FIELD_FORMAT', field: 'job.ended_at', rule: 'format:date-time' }],
    ['bad status', mutate(usage(), (e) => (e.job.status = 'done')), { code: 'FIELD_ENUM', field: 'job.status', rule: 'enum:running|succeeded|failed|canceled' }],
    ['bad algo', mutate(usage(), (e) => (e.sig.algo = 'rsa')), { code: 'FIELD_ENUM', field: 'sig.algo', rule: 'const:ed25519' }],
    ['signature not base64 of 64 bytes', mutate(usage(), (e) => (e.sig.signature = Buffer.alloc(32).toString('base64'))), { code: 'BAD_BASE64', field: 'sig.signature', rule: 'base64:64' }],
    ['signature with non-canonical padding bits', mutate(usage(), (e) => (e.sig.signature = 'A'.repeat(85) + 'B==')), { code: 'BAD_BASE64', field: 'sig.signature', rule: 'base64:64' }],
    ['long correlation id', mutate(usage(), (e) => (e.job.correlation_id = 'c'.repeat(201))), { code: 'FIELD_LENGTH', field: 'job.correlation_id', rule: 'maxLength:200' }],
    ['empty correlation id', mutate(usage(), (e) => (e.job.correlation_id = '')), { code: 'FIELD_LENGTH', field: 'job.correlation_id', rule: 'minLength:1' }],
    ['long agent_type', mutate(usage(), (e) => (e.agent.agent_type = 'a'.repeat(101))), { code: 'FIELD_LENGTH', field: 'agent.agent_type', rule: 'maxLength:100' }],
    ['long ucxl_addr', mutate(usage(), (e) => (e.job.ucxl_addr = 'u'.repeat(1025))), { code: 'FIELD_LENGTH', field: 'job.ucxl_addr', rule: 'maxLength:1024' }],
    ['too many meta keys', mutate(usage(), (e) => (e.job.meta = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])))), { code: 'FIELD_LENGTH', field: 'job.meta', rule: 'maxProperties:32' }],
    ['long meta value', mutate(usage(), (e) => (e.job.meta.team = 'v'.repeat(257))), { code: 'FIELD_LENGTH', field: 'job.meta.team', rule: 'maxLength:256' }],
    ['non-string meta value', mutate(usage(), (e) => (e.job.meta.team = 5)), { code: 'FIELD_TYPE', field: 'job.meta.team', rule: 'type:string' }],
    ['long meta key', mutate(usage(), (e) => (e.job.meta['k'.repeat(65)] = 'v')), { code: 'FIELD_LENGTH', field: `job.meta.${'k'.repeat(65)}`, rule: 'propertyNames.maxLength:64' }],
    ['__proto__ meta key', JSON.parse(JSON.stringify(usage()).replace('"team"', '"__proto__"')), { code: 'FIELD_FORMAT', field: 'job.meta.__proto__', rule: 'propertyNames.pattern' }],
    ['CR/LF in correlation id', mutate(usage(), (e) => (e.job.correlation_id = 'a\r\nNats-Msg-Id: x')), { code: 'FIELD_FORMAT', field: 'job.correlation_id', rule: 'no-control-chars' }],
    ['control char in key_id', mutate(usage(), (e) => (e.sig.key_id = 'k\u0000')), { code: 'FIELD_FORMAT', field: 'sig.key_id', rule: 'no-control-chars' }],
    ['llm without tokens_in', mutate(usage(), (e) => delete e.llm.tokens_in), { code: 'FIELD_REQUIRED', field: 'llm.tokens_in', rule: 'required' }],
    ['negative cache-write tokens', mutate(usage(), (e) => (e.llm.tokens_cache_write = -1)), { code: 'FIELD_RANGE', field: 'llm.tokens_cache_write', rule: 'minimum:0' }],
    ['too many tags', mutate(usage(), (e) => (e.tags = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`t${i}`, 'v'])))), { code: 'FIELD_LENGTH', field: 'tags', rule: 'maxProperties:16' }],
    ['upper-case tag key', mutate(usage(), (e) => (e.tags = { Team: 'ml' })), { code: 'FIELD_FORMAT', field: 'tags.Team', rule: 'propertyNames.pattern' }],
    ['empty tag value', mutate(usage(), (e) => (e.tags = { team: '' })), { code: 'FIELD_LENGTH', field: 'tags.team', rule: 'minLength:1' }],
    ['non-string tag value', mutate(usage(), (e) => (e.tags = { team: 7 })), { code: 'FIELD_TYPE', field: 'tags.team', rule: 'type:string' }],
  ];
  for (const [name, input, expected] of cases) {
    it(`usage: ${name}`, () => expect(errorOf(validateUsage(input))).toEqual(expected));
  }

  it('job_status: unknown field, missing observed_at, bad status, metrics refused', () => {
    expect(errorOf(validateJobStatus(mutate(jobStatus(), (e) => delete e.observed_at)))).toEqual({ code: 'FIELD_REQUIRED', field: 'observed_at', rule: 'required' });
    expect(errorOf(validateJobStatus(mutate(jobStatus(), (e) => (e.job.status = 'paused'))))).toMatchObject({ code: 'FIELD_ENUM', field: 'job.status' });
    expect(errorOf(validateJobStatus(mutate(jobStatus(), (e) => (e.metrics = {}))))).toEqual({ code: 'FIELD_UNKNOWN', field: 'metrics', rule: 'additionalProperties:false' });
    expect(errorOf(validateJobStatus(usage()))).toMatchObject({ code: 'SCHEMA_UNKNOWN', field: 'schema' });
  });

  it('policy_decision: bad code, unknown param, negative limit, missing period member', () => {
    expect(errorOf(validatePolicyDecision({ ...decision, code: 'NOPE' }))).toMatchObject({ code: 'FIELD_ENUM', field: 'code' });
    expect(errorOf(validatePolicyDecision({ ...decision, params: { burst: 1 } }))).toEqual({ code: 'FIELD_UNKNOWN', field: 'params.burst', rule: 'additionalProperties:false' });
    expect(errorOf(validatePolicyDecision({ ...decision, limit: -1 }))).toEqual({ code: 'FIELD_RANGE', field: 'limit', rule: 'minimum:0' });
    expect(errorOf(validatePolicyDecision(mutate(decision, (d) => delete d.period.timezone)))).toEqual({ code: 'FIELD_REQUIRED', field: 'period.timezone', rule: 'required' });
    expect(errorOf(validatePolicyDecision({ ...decision, org_id: 'org' }))).toEqual({ code: 'FIELD_FORMAT', field: 'org_id', rule: 'format:uuid' });
  });

  it('error bodies are the 4xx shape', () => {
    const r = validateUsage(mutate(usage(), (e) => (e.metrics.cpu_seconds = -1)));
    expect(r.ok ? undefined : r.error.toBody()).toMatchObject({
      error: { code: 'FIELD_RANGE', field: 'metrics.cpu_seconds', rule: 'minimum:0', message: expect.stringContaining('metrics.cpu_seconds') },
    });
  });
});

describe('raw schemas', () => {
  it('are exported, draft 2020-12, strict at every object level', () => {
    for (const s of [usageSchema, jobStatusSchema, policyDecisionSchema]) {
      expect(s['$schema']).toBe('https://json-schema.org/draft/2020-12/schema');
      const walk = (node: unknown, path: string): void => {
        if (node === null || typeof node !== 'object') return;
        const n = node as Record<string, unknown>;
        // string maps (job.meta, tags) bound their keys and values instead
        const isMap = path === 'meta' || path === 'tags';
        if (n['type'] === 'object' && !isMap) {
          expect(n['additionalProperties'], path).toBe(false);
        }
        for (const [k, v] of Object.entries(n)) walk(v, k === 'meta' || k === 'tags' ? k : `${path}/${k}`);
      };
      walk(s, '');
    }
  });
});
