import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { DuckDBInstance, DuckDBTimestampTZValue, LIST, VARCHAR, type DuckDBAppender, type DuckDBConnection } from '@duckdb/node-api';
import type { JsMsg } from '@nats-io/jetstream';
import { SCHEMA_FINGERPRINT_HEADER, decodeStreamRecord, type StreamRecord } from '@kaching/contracts';

/** One archived message: the stored bytes exactly, plus what ingest recorded and columns to query. */
export interface ArchiveRow {
  seq: number;
  subject: string;
  lane: string;
  /** JetStream's append time (ms). */
  streamTime: number;
  headers: Record<string, string>;
  record: Uint8Array;
  /** Decoded when the segment is written (an open segment holds only bytes); null: did not decode. */
  decoded?: StreamRecord | null;
}

type ColType = 'BIGINT' | 'INTEGER' | 'DOUBLE' | 'VARCHAR' | 'BLOB' | 'TIMESTAMPTZ' | 'VARCHAR[]';
type Val = number | string | Uint8Array | string[] | null | undefined;
interface Column {
  name: string;
  type: ColType;
  doc: string;
  get(r: ArchiveRow, u: UsageView): Val;
}

interface UsageView {
  rec: StreamRecord | null;
  ev: { deployment_id: string; agent: { agent_id: string; agent_type: string }; node: { node_id: string }; job: { job_id: string; correlation_id: string; status: string; started_at: string; ucxl_addr?: string }; sig: { key_id: string; signature: string } } | null;
  usage: Extract<StreamRecord, { kind: 'usage' }>['usage'] | null;
}

const ms = (iso: string | undefined) => (iso ? Date.parse(iso) : null);

