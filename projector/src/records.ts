import { attributionInstant, type PriceBook, type StreamRecord } from '@kaching/contracts';

/** Columns of the per-batch staging table and their types: one row per stream message (usage or job_status). */
const STAGE_SPEC = [
  ['seq', 'bigint not null'], ['kind', 'text not null'], ['deployment_id', 'uuid not null'], ['correlation_id', 'text not null'],
  ['org_id', 'uuid not null'], ['job_id', 'uuid not null'], ['agent_id', 'uuid not null'], ['agent_type', 'text not null'],
  ['agent_version', 'text'], ['node_id', 'uuid not null'], ['hostname', 'text not null'], ['hw_class', 'text'], ['ucxl_addr', 'text'],
  ['started_at', 'timestamptz not null'], ['ended_at', 'timestamptz'], ['status', 'text not null'], ['observed_at', 'timestamptz'],
  ['received_at', 'timestamptz not null'], ['meta', 'jsonb'], ['flags', 'jsonb'], ['cpu_seconds', 'numeric'], ['gpu_seconds', 'numeric'],
  ['ram_mb_peak', 'numeric'], ['disk_io_mb', 'numeric'], ['net_in_mb', 'numeric'], ['net_out_mb', 'numeric'], ['context_reads', 'bigint'],
  ['context_writes', 'bigint'], ['context_bytes_read', 'bigint'], ['context_bytes_written', 'bigint'], ['model_name', 'text'],
  ['provider', 'text'], ['model_tokens_in', 'bigint'], ['model_tokens_out', 'bigint'], ['model_tokens_cached_in', 'bigint'],
  ['model_tokens_reasoning', 'bigint'], ['revision', 'text'], ['model_tokens_cache_write', 'bigint'], ['cost_micro_usd', 'bigint'],
  ['price_version', 'integer'], ['tags', 'jsonb'],
] as const;

export type StageColumn = (typeof STAGE_SPEC)[number][0];
export const STAGE_COLUMNS: readonly StageColumn[] = STAGE_SPEC.map(([c]) => c);
const STAGE_TYPES = new Map<string, string>(STAGE_SPEC);

/** `create ... (<columns with their types>)` for a staging table holding `columns`. */
export function stageColumnsDdl(columns: readonly StageColumn[]): string {
  return `(${columns.map((c) => `${c} ${STAGE_TYPES.get(c)}`).join(', ')})`;
}

export const STAGE_DDL = `create temp table if not exists stg_events ${stageColumnsDdl(STAGE_COLUMNS)} on commit delete rows`;

export type StageValue = string | number | null;

/** One decoded message with the facts projections need. */
export interface Decoded {
  seq: number;
  record: StreamRecord;
  /** contracts.revisionKey() of a usage event; null for job_status. */
  revision: string | null;
  /** Set by priceDecoded: the event's cost at its attribution instant; null = its model has no price yet. */
  cost?: { microUsd: bigint; version: number } | null;
}

/** Prices each usage event with a model (cost at its attribution instant) with the given book. */
export function priceDecoded(batch: (Decoded | null)[], book: PriceBook): void {
  for (const d of batch) {
    if (!d || d.record.kind !== 'usage' || !d.record.usage.llm) continue;
    const e = d.record.usage;
    d.cost = book.cost(e.llm!, attributionInstant(e.job), { gpu_seconds: e.metrics.gpu_seconds, cpu_seconds: e.metrics.cpu_seconds });
  }
}

const costText = (d: Decoded): string | null => (d.cost ? d.cost.microUsd.toString() : null);
const tagsText = (tags: Record<string, string> | null | undefined): string | null => (tags && Object.keys(tags).length ? JSON.stringify(tags) : null);

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
      e.llm?.tokens_cached_in ?? 0, e.llm?.tokens_reasoning ?? 0, d.revision, e.llm?.tokens_cache_write ?? 0,
      costText(d), d.cost?.version ?? null, tagsText(e.tags),
    ];
  }
  const e = r.job_status;
  return [
    d.seq, 'job_status', e.deployment_id, e.job.correlation_id, r.ingest.org_id, e.job.job_id, e.agent.agent_id,
    e.agent.agent_type, e.agent.version ?? null, e.node.node_id, e.node.hostname, e.node.hw_class ?? null,
    e.job.ucxl_addr ?? null, e.job.started_at, null, e.job.status, e.observed_at, r.ingest.received_at,
    '{}', flags, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
    null, null, null, null,
  ];
}

