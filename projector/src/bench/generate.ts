import type { JetStreamClient } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import {
  encodeStreamRecord,
  messageId,
  SCHEMA_FINGERPRINT_HEADER,
  STREAM_SCHEMA_FINGERPRINT,
  type JobStatusEvent,
  type Names,
  type StreamRecord,
  type UsageEvent,
} from '@kaching/contracts';

export interface GenerateOptions {
  deploymentId: string;
  orgId: string;
  /** Distinct jobs (correlation ids); total events come out ~1.3x this. */
  jobs: number;
  agents?: number;
  nodes?: number;
  /** Share of messages re-published as exact duplicates with a fresh msg id (beyond-window dups). */
  dupRate?: number;
  /** Share of jobs reported twice: a running revision, then the final one. */
  revisionRate?: number;
  /** Share of jobs with job-status heartbeats. */
  heartbeatRate?: number;
  /** Share of jobs with accepted clock skew (ended_at before started_at). */
  skewRate?: number;
  /** Jobs left running (only running revisions + heartbeats). */
  runningRate?: number;
  seed?: number;
  /** Jobs start within [base, base + spanHours). */
  base?: Date;
  spanHours?: number;
  /** Partition count the subjects are made for (default 1); 0 writes the legacy 4-token subjects. */
  partitions?: number;
}

export interface GeneratedMessage {
  subject: string;
  data: Uint8Array;
  msgId: string;
  correlationId: string;
}

/** Deterministic PRNG (mulberry32) so a failing run can be reproduced. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const uuidFrom = (rnd: () => number) =>
  'xxxxxxxx-xxxx-4xxx-8xxx-xxxxxxxxxxxx'.replace(/x/g, () => Math.floor(rnd() * 16).toString(16));

/**
 * A synthetic events stream: revisions, out-of-order arrival (local shuffles put some final reports
 * before their running revision), clock skew, heartbeats and exact duplicates re-sent with a new
 * msg id (so they DO reach the stream, as duplicates older than the duplicate window would).
 */
