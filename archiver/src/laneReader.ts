import type { DuckDBDataChunk, DuckDBResult } from '@duckdb/node-api';
import type { ManifestEntry } from './manifest.js';

/** What a replay needs of an archived stream message: its exact bytes and the headers that decode them. */
export interface ArchivedRecord {
  seq: number;
  /** The message body exactly as the stream stored it. */
  data: Uint8Array;
  /** Kaching-Schema header (Avro fingerprint of data). */
  fingerprint: string | undefined;
  /** Nats-Msg-Id header. */
  msgId: string | undefined;
}

/** One archived stream message: its exact bytes and what a reader of the stream would have seen. */
export interface ArchivedMessage extends ArchivedRecord {
  subject: string;
  /** JetStream append time (ms). */
  streamTime: number;
}

/** Columns read: a record (replay) or the whole message (audit: append time; enforcer: subject). */
export const RECORD_COLS = 'seq, record, schema_fingerprint, msg_id';
export const MESSAGE_COLS = `${RECORD_COLS}, subject, epoch_ms(stream_time) as t`;

/** An open read of one segment: a streaming DuckDB result, and what to clean up once it is done (S3 scratch copy). */
export interface SegmentRead {
  result: DuckDBResult;
  release(): Promise<void>;
}

/**
 * The rows of one chunk, read column by column from its vectors (no row materialisation); a record's bytes are
 * the binding's own copy (DuckDB's inline ≤12-byte form is a view: copied).
 */
export function chunkRows(chunk: DuckDBDataChunk, full: boolean): ArchivedMessage[] | ArchivedRecord[] {
  const n = chunk.rowCount;
  const seq = chunk.getColumnVector(0) as unknown as { getItem(i: number): bigint | null };
  const rec = chunk.getColumnVector(1) as unknown as { getItemBytes(i: number): Uint8Array | null };
  const fp = chunk.getColumnVector(2) as unknown as { getItem(i: number): string | null };
  const id = chunk.getColumnVector(3) as unknown as { getItem(i: number): string | null };
  const subject = full ? (chunk.getColumnVector(4) as unknown as { getItem(i: number): string | null }) : null;
  const time = full ? (chunk.getColumnVector(5) as unknown as { getItem(i: number): bigint | null }) : null;
  const out = new Array<ArchivedMessage | ArchivedRecord>(n);
  for (let i = 0; i < n; i++) {
    let data = rec.getItemBytes(i) ?? new Uint8Array(0);
    if (data.length <= 12) data = data.slice();
    const r: ArchivedRecord = { seq: Number(seq.getItem(i)), data, fingerprint: fp.getItem(i) ?? undefined, msgId: id.getItem(i) ?? undefined };
    out[i] = subject ? { ...r, subject: subject.getItem(i) ?? '', streamTime: Number(time!.getItem(i)) } : r;
  }
  return out as ArchivedMessage[] | ArchivedRecord[];
}

/**
 * One lane's archived rows in sequence order, a chunk at a time. The next chunk (or the next segment's first) is
 * read while the caller works on the current one: DuckDB decodes Parquet on a worker thread, so a replay's
 * decoding and Postgres writes overlap it. Segments are read in file order, which the writer keeps increasing
 * by sequence (`kaching archive verify` checks it); a segment that breaks that is refused rather than misread.
 */
export class LaneReader<T extends ArchivedRecord> {
  private min = 0;
  private seg: { entry: ManifestEntry; read: SegmentRead; last: number } | null = null;
  private pending: Promise<T[] | null> | null = null;
  private rows: T[] = [];
  private at = 0;
  private done = false;

  constructor(
    private readonly entries: ManifestEntry[],
    /** Opens a segment's rows from sequence min on (the lane's connection: one read at a time). */
    private readonly open: (e: ManifestEntry, min: number) => Promise<SegmentRead>,
    private readonly full: boolean,
  ) {}

  /** head(min) when the rows read already answer it (most calls: no await per row), else undefined. */
  peek(min: number): T | null | undefined {
    this.min = Math.max(this.min, min);
    while (this.at < this.rows.length && this.rows[this.at]!.seq < this.min) this.at++;
    if (this.at < this.rows.length) return this.rows[this.at]!;
    return this.done ? null : undefined;
  }

  /** The lane's first row at or after min (min never decreases), or null when it has none. */
  async head(min: number): Promise<T | null> {
    this.min = Math.max(this.min, min);
    for (;;) {
      while (this.at < this.rows.length && this.rows[this.at]!.seq < this.min) this.at++;
      if (this.at < this.rows.length) return this.rows[this.at]!;
      if (this.done) return null;
      const p = this.pending ?? this.fetch();
      this.pending = null;
      const batch = await p;
      if (!batch) {
        this.done = true;
        return null;
      }
      this.rows = batch;
      this.at = 0;
      this.pending = this.fetch();
      this.pending.catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.done = true;
    await this.pending?.catch(() => undefined);
    this.pending = null;
    await this.endSegment();
  }

  private async fetch(): Promise<T[] | null> {
    for (;;) {
      if (this.done) return null;
      const s = this.seg;
      // a segment that ends before what the caller asks for next is left unread
      if (s && s.entry.last_seq >= this.min) {
        const chunk = await s.read.result.fetchChunk();
        if (chunk && chunk.rowCount > 0) {
          const rows = chunkRows(chunk, this.full) as T[];
          for (const r of rows) {
            if (r.seq <= s.last) throw new Error(`archived segment ${s.entry.file} is not in sequence order (${r.seq} follows ${s.last}): run kaching archive verify`);
            s.last = r.seq;
          }
          return rows;
        }
      }
      await this.endSegment();
      while (this.entries.length && this.entries[0]!.last_seq < this.min) this.entries.shift();
      const e = this.entries.shift();
      if (!e) return null;
      this.seg = { entry: e, read: await this.open(e, this.min), last: 0 };
    }
  }

  private async endSegment(): Promise<void> {
    const s = this.seg;
    this.seg = null;
    if (s) await s.read.release();
  }
}