/**
 * The replay's staging rows for one projection: raw needs every column; rollups and concurrency read a
 * few (rollups no heartbeats), and staging only those saves most of the bulk load's text building (no JSON, for concurrency
 * no numbers at all) and Postgres's COPY parsing. Each list covers what its build step reads.
 */
export const REBUILD_STAGE: Record<'rollups' | 'concurrency', { columns: readonly StageColumn[]; row(d: Decoded): StageValue[] | null }> = {
  rollups: {
    columns: ['seq', 'kind', 'deployment_id', 'correlation_id', 'org_id', 'agent_id', 'agent_type', 'node_id', 'started_at', 'ended_at',
      'status', 'cpu_seconds', 'gpu_seconds', 'ram_mb_peak', 'disk_io_mb', 'net_in_mb', 'net_out_mb', 'context_reads', 'context_writes',
      'context_bytes_read', 'context_bytes_written', 'model_tokens_in', 'model_tokens_out', 'revision', 'model_name', 'provider',
      'model_tokens_cached_in', 'model_tokens_reasoning', 'model_tokens_cache_write', 'cost_micro_usd', 'price_version', 'tags'],
    row(d) {
      const r = d.record;
      if (r.kind !== 'usage') return null; // rollups count finished and revised jobs only; heartbeats change nothing
      const e = r.usage;
      const m = e.metrics;
      return [d.seq, 'usage', e.deployment_id, e.job.correlation_id, r.ingest.org_id, e.agent.agent_id, e.agent.agent_type,
        e.node.node_id, e.job.started_at, e.job.ended_at ?? null, e.job.status, m.cpu_seconds, m.gpu_seconds, m.ram_mb_peak,
        m.disk_io_mb, m.net_in_mb, m.net_out_mb, m.context_reads, m.context_writes, m.context_bytes_read, m.context_bytes_written,
        e.llm?.tokens_in ?? 0, e.llm?.tokens_out ?? 0, d.revision, e.llm?.model_name ?? null, e.llm?.provider ?? null,
        e.llm?.tokens_cached_in ?? 0, e.llm?.tokens_reasoning ?? 0, e.llm?.tokens_cache_write ?? 0, costText(d), d.cost?.version ?? null, tagsText(e.tags)];
    },
  },
  concurrency: {
    columns: ['seq', 'kind', 'deployment_id', 'correlation_id', 'org_id', 'started_at', 'ended_at', 'status', 'observed_at', 'revision'],
    row(d) {
      const r = d.record;
      if (r.kind !== 'usage') {
        const e = r.job_status;
        return [d.seq, 'job_status', e.deployment_id, e.job.correlation_id, r.ingest.org_id, e.job.started_at, null, e.job.status,
          e.observed_at, null];
      }
      const e = r.usage;
      return [d.seq, 'usage', e.deployment_id, e.job.correlation_id, r.ingest.org_id, e.job.started_at, e.job.ended_at ?? null,
        e.job.status, null, d.revision];
    },
  },
};

/** Postgres COPY text format: tab-separated, \N for null, backslash escapes. */
export function copyField(v: StageValue): string {
  if (v === null || v === undefined) return '\\N';
  if (typeof v === 'number') return numberText(v);
  // Most values need no escaping: test before building a new string (COPY text is on the replay hot path).
  return NEEDS_ESCAPE.test(v) ? v.replace(ESCAPES, escapeChar) : v;
}

const NEEDS_ESCAPE = /[\\\t\n\r]/;
const ESCAPES = /[\\\t\n\r]/g;
const escapeChar = (c: string): string => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r');

/** Shortest round-trip text of a double (never needs escaping); NaN/Infinity never reach the stream (schema-validated). */
function numberText(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`non-finite metric ${n}`);
  return String(n);
}

export function copyLine(row: StageValue[]): string {
  // join() builds one flat string; `+=` per field built a rope that cost twice as much (measured).
  return row.map(copyField).join('\t') + '\n';
}

/**
 * The revision that wins among candidates of one identity: highest revision key (byte order, as
 * Postgres `collate "C"` compares), ties broken by the earlier stream sequence. Mirrors the SQL merges.
 */
