import { randomUUID } from 'node:crypto';
import { USAGE_SCHEMA, signEvent, type UsageEvent, type Unsigned } from '@kaching/contracts';

/** A realistic unsigned usage event (~1 KB signed) for benchmarks and tests. */
export function sampleUsage(deploymentId: string, over: { correlationId?: string; endedAt?: Date; ucxl?: string } = {}): Unsigned<UsageEvent> {
  const ended = over.endedAt ?? new Date();
  const started = new Date(ended.getTime() - 42_000);
  return {
    schema: USAGE_SCHEMA,
    deployment_id: deploymentId,
    agent: { agent_id: '7d0e4b8e-4a52-4f0e-9d61-1f2a3b4c5d6e', agent_type: 'coder', version: '1.4.2' },
    node: { node_id: '0b7c1c1e-9b55-4a3c-8f0f-2d3e4f5a6b7c', hostname: 'gpu-node-07', hw_class: 'a100-80g' },
    job: {
      job_id: randomUUID(),
      correlation_id: over.correlationId ?? `job-${randomUUID()}`,
      ucxl_addr: over.ucxl ?? 'ucxl://coder-7:developer@acme-web:refactor-auth/src/customer/acme/auth.ts',
      started_at: started.toISOString(),
      ended_at: ended.toISOString(),
      status: 'succeeded',
      meta: { repo: 'acme/web', branch: 'feature/auth-refactor', pipeline: 'nightly' },
    },
    metrics: {
      cpu_seconds: 812.25,
      gpu_seconds: 301.5,
      ram_mb_peak: 20480,
      disk_io_mb: 512.75,
      net_in_mb: 31.2,
      net_out_mb: 4.8,
      context_reads: 1240,
      context_writes: 88,
      context_bytes_read: 15_728_640,
      context_bytes_written: 1_048_576,
    },
    llm: { model_name: 'llama3.1:70b-q4', provider: 'ollama', tokens_in: 182_344, tokens_out: 20_115 },
  };
}

export function signedUsage(deploymentId: string, keyId: string, secretKey: Uint8Array, over: Parameters<typeof sampleUsage>[1] = {}): UsageEvent {
  return signEvent(sampleUsage(deploymentId, over), keyId, secretKey) as UsageEvent;
}
