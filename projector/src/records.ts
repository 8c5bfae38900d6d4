import type { StreamRecord } from '@kaching/contracts';

/** Columns of the per-batch staging table: one row per stream message (usage or job_status). */
export const STAGE_COLUMNS = [
  'seq', 'kind', 'deployment_id', 'correlation_id', 'org_id', 'job_id', 'agent_id', 'agent_type', 'agent_version',
  'node_id', 'hostname', 'hw_class', 'ucxl_addr', 'started_at', 'ended_at', 'status', 'observed_at', 'received_at',
  'meta', 'flags', 'cpu_seconds', 'gpu_seconds', 'ram_mb_peak', 'disk_io_mb', 'net_in_mb', 'net_out_mb',
  'context_reads', 'context_writes', 'context_bytes_read', 'context_bytes_written', 'model_name', 'provider',
  'model_tokens_in', 'model_tokens_out', 'model_tokens_cached_in', 'model_tokens_reasoning', 'revision',
] as const;

export const STAGE_DDL = `create temp table if not exists stg_events (
  seq bigint not null, kind text not null, deployment_id uuid not null, correlation_id text not null,
  org_id uuid not null, job_id uuid not null, agent_id uuid not null, agent_type text not null, agent_version text,
  node_id uuid not null, hostname text not null, hw_class text, ucxl_addr text, started_at timestamptz not null,
  ended_at timestamptz, status text not null, observed_at timestamptz, received_at timestamptz not null,
  meta jsonb, flags jsonb, cpu_seconds numeric, gpu_seconds numeric, ram_mb_peak numeric, disk_io_mb numeric,
  net_in_mb numeric, net_out_mb numeric, context_reads bigint, context_writes bigint, context_bytes_read bigint,
  context_bytes_written bigint, model_name text, provider text, model_tokens_in bigint, model_tokens_out bigint,
  model_tokens_cached_in bigint, model_tokens_reasoning bigint, revision text
) on commit delete rows`;

export type StageValue = string | number | null;

/** One decoded message with the facts projections need. */
export interface Decoded {
  seq: number;
  record: StreamRecord;
  /** contracts.revisionKey() of a usage event; null for job_status. */
  revision: string | null;
}

/** Maps a stream record to a staging row (order of STAGE_COLUMNS). Numbers stay as JS text: SQL does the math. */
export function stageRow(d: Decoded): StageValue[] {
  const r = d.record;
  const flags = JSON.stringify({
    flags: r.ingest.flags,
    clock_skew_ms: r.ingest.clock_skew_ms,
    redacted_segments: r.ingest.redacted_segments,
  });
  if (r.kind === 'usage') {
    const e = r.usage;
    const m = e.metrics;
    return [
      d.seq, 'usage', e.deployment_id, e.job.correlation_id, r.ingest.org_id, e.job.job_id, e.agent.agent_id,
      e.agent.agent_type, e.agent.version ?? null, e.node.node_id, e.node.hostname, e.node.hw_class ?? null,
      e.job.ucxl_addr, e.job.started_at, e.job.ended_at ?? null, e.job.status, null, r.ingest.received_at,
      JSON.stringify(e.job.meta ?? {}), flags, m.cpu_seconds, m.gpu_seconds, m.ram_mb_peak, m.disk_io_mb,
      m.net_in_mb, m.net_out_mb, m.context_reads, m.context_writes, m.context_bytes_read, m.context_bytes_written,
      e.llm?.model_name ?? null, e.llm?.provider ?? null, e.llm?.tokens_in ?? 0, e.llm?.tokens_out ?? 0,
      e.llm?.tokens_cached_in ?? 0, e.llm?.tokens_reasoning ?? 0, d.revision,
    ];
  }
  const e = r.job_status;
  return [
    d.seq, 'job_status', e.deployment_id, e.job.correlation_id, r.ingest.org_id, e.job.job_id, e.agent.agent_id,
    e.agent.agent_type, e.agent.version ?? null, e.node.node_id, e.node.hostname, e.node.hw_class ?? null,
    e.job.ucxl_addr ?? null, e.job.started_at, null, e.job.status, e.observed_at, r.ingest.received_at,
    '{}', flags, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
  ];
}

/** Postgres COPY text format: tab-separated, \N for null, backslash escapes. */
export function copyField(v: StageValue): string {
  if (v === null || v === undefined) return '\\N';
  const s = typeof v === 'number' ? numberText(v) : v;
  return s.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

/** Shortest round-trip text of a double; NaN/Infinity never reach the stream (schema-validated). */
function numberText(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`non-finite metric ${n}`);
  return String(n);
}

export function copyLine(row: StageValue[]): string {
  return row.map(copyField).join('\t') + '\n';
}

/**
 * The revision that wins among candidates of one identity: highest revision key (byte order, as
 * Postgres `collate "C"` compares), ties broken by the later stream sequence. Mirrors the SQL merges.
 */
export function pickWinner<T extends { revision: string; seq: number }>(rows: T[]): T | undefined {
  let best: T | undefined;
  for (const r of rows) {
    if (!best || byteCompare(r.revision, best.revision) > 0 || (r.revision === best.revision && r.seq < best.seq)) best = r;
  }
  return best;
}

export function byteCompare(a: string, b: string): number {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return Buffer.compare(x, y);
}

/** Hourly bucket of a job: the UTC hour of ended_at, or of started_at while it has no end. */
export function hourBucket(startedAt: string, endedAt: string | null | undefined): string {
  const t = new Date(endedAt ?? startedAt);
  t.setUTCMinutes(0, 0, 0);
  return t.toISOString();
}

/** Daily bucket: the UTC day of the hourly bucket. */
export function dayBucket(startedAt: string, endedAt: string | null | undefined): string {
  return hourBucket(startedAt, endedAt).slice(0, 10);
}

/** Mirrors SQL projector_job_end(): the last instant a job counts as running. */
export function jobEnd(startedAt: string, endedAt: string | null, status: string, heartbeatAt: string | null): string {
  const c = [startedAt, endedAt, status === 'running' ? heartbeatAt : null].filter((x): x is string => x !== null);
  return new Date(Math.max(...c.map((x) => Date.parse(x)))).toISOString();
}

/** Minutes (UTC, ISO) a job occupies: [minute(start), minute(end)] inclusive. */
export function minuteRange(startedAt: string, end: string): [string, string] {
  const a = new Date(startedAt);
  a.setUTCSeconds(0, 0);
  const b = new Date(end);
  b.setUTCSeconds(0, 0);
  return [a.toISOString(), b.toISOString()];
}

/** Per-minute change of concurrency when an identity moves from interval `old` to `next` (either may be absent). */
export function intervalDelta(old: [string, string] | null, next: [string, string] | null): Map<string, number> {
  const d = new Map<string, number>();
  const add = (r: [string, string] | null, sign: number) => {
    if (!r) return;
    for (let t = Date.parse(r[0]); t <= Date.parse(r[1]); t += 60_000) {
      const k = new Date(t).toISOString();
      const v = (d.get(k) ?? 0) + sign;
      if (v === 0) d.delete(k);
      else d.set(k, v);
    }
  };
  add(old, -1);
  add(next, +1);
  return d;
}