export function pickWinner<T extends { revision: string; seq: number }>(rows: T[]): T | undefined {
  let best: T | undefined;
  for (const r of rows) if (!best || beats(r, best)) best = r;
  return best;
}

/** Whether revision `a` wins over `b` (see pickWinner). */
export function beats(a: { revision: string | null; seq: number }, b: { revision: string | null; seq: number }): boolean {
  const c = byteCompare(a.revision ?? '', b.revision ?? '');
  return c > 0 || (c === 0 && a.seq < b.seq);
}

export function byteCompare(a: string, b: string): number {
  // Revision keys are ASCII, where code-unit order is byte order; only other text needs the UTF-8 bytes.
  if (ASCII.test(a) && ASCII.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

const ASCII = /^[\x00-\x7f]*$/;

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

/**
 * What a batch stages: per usage identity only its winning revision (pickWinner), every job-status event.
 * Each projection is a function of the best revision per identity, so a revision another one in the same
 * batch beats cannot change the outcome; dropping it here saves Postgres a sort and a copy of the batch.
 */
export function stagedRows(batch: Decoded[]): Decoded[] {
  const best = new Map<string, Decoded>();
  const out: Decoded[] = [];
  for (const d of batch) {
    if (d.record.kind !== 'usage') {
      out.push(d);
      continue;
    }
    const key = `${d.record.usage.deployment_id}\u0000${d.record.usage.job.correlation_id}`;
    const cur = best.get(key);
    if (!cur || beats(d, cur)) best.set(key, d);
  }
  for (const d of best.values()) out.push(d);
  return out;
}

/** First/last sighting of one node or agent in a batch, with the attributes of its latest message. */
export interface Sighting {
  deploymentId: string;
  id: string;
  orgId: string;
  firstSeen: string;
  lastSeen: string;
  /** seq of the message the attributes come from (latest received_at, then highest seq). */
  seq: number;
  hostname: string;
  hwClass: string | null;
  nodeId: string;
  agentType: string;
  version: string | null;
}

/** Nodes and agents a batch mentions (every message, winners or not), aggregated like the SQL it replaced. */
export function sightings(batch: Decoded[]): { nodes: Sighting[]; agents: Sighting[] } {
  const seen = new Sightings();
  for (const d of batch) seen.add(d);
  return seen.result();
}

/** Sightings gathered message by message (a rebuild sees the whole stream, never a batch at once). */
export class Sightings {
  private readonly nodes = new Map<string, Sighting>();
  private readonly agents = new Map<string, Sighting>();

  add(d: Decoded): void {
    const e = d.record.kind === 'usage' ? d.record.usage : d.record.job_status;
    see(this.nodes, e.node.node_id, d);
    see(this.agents, e.agent.agent_id, d);
  }

  result(): { nodes: Sighting[]; agents: Sighting[] } {
    return { nodes: [...this.nodes.values()], agents: [...this.agents.values()] };
  }
}

function see(m: Map<string, Sighting>, id: string, d: Decoded): void {
  const r = d.record;
  const e = r.kind === 'usage' ? r.usage : r.job_status;
  const at = r.ingest.received_at;
  const key = `${e.deployment_id}\u0000${id}`;
  const cur = m.get(key);
  if (!cur) {
    m.set(key, {
      deploymentId: e.deployment_id, id, orgId: r.ingest.org_id, firstSeen: at, lastSeen: at, seq: d.seq,
      hostname: e.node.hostname, hwClass: e.node.hw_class ?? null, nodeId: e.node.node_id,
      agentType: e.agent.agent_type, version: e.agent.version ?? null,
    });
    return;
  }
  const c = compareInstants(at, cur.lastSeen);
  if (compareInstants(at, cur.firstSeen) < 0) cur.firstSeen = at;
  if (c > 0 || (c === 0 && d.seq > cur.seq)) {
    Object.assign(cur, {
      lastSeen: at, orgId: r.ingest.org_id, seq: d.seq, hostname: e.node.hostname, hwClass: e.node.hw_class ?? null,
      nodeId: e.node.node_id, agentType: e.agent.agent_type, version: e.agent.version ?? null,
    });
  }
}

/** Orders two RFC 3339 instants; ingest writes toISOString() (UTC, fixed width), which compares as text. */
function compareInstants(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 24 && b.length === 24 && a.endsWith('Z') && b.endsWith('Z')) return a < b ? -1 : 1;
  return Date.parse(a) - Date.parse(b);
}
