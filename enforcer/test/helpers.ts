import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import {
  encodeStreamRecord, messageId, SCHEMA_FINGERPRINT_HEADER, STREAM_SCHEMA_FINGERPRINT, type Names, type PolicyDecision, type StreamRecord, type UsageEvent,
} from '@kaching/contracts';

export async function seedOrg(pool: pg.Pool): Promise<string> {
  const id = randomUUID();
  await pool.query(`insert into org (org_id, name) values ($1, 'test org')`, [id]);
  return id;
}

export async function seedDeployment(pool: pg.Pool, orgId: string, o: { timezone?: string; enforcement?: 'soft' | 'hard' } = {}): Promise<string> {
  const id = randomUUID();
  await pool.query(`insert into deployment (deployment_id, org_id, name, timezone, enforcement) values ($1, $2, 'd', $3, $4)`, [
    id, orgId, o.timezone ?? 'UTC', o.enforcement ?? 'soft',
  ]);
  return id;
}

export async function addQuota(pool: pg.Pool, dep: string, org: string, q: { name: string; metric: string; period: string; hard: number | null; soft: number | null }): Promise<void> {
  await pool.query(`insert into quota (quota_id, deployment_id, org_id, name, metric, period, hard_limit, soft_threshold) values ($1,$2,$3,$4,$5,$6,$7,$8)`, [
    randomUUID(), dep, org, q.name, q.metric, q.period, q.hard, q.soft,
  ]);
}

export async function addBudget(pool: pg.Pool, dep: string, org: string, b: { scope: string; metric: string; period: string; limit: number; action: string; params?: object }): Promise<void> {
  await pool.query(`insert into budget (budget_id, deployment_id, org_id, scope, metric, period, limit_units, action, action_params) values ($1,$2,$3,$4,$5,$6,$7,$8,$9)`, [
    randomUUID(), dep, org, b.scope, b.metric, b.period, b.limit, b.action, b.params ?? {},
  ]);
}

export function usageRecord(
  dep: string,
  org: string,
  at: Date,
  o: { cpu?: number; correlationId?: string; status?: UsageEvent['job']['status']; llm?: UsageEvent['llm']; nodeId?: string; agentId?: string } = {},
): StreamRecord {
  const iso = at.toISOString();
  const usage: UsageEvent = {
    schema: 'kaching.v1.usage', deployment_id: dep,
    agent: { agent_id: o.agentId ?? '00000000-0000-4000-8000-0000000000a1', agent_type: 'coder' },
    node: { node_id: o.nodeId ?? '00000000-0000-4000-8000-0000000000b1', hostname: 'n1' },
    job: { job_id: randomUUID(), correlation_id: o.correlationId ?? randomUUID(), ucxl_addr: 'ucxl://t', started_at: iso, status: o.status ?? 'succeeded',
      ...(o.status === 'running' ? {} : { ended_at: iso }) },
    metrics: { cpu_seconds: o.cpu ?? 0, gpu_seconds: 0, ram_mb_peak: 0, disk_io_mb: 0, net_in_mb: 0, net_out_mb: 0, context_reads: 0, context_writes: 0, context_bytes_read: 0, context_bytes_written: 0 },
    ...(o.llm ? { llm: o.llm } : {}),
    sig: { algo: 'ed25519', key_id: 'k', signature: 'AAAA' },
  };
  return { kind: 'usage', ingest: { received_at: iso, org_id: org, clock_skew_ms: 0, redacted_segments: [], flags: [] }, usage };
}

/** Appends records the way ingest does: Avro payload, schema header, Nats-Msg-Id = messageId(event). */
export async function publish(nc: NatsConnection, n: Names, recs: StreamRecord[], partitions = 1): Promise<number> {
  const js = jetstream(nc);
  let seq = 0;
  for (const r of recs) {
    if (r.kind !== 'usage') continue;
    const h = natsHeaders();
    h.set(SCHEMA_FINGERPRINT_HEADER, STREAM_SCHEMA_FINGERPRINT);
    const ack = await js.publish(n.eventSubject(r.usage.deployment_id, 'usage', partitions), encodeStreamRecord(r), { msgID: messageId(r.usage), headers: h });
    seq = ack.seq;
  }
  return seq;
}

export async function waitFor<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The highest lane checkpoint of the enforcer (one partition: every new event is in one lane). */
export async function checkpoint(pool: pg.Pool): Promise<number> {
  const r = await pool.query(`select max(last_seq) as last_seq from consumer_checkpoint where consumer = 'enforcer'`);
  return Number(r.rows[0]?.last_seq ?? 0);
}

/** Every message of the decisions stream (the control subjects). */
export async function controlMessages(nc: NatsConnection, n: Names): Promise<PolicyDecision[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(n.decisionsStream);
  const out: PolicyDecision[] = [];
  for (let s = info.state.first_seq; s <= info.state.last_seq && info.state.messages > 0; s++) {
    const m = await jsm.streams.getMessage(n.decisionsStream, { seq: s }).catch(() => null);
    if (m) out.push(m.json<PolicyDecision>());
  }
  return out;
}

export async function alertCodes(pool: pg.Pool, dep: string): Promise<string[]> {
  return (await pool.query('select code from alert where deployment_id = $1 order by created_at, code', [dep])).rows.map((r) => r.code);
}
