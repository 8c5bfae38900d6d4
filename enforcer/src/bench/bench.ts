import { randomBytes, randomUUID } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import {
  connectNats,
  createPool, encodeStreamRecord, ensureEventsStream, migrate, names, SCHEMA_FINGERPRINT_HEADER, STREAM_SCHEMA_FINGERPRINT,
  type PolicyDecision, type StreamRecord, type UsageEvent,
} from '@kaching/contracts';
import { start } from '../service.js';

export interface BenchDecisionOptions {
  databaseUrl: string;
  natsUrl: string;
  /** A namespace of its own (migrated here); the bench leaves its data behind for inspection. */
  namespace: string;
  /** Events per second appended (default 2000). */
  rate?: number;
  durationS?: number;
  deployments?: number;
  batchSize?: number;
}

export interface BenchDecisionResult {
  rate: number;
  achievedRate: number;
  events: number;
  decisions: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Transactions (apply + evaluate) and their mean duration. */
  batches: number;
  meanBatchMs: number;
}

/** A minimal valid usage record (the enforcer does not re-verify agent signatures: ingest did). */
export function benchRecord(deploymentId: string, orgId: string, at: Date, extra: Partial<UsageEvent['metrics']> = {}): StreamRecord {
  const iso = at.toISOString();
  const usage: UsageEvent = {
    schema: 'kaching.v1.usage', deployment_id: deploymentId,
    agent: { agent_id: randomUUID(), agent_type: 'bench' }, node: { node_id: '00000000-0000-4000-8000-000000000001', hostname: 'bench' },
    job: { job_id: randomUUID(), correlation_id: randomUUID(), ucxl_addr: 'ucxl://bench', started_at: iso, ended_at: iso, status: 'succeeded' },
    metrics: { cpu_seconds: 1, gpu_seconds: 0, ram_mb_peak: 0, disk_io_mb: 0, net_in_mb: 0, net_out_mb: 0, context_reads: 0, context_writes: 0, context_bytes_read: 0, context_bytes_written: 0, ...extra },
    sig: { algo: 'ed25519', key_id: 'bench', signature: 'AAAA' },
  };
  return { kind: 'usage', ingest: { received_at: iso, org_id: orgId, clock_skew_ms: 0, redacted_segments: [], flags: [] }, usage };
}

const pct = (xs: number[], p: number) => (xs.length ? xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]! : NaN);

/**
 * Append → published decision latency. Each deployment has a daily `jobs` quota whose soft and hard
 * thresholds are crossed by known events; latency = decision seen on the control subject − that event's append.
 */
export async function benchDecisionLatency(o: BenchDecisionOptions): Promise<BenchDecisionResult> {
  const rate = o.rate ?? 2000;
  const durationS = o.durationS ?? 10;
  const D = o.deployments ?? 50;
  await migrate({ databaseUrl: o.databaseUrl, namespace: o.namespace });
  const n = names(o.namespace);
  const pool = createPool({ databaseUrl: o.databaseUrl, namespace: o.namespace, max: 2 });
  const orgId = randomUUID();
  const perDep = Math.floor((rate * durationS) / D);
  const deps: { id: string; soft: number; hard: number; count: number }[] = [];
  await pool.query(`insert into org (org_id, name) values ($1, 'bench')`, [orgId]);
  for (let i = 0; i < D; i++) {
    const id = randomUUID();
    const soft = Math.max(2, Math.floor(((i % 10) + 1) * perDep * 0.08));
    const hard = soft + Math.max(2, Math.floor(perDep * 0.1));
    deps.push({ id, soft, hard, count: 0 });
    await pool.query(`insert into deployment (deployment_id, org_id, name) values ($1, $2, 'bench')`, [id, orgId]);
    await pool.query(`insert into quota (quota_id, deployment_id, org_id, name, metric, period, hard_limit, soft_threshold) values ($1, $2, $3, 'jobs', 'jobs', 'daily', $4, $5)`, [randomUUID(), id, orgId, hard, soft]);
  }
  await pool.end();
  const nc = await connectNats(o.natsUrl);
  await ensureEventsStream(nc, n);
  const handle = await start({ natsUrl: o.natsUrl, databaseUrl: o.databaseUrl, namespace: o.namespace, logLevel: 'warn', port: 0, host: '127.0.0.1', licensePublicKey: null, batchSize: o.batchSize ?? 200 });
  const sent = new Map<string, number>(); // `${dep}:${code}` → append time
  const latencies: number[] = [];
  const sub = nc.subscribe(n.controlWildcard, {
    callback: (_e, m) => {
      const d = m.json<PolicyDecision>();
      const t = sent.get(`${d.deployment_id}:${d.code}`);
      if (t !== undefined && d.state === 'active') latencies.push(performance.now() - t);
    },
  });
  const js = jetstream(nc);
  const total = perDep * D;
  const t0 = performance.now();
  const inflight = new Set<Promise<unknown>>();
  let i = 0;
  while (i < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
    for (; i < due; i++) {
      const dep = deps[i % D]!;
      dep.count++;
      const rec = benchRecord(dep.id, orgId, new Date());
      const h = natsHeaders();
      h.set(SCHEMA_FINGERPRINT_HEADER, STREAM_SCHEMA_FINGERPRINT);
      // msg id in messageId's shape; a random digest stands in for eventDigest to keep the generator cheap
      const at = performance.now();
      if (dep.count === dep.soft) sent.set(`${dep.id}:QUOTA_NEARING`, at);
      if (dep.count === dep.hard + 1) sent.set(`${dep.id}:QUOTA_EXCEEDED`, at);
      const p = js.publish(n.eventSubject(dep.id, 'usage', 1), encodeStreamRecord(rec), { msgID: rec.kind === 'usage' ? `${dep.id}:${rec.usage.job.correlation_id}:${randomBytes(16).toString('hex')}` : '', headers: h });
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      if (inflight.size > 2000) await Promise.race(inflight);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(inflight);
  const sendS = (performance.now() - t0) / 1000;
  const expected = [...sent.keys()].length;
  const deadline = Date.now() + 30_000;
  while (latencies.length < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  sub.unsubscribe();
  const h = await handle.metrics.evaluation.get();
  const sum = h.values.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0;
  const count = h.values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
  await handle.close();
  await nc.close();
  latencies.sort((a, b) => a - b);
  return {
    rate, achievedRate: Math.round(total / sendS), events: total, decisions: latencies.length,
    p50Ms: Math.round(pct(latencies, 50) * 10) / 10, p99Ms: Math.round(pct(latencies, 99) * 10) / 10, maxMs: Math.round((latencies[latencies.length - 1] ?? NaN) * 10) / 10,
    batches: count, meanBatchMs: count ? Math.round((sum / count) * 10000) / 10 : 0,
  };
}