/** The Parquet schema, in column order (README "Parquet schema" lists the same). */
export const COLUMNS: Column[] = [
  { name: 'seq', type: 'BIGINT', doc: 'events-stream sequence (unique, increasing within a lane)', get: (r) => r.seq },
  { name: 'subject', type: 'VARCHAR', doc: 'NATS subject the event was appended on', get: (r) => r.subject },
  { name: 'lane', type: 'VARCHAR', doc: 'consumer lane (partition) the segment belongs to', get: (r) => r.lane },
  { name: 'stream_time', type: 'TIMESTAMPTZ', doc: 'JetStream append time', get: (r) => r.streamTime },
  { name: 'msg_id', type: 'VARCHAR', doc: 'Nats-Msg-Id header (dedupe id)', get: (r) => r.headers['Nats-Msg-Id'] ?? null },
  { name: 'schema_fingerprint', type: 'VARCHAR', doc: 'Kaching-Schema header: Avro schema fingerprint of `record`', get: (r) => r.headers[SCHEMA_FINGERPRINT_HEADER] ?? null },
  { name: 'headers', type: 'VARCHAR', doc: 'every message header, JSON object', get: (r) => JSON.stringify(r.headers) },
  { name: 'record', type: 'BLOB', doc: 'the message body exactly as stored (Avro StreamRecord: event + ingest facts)', get: (r) => r.record },
  { name: 'kind', type: 'VARCHAR', doc: "'usage', 'job_status' ('undecodable' if the body did not decode)", get: (_r, u) => u.rec?.kind ?? 'undecodable' },
  { name: 'event_json', type: 'VARCHAR', doc: 'the event as accepted (what the agent signed, after redaction), JSON', get: (_r, u) => (u.ev ? JSON.stringify(u.ev) : null) },
  { name: 'key_id', type: 'VARCHAR', doc: 'agent signing key id', get: (r, u) => u.rec?.ingest.batch?.key_id ?? u.ev?.sig.key_id ?? null },
  { name: 'signature', type: 'VARCHAR', doc: "base64 Ed25519 signature over the event (for a batch-signed event: the batch's, see batch_proof)", get: (_r, u) => u.rec?.ingest.batch?.signature ?? u.ev?.sig.signature ?? null },
  { name: 'batch_proof', type: 'VARCHAR', doc: 'Merkle inclusion proof of a batch-signed event, JSON (null: signed alone)', get: (_r, u) => (u.rec?.ingest.batch ? JSON.stringify(u.rec.ingest.batch) : null) },
  { name: 'received_at', type: 'TIMESTAMPTZ', doc: 'ingest clock when accepted', get: (_r, u) => ms(u.rec?.ingest.received_at) },
  { name: 'org_id', type: 'VARCHAR', doc: 'organisation (from the ingest token)', get: (_r, u) => u.rec?.ingest.org_id ?? null },
  { name: 'clock_skew_ms', type: 'BIGINT', doc: 'accepted ended_at-before-started_at skew', get: (_r, u) => u.rec?.ingest.clock_skew_ms ?? null },
  { name: 'flags', type: 'VARCHAR[]', doc: "ingest markers ('clock_skew', 'redacted', 'unsigned_otlp', ...)", get: (_r, u) => u.rec?.ingest.flags ?? null },
  { name: 'redacted_segments', type: 'VARCHAR[]', doc: 'ucxl_addr segment names redaction replaced', get: (_r, u) => u.rec?.ingest.redacted_segments ?? null },
  { name: 'original_sha256', type: 'VARCHAR', doc: "hex SHA-256 of the agent's signing bytes when redaction changed the event", get: (_r, u) => u.rec?.ingest.original_sha256 ?? null },
  { name: 'deployment_id', type: 'VARCHAR', doc: '', get: (_r, u) => u.ev?.deployment_id ?? null },
  { name: 'agent_id', type: 'VARCHAR', doc: '', get: (_r, u) => u.ev?.agent.agent_id ?? null },
  { name: 'agent_type', type: 'VARCHAR', doc: '', get: (_r, u) => u.ev?.agent.agent_type ?? null },
  { name: 'node_id', type: 'VARCHAR', doc: '', get: (_r, u) => u.ev?.node.node_id ?? null },
  { name: 'job_id', type: 'VARCHAR', doc: '', get: (_r, u) => u.ev?.job.job_id ?? null },
  { name: 'correlation_id', type: 'VARCHAR', doc: '', get: (_r, u) => u.ev?.job.correlation_id ?? null },
  { name: 'status', type: 'VARCHAR', doc: 'job status', get: (_r, u) => u.ev?.job.status ?? null },
  { name: 'started_at', type: 'TIMESTAMPTZ', doc: '', get: (_r, u) => ms(u.ev?.job.started_at) },
  { name: 'ended_at', type: 'TIMESTAMPTZ', doc: 'usage only', get: (_r, u) => ms(u.usage?.job.ended_at) },
  ...(['cpu_seconds', 'gpu_seconds', 'ram_mb_peak', 'disk_io_mb', 'net_in_mb', 'net_out_mb'] as const).map(
    (k): Column => ({ name: k, type: 'DOUBLE', doc: 'usage metric', get: (_r, u) => u.usage?.metrics[k] ?? null }),
  ),
  ...(['context_reads', 'context_writes', 'context_bytes_read', 'context_bytes_written'] as const).map(
    (k): Column => ({ name: k, type: 'BIGINT', doc: 'usage metric', get: (_r, u) => u.usage?.metrics[k] ?? null }),
  ),
  { name: 'model_name', type: 'VARCHAR', doc: '', get: (_r, u) => u.usage?.llm?.model_name ?? null },
  { name: 'provider', type: 'VARCHAR', doc: '', get: (_r, u) => u.usage?.llm?.provider ?? null },
  ...(['tokens_in', 'tokens_out', 'tokens_cached_in', 'tokens_cache_write', 'tokens_reasoning'] as const).map(
    (k): Column => ({ name: k, type: 'BIGINT', doc: 'model tokens (OpenTelemetry GenAI counting)', get: (_r, u) => u.usage?.llm?.[k] ?? null }),
  ),
  { name: 'tags', type: 'VARCHAR', doc: 'attribution tags, JSON object', get: (_r, u) => (u.usage?.tags ? JSON.stringify(u.usage.tags) : null) },
];

export function rowOf(m: JsMsg, lane: string): ArchiveRow {
  const headers: Record<string, string> = {};
  if (m.headers) for (const [k, v] of m.headers) headers[k] = v.join(',');
  return { seq: m.info.streamSequence, subject: m.subject, lane, streamTime: Number(BigInt(m.info.timestampNanos) / 1_000_000n), headers, record: new Uint8Array(m.data) };
}

function decoded(r: ArchiveRow): StreamRecord | null {
  if (r.decoded !== undefined) return r.decoded;
  try {
    return decodeStreamRecord(r.record, r.headers[SCHEMA_FINGERPRINT_HEADER] || undefined);
  } catch {
    return null; // kept as bytes: the archive holds what the stream held
  }
}

