import { describe, expect, it } from 'vitest';
import {
  jobStatusSchema,
  policyDecisionSchema,
  usageSchema,
  type AgentRef,
  type JobStatusEvent,
  type LlmUsage,
  type NodeRef,
  type PolicyDecision,
  type Signature,
  type UsageEvent,
  type UsageJob,
  type UsageMetrics,
} from '@kaching/contracts';

/**
 * Every member of T, marked required or optional. Typed as Shape<T>, a literal below fails to compile
 * when the TS type gains, loses or changes the optionality of a member; the runtime check then holds
 * the JSON Schema to the same literal. Together: TS types and schemas cannot drift apart.
 */
type Shape<T> = { [K in keyof T]-?: {} extends Pick<T, K> ? 'optional' : 'required' };

const agent: Shape<AgentRef> = { agent_id: 'required', agent_type: 'required', version: 'optional' };
const node: Shape<NodeRef> = { node_id: 'required', hostname: 'required', hw_class: 'optional' };
const sig: Shape<Signature> = { algo: 'required', key_id: 'required', signature: 'required' };
const usageJob: Shape<UsageJob> = {
  job_id: 'required',
  correlation_id: 'required',
  ucxl_addr: 'required',
  started_at: 'required',
  ended_at: 'optional', // required by the schema unless status is running
  status: 'required',
  meta: 'optional',
};
const metrics: Shape<UsageMetrics> = {
  cpu_seconds: 'required',
  gpu_seconds: 'required',
  ram_mb_peak: 'required',
  disk_io_mb: 'required',
  net_in_mb: 'required',
  net_out_mb: 'required',
  context_reads: 'required',
  context_writes: 'required',
  context_bytes_read: 'required',
  context_bytes_written: 'required',
};
const llm: Shape<LlmUsage> = {
  model_name: 'required',
  provider: 'required',
  tokens_in: 'required',
  tokens_out: 'required',
  tokens_cached_in: 'optional',
  tokens_cache_write: 'optional',
  tokens_reasoning: 'optional',
};
const usage: Shape<UsageEvent> = {
  schema: 'required',
  deployment_id: 'required',
  agent: 'required',
  node: 'required',
  job: 'required',
  metrics: 'required',
  llm: 'optional',
  tags: 'optional',
  sig: 'required',
};
const jobStatusJob: Shape<JobStatusEvent['job']> = {
  job_id: 'required',
  correlation_id: 'required',
  ucxl_addr: 'optional',
  started_at: 'required',
  status: 'required',
};
const jobStatus: Shape<JobStatusEvent> = {
  schema: 'required',
  deployment_id: 'required',
  agent: 'required',
  node: 'required',
  job: 'required',
  observed_at: 'required',
  sig: 'required',
};
const decision: Shape<PolicyDecision> = {
  schema: 'required',
  decision_id: 'required',
  deployment_id: 'required',
  org_id: 'required',
  code: 'required',
  scope: 'required',
  state: 'required',
  action: 'required',
  enforcement: 'required',
  severity: 'required',
  metric: 'optional',
  period: 'optional',
  threshold: 'optional',
  observed: 'optional',
  limit: 'optional',
  params: 'optional',
  message: 'required',
  issued_at: 'required',
};
const period: Shape<NonNullable<PolicyDecision['period']>> = {
  kind: 'required',
  window_start: 'required',
  window_end: 'required',
  timezone: 'required',
};
const params: Shape<NonNullable<PolicyDecision['params']>> = { max_concurrency: 'optional', model: 'optional' };

interface ObjectSchema {
  properties: Record<string, ObjectSchema>;
  required?: string[];
}

function shapeOf(s: ObjectSchema): Record<string, 'required' | 'optional'> {
  const req = new Set(s.required ?? []);
  return Object.fromEntries(Object.keys(s.properties).map((k) => [k, req.has(k) ? 'required' : 'optional']));
}

const u = usageSchema as unknown as ObjectSchema;
const j = jobStatusSchema as unknown as ObjectSchema;
const d = policyDecisionSchema as unknown as ObjectSchema;

describe('JSON Schemas match the TS types member for member', () => {
  const cases: Array<[string, ObjectSchema | undefined, Record<string, string>]> = [
    ['usage', u, usage],
    ['usage.agent', u.properties['agent'], agent],
    ['usage.node', u.properties['node'], node],
    ['usage.job', u.properties['job'], usageJob],
    ['usage.metrics', u.properties['metrics'], metrics],
    ['usage.llm', u.properties['llm'], llm],
    ['usage.sig', u.properties['sig'], sig],
    ['job_status', j, jobStatus],
    ['job_status.agent', j.properties['agent'], agent],
    ['job_status.node', j.properties['node'], node],
    ['job_status.job', j.properties['job'], jobStatusJob],
    ['job_status.sig', j.properties['sig'], sig],
    ['policy_decision', d, decision],
    ['policy_decision.period', d.properties['period'], period],
    ['policy_decision.params', d.properties['params'], params],
  ];
  for (const [name, schema, shape] of cases) {
    it(name, () => {
      expect(schema).toBeDefined();
      expect(shapeOf(schema!)).toEqual(shape);
    });
  }
});
