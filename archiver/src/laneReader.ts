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

/**
 * Columns read: a record (replay) or the whole message (audit: append time; enforcer: subject). The record and
 * its two headers come packed into one blob (record, msg id, fingerprint, with their lengths): one value to
 * fetch per row instead of three, and the record a view into it.
 */
const PACKED =
  "seq, octet_length(record)::integer, strlen(msg_id)::integer, strlen(schema_fingerprint)::integer, record || encode(coalesce(msg_id, '')) || encode(coalesce(schema_fingerprint, ''))";
export const RECORD_COLS = PACKED;
export const MESSAGE_COLS = `${PACKED}, subject, epoch_ms(stream_time) as t`;

/** An open read of one segment: a streaming DuckDB result, and what to clean up once it is done (S3 scratch copy). */
export interface SegmentRead {
  result: DuckDBResult;
  release(): Promise<void>;
}

type Items<T> = { getItem(i: number): T | null };
const utf8 = new TextDecoder();

/** The rows of one chunk, read column by column from its vectors (no row materialisation). */
export function chunkRows(chunk: DuckDBDataChunk, full: boolean): ArchivedMessage[] | ArchivedRecord[] {
  const n = chunk.rowCount;
  const seq = chunk.getColumnVector(0) as unknown as Items<bigint>;
  const recLen = chunk.getColumnVector(1) as unknown as Items<number>;
  const idLen = chunk.getColumnVector(2) as unknown as Items<number>;
  const fpLen = chunk.getColumnVector(3) as unknown as Items<number>;
  const packed = chunk.getColumnVector(4) as unknown as { getItemBytes(i: number): Uint8Array | null };
  const subject = full ? (chunk.getColumnVector(5) as unknown as Items<string>) : null;
  const time = full ? (chunk.getColumnVector(6) as unknown as Items<bigint>) : null;
  const out = new Array<ArchivedMessage | ArchivedRecord>(n);
  // the fingerprint is the same for long runs of rows: decoded again only when its bytes change
  let fpBytes: Uint8Array | null = null;
  let fp: string | undefined;
  for (let i = 0; i < n; i++) {
    let bytes = packed.getItemBytes(i) ?? new Uint8Array(0);
    // DuckDB keeps values of up to 12 bytes inline: that view is into the chunk, so it is copied
    if (bytes.length <= 12) bytes = bytes.slice();
    const rl = recLen.getItem(i) ?? 0;
    const il = idLen.getItem(i);
    const fl = fpLen.getItem(i);
    const f = fl === null ? null : bytes.subarray(rl + (il ?? 0), rl + (il ?? 0) + fl);
    if (f === null) fp = undefined;
    else if (!fpBytes || !sameBytes(f, fpBytes)) {
      fp = utf8.decode(f);
      fpBytes = f;
    }
    const r: ArchivedRecord = {
      seq: Number(seq.getItem(i)),
      data: bytes.subarray(0, rl),
      fingerprint: fp,
      msgId: il === null ? undefined : utf8.decode(bytes.subarray(rl, rl + il)),
    };
    if (f === null) fpBytes = null;
    out[i] = subject ? { ...r, subject: subject.getItem(i) ?? '', streamTime: Number(time!.getItem(i)) } : r;
  }
  return out as ArchivedMessage[] | ArchivedRecord[];
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
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