export function generateMessages(n: Names, o: GenerateOptions): GeneratedMessage[] {
  const rnd = prng(o.seed ?? 42);
  const agents = Array.from({ length: o.agents ?? 20 }, (_, i) => ({
    agent_id: uuidFrom(rnd), agent_type: ['coder', 'reviewer', 'planner'][i % 3]!, version: '1.0.0' }));
  const nodes = Array.from({ length: o.nodes ?? 5 }, (_, i) => ({ node_id: uuidFrom(rnd), hostname: `node-${i}`, hw_class: 'gpu-a' }));
  const base = (o.base ?? new Date(Date.now() - 2 * 86_400_000)).getTime();
  const span = (o.spanHours ?? 48) * 3_600_000;
  const received = new Date().toISOString();
  const ingest = (skew = 0) => ({ received_at: received, org_id: o.orgId, clock_skew_ms: skew, redacted_segments: [], flags: skew ? ['clock_skew'] : [] });
  const sig = { algo: 'ed25519' as const, key_id: 'bench', signature: 'AAAA' };
  const out: GeneratedMessage[] = [];
  const push = (rec: StreamRecord, correlationId: string) => {
    const ev = rec.kind === 'usage' ? rec.usage : rec.job_status;
    out.push({ subject: o.partitions === 0 ? n.legacyEventSubject(o.deploymentId, rec.kind) : n.eventSubject(o.deploymentId, rec.kind, o.partitions ?? 1), data: encodeStreamRecord(rec), msgId: messageId(ev), correlationId });
  };
  const dec = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;
  for (let i = 0; i < o.jobs; i++) {
    const agent = agents[Math.floor(rnd() * agents.length)]!;
    const node = nodes[Math.floor(rnd() * nodes.length)]!;
    const correlation_id = `job-${o.seed ?? 42}-${i}`;
    const start = base + Math.floor(rnd() * span);
    const durMs = Math.floor(rnd() * 40 * 60_000);
    const skew = rnd() < (o.skewRate ?? 0.02) ? 2000 + Math.floor(rnd() * 3000) : 0;
    const running = rnd() < (o.runningRate ?? 0.01);
    const end = skew ? start - skew : start + durMs;
    const job = { job_id: uuidFrom(rnd), correlation_id, ucxl_addr: `ucxl://agent/${agent.agent_type}/task/${i}`, started_at: new Date(start).toISOString() };
    const metrics = (f: number) => ({
      cpu_seconds: dec(rnd() * 500 * f, 6), gpu_seconds: dec(rnd() * 100 * f, 6), ram_mb_peak: dec(rnd() * 16000 * f, 3),
      disk_io_mb: dec(rnd() * 900 * f, 3), net_in_mb: dec(rnd() * 50 * f, 3), net_out_mb: dec(rnd() * 20 * f, 3),
      context_reads: Math.floor(rnd() * 100 * f), context_writes: Math.floor(rnd() * 40 * f),
      context_bytes_read: Math.floor(rnd() * 1e7 * f), context_bytes_written: Math.floor(rnd() * 1e6 * f),
    });
    const llm = () => ({ model_name: 'llama3.1:70b', provider: 'local', tokens_in: Math.floor(rnd() * 20000), tokens_out: Math.floor(rnd() * 4000) });
    const usage = (status: UsageEvent['job']['status'], ended: number | null, f: number): UsageEvent => ({
      schema: 'kaching.v1.usage', deployment_id: o.deploymentId, agent, node,
      job: { ...job, ...(ended === null ? {} : { ended_at: new Date(ended).toISOString() }), status, meta: { run: String(i) } },
      metrics: metrics(f), llm: llm(), sig,
    });
    const group: StreamRecord[] = [];
    const revised = running || rnd() < (o.revisionRate ?? 0.05);
    if (revised) group.push({ kind: 'usage', ingest: ingest(), usage: usage('running', null, 0.5) });
    if (running || rnd() < (o.heartbeatRate ?? 0.05)) {
      const beats = 1 + Math.floor(rnd() * 3);
      for (let b = 1; b <= beats; b++) {
        const hb: JobStatusEvent = {
          schema: 'kaching.v1.job_status', deployment_id: o.deploymentId, agent, node,
          job: { ...job, status: 'running' },
          observed_at: new Date(start + Math.floor((b / (beats + 1)) * Math.max(durMs, 60_000) * (running ? 3 : 1))).toISOString(), sig,
        };
        group.push({ kind: 'job_status', ingest: ingest(), job_status: hb });
      }
    }
    if (!running) {
      const status = rnd() < 0.85 ? 'succeeded' : rnd() < 0.7 ? 'failed' : 'canceled';
      group.push({ kind: 'usage', ingest: ingest(skew), usage: usage(status, end, 1) });
    }
    // out of order: a third of revised jobs deliver the final report before the running one
    if (revised && group.length > 1 && rnd() < 0.33) group.reverse();
    for (const rec of group) push(rec, correlation_id);
  }
  // shuffle locally (windows of 50) so identities interleave and arrive out of order across batches
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.max(0, i - Math.floor(rnd() * 50));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  // exact duplicates, re-sent later under a different msg id
  const dups = Math.floor(out.length * (o.dupRate ?? 0.1));
  const keyed = out.map((m, idx) => ({ key: idx, m }));
  for (let k = 0; k < dups; k++) {
    const src = Math.floor(rnd() * out.length);
    const m = out[src]!;
    keyed.push({ key: src + 1 + rnd() * out.length, m: { ...m, msgId: `${m.msgId}#dup${k}` } });
  }
  const withDups = keyed.sort((a, b) => a.key - b.key).map((x) => x.m);
  return withDups;
}

/** Publishes with bounded concurrency, each with its msg id and schema header. */
export async function publishMessages(js: JetStreamClient, msgs: GeneratedMessage[], inflight = 1000): Promise<void> {
  let i = 0;
  const worker = async () => {
    while (i < msgs.length) {
      const m = msgs[i++]!;
      const h = headers();
      h.set(SCHEMA_FINGERPRINT_HEADER, STREAM_SCHEMA_FINGERPRINT);
      await js.publish(m.subject, m.data, { msgID: m.msgId, headers: h });
    }
  };
  await Promise.all(Array.from({ length: Math.min(inflight, msgs.length) }, worker));
}