function view(r: ArchiveRow): UsageView {
  const rec = decoded(r);
  if (!rec) return { rec, ev: null, usage: null };
  return { rec, ev: (rec.kind === 'usage' ? rec.usage : rec.job_status) as UsageView['ev'], usage: rec.kind === 'usage' ? rec.usage : null };
}

const LIST_VARCHAR = LIST(VARCHAR);

function append(a: DuckDBAppender, type: ColType, v: Val): void {
  if (v === null || v === undefined) return a.appendNull();
  switch (type) {
    case 'BIGINT': return a.appendBigInt(BigInt(Math.trunc(v as number)));
    case 'INTEGER': return a.appendInteger(v as number);
    case 'DOUBLE': return a.appendDouble(v as number);
    case 'VARCHAR': return a.appendVarchar(v as string);
    case 'BLOB': return a.appendBlob(v as Uint8Array);
    case 'TIMESTAMPTZ': return Number.isFinite(v) ? a.appendTimestampTZ(new DuckDBTimestampTZValue(BigInt(v as number) * 1000n)) : a.appendNull();
    case 'VARCHAR[]': return a.appendList(v as string[], LIST_VARCHAR);
  }
}

export interface WrittenSegment {
  path: string;
  bytes: number;
  sha256: string;
  firstSeq: number;
  lastSeq: number;
  count: number;
  oldestReceivedAt: string | null;
  newestReceivedAt: string | null;
}

/** Writes and reads Parquet through one in-process DuckDB (calls run one at a time). */
export class ParquetCodec {
  private conn: Promise<DuckDBConnection> | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private n = 0;

  private connection(): Promise<DuckDBConnection> {
    this.conn ??= DuckDBInstance.create(':memory:', { threads: '1' }).then((i) => i.connect());
    return this.conn;
  }

  private serial<T>(fn: (c: DuckDBConnection) => Promise<T>): Promise<T> {
    const p = this.chain.then(async () => fn(await this.connection()));
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Rows (in sequence order) to a zstd Parquet file at path; returns its size and SHA-256. */
  write(rows: ArchiveRow[], path: string): Promise<WrittenSegment> {
    return this.serial(async (c) => {
      const table = `seg_${++this.n}`;
      const received: string[] = [];
      await c.run(`create table ${table} (${COLUMNS.map((x) => `"${x.name}" ${x.type}`).join(', ')})`);
      try {
        const a = await c.createAppender(table);
        for (const r of rows) {
          const u = view(r);
          if (u.rec) received.push(u.rec.ingest.received_at);
          for (const col of COLUMNS) append(a, col.type, col.get(r, u));
          a.endRow();
        }
        a.closeSync();
        await c.run(`copy ${table} to '${path.replace(/'/g, "''")}' (format parquet, compression zstd, row_group_size 100000)`);
      } finally {
        await c.run(`drop table if exists ${table}`);
      }
      const bytes = await readFile(path);
      received.sort();
      return {
        path,
        bytes: bytes.length,
        sha256: createHash('sha256').update(bytes).digest('hex'),
        firstSeq: rows[0]!.seq,
        lastSeq: rows[rows.length - 1]!.seq,
        count: rows.length,
        oldestReceivedAt: received[0] ?? null,
        newestReceivedAt: received[received.length - 1] ?? null,
      };
    });
  }

  /** seq, record and schema fingerprint of every row of a segment file, in file order. */
  readRecords(path: string): Promise<{ seq: number; record: Uint8Array; fingerprint: string | null }[]> {
    return this.serial(async (c) => {
      const r = await c.runAndReadAll(`select seq, record, schema_fingerprint from read_parquet('${path.replace(/'/g, "''")}')`);
      return r.getRows().map((x) => ({
        seq: Number(x[0] as bigint),
        record: (x[1] as { bytes: Uint8Array }).bytes,
        fingerprint: (x[2] as string | null) ?? null,
      }));
    });
  }

  async close(): Promise<void> {
    const c = this.conn;
    this.conn = null;
    if (c) (await c.catch(() => null))?.closeSync();
  }
}

export async function removeQuietly(path: string): Promise<void> {
  await rm(path, { force: true }).catch(() => undefined);
}
