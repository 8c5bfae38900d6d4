import { writeFile } from 'node:fs/promises';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { LaneReader, MESSAGE_COLS, RECORD_COLS, type ArchivedMessage, type ArchivedRecord, type SegmentRead } from './laneReader.js';
import { loadConfig } from './config.js';
import { archivedLanes, readManifest, type ManifestEntry } from './manifest.js';
import { openStore } from './stores.js';
import { removeQuietly } from './segment.js';
import type { ArchiveStore } from './store.js';

export type { ArchivedMessage, ArchivedRecord } from './laneReader.js';

export interface HistoryCursor<T extends ArchivedRecord = ArchivedMessage> {
  next(min: number): Promise<T | null>;
  /** Ends the cursor's reads early (a cursor read to its end has ended them). */
  close(): Promise<void>;
}

/** Typed-column filters (see COLUMNS in segment.ts); all given ones must hold. */
export interface HistoryFilter {
  fromSeq?: number;
  /** Exclusive. */
  beforeSeq?: number;
  deploymentId?: string;
  correlationId?: string;
  /** Append time, inclusive (ms). */
  since?: number;
  /** Append time, exclusive (ms). */
  until?: number;
}

// received_at (manifest) precedes the append time by the ingest's publish: segments are pruned by it with this slack.
const TIME_SLACK_MS = 3_600_000;

/**
 * Reads the archive back in stream order: the manifests of every lane are read once (a snapshot), segments
 * are read one at a time per lane and merged by sequence, so a replay or an audit sees the archived part of
 * the stream as one ordered sequence (each sequence once).
 */
export class ArchiveHistory {
  private db: Promise<DuckDBInstance> | null = null;
  private conn: Promise<DuckDBConnection> | null = null;
  /** How to end the cursors still open (each reads through connections of its own). */
  private readonly open = new Set<() => Promise<void>>();
  private lanes: Promise<ManifestEntry[][]> | null = null;

  constructor(readonly store: ArchiveStore) {}

  /** The archive the archiver writes for this installation (KACHING_ARCHIVE_DIR / KACHING_ARCHIVE_URL). */
  static open(namespace: string, env: NodeJS.ProcessEnv = process.env): ArchiveHistory {
    const config = { ...loadConfig(env), namespace };
    return new ArchiveHistory(openStore(config));
  }

  /** Each lane's manifest entries (a snapshot taken at the first call). */
  manifests(): Promise<ManifestEntry[][]> {
    this.lanes ??= (async () => {
      const out: ManifestEntry[][] = [];
      for (const lane of await archivedLanes(this.store)) {
        const { entries } = await readManifest(this.store, lane);
        if (entries.length) out.push(entries);
      }
      return out;
    })();
    return this.lanes;
  }

  /** Highest archived sequence (0: empty archive). */
  async lastSeq(): Promise<number> {
    return Math.max(0, ...(await this.manifests()).map((l) => l.at(-1)!.last_seq));
  }

  /** How many archived sequences lie in [fromSeq, beforeSeq): equal to beforeSeq - fromSeq when the archive has no gap there. */
  async count(fromSeq: number, beforeSeq: number): Promise<number> {
    let n = 0;
    for (const lane of await this.manifests()) {
      for (const e of lane) {
        if (e.last_seq < fromSeq || e.first_seq >= beforeSeq) continue;
        if (e.first_seq >= fromSeq && e.last_seq < beforeSeq) n += e.count;
        else n += Number((await this.query(e, `select count(*) from %s where seq >= ${Math.trunc(fromSeq)} and seq < ${Math.trunc(beforeSeq)}`))[0]![0]);
      }
    }
    return n;
  }

  /** The first archived sequence appended at or after `at` (ms), or null. */
  async firstSeqAtOrAfter(at: number): Promise<number | null> {
    let best: number | null = null;
    for (const lane of await this.manifests()) {
      for (const e of lane) {
        if (best !== null && e.first_seq > best) break;
        if (e.newest_received_at && Date.parse(e.newest_received_at) < at - TIME_SLACK_MS) continue;
        const r = await this.query(e, `select min(seq) from %s where epoch_ms(stream_time) >= ${Math.trunc(at)}`);
        const s = r[0]?.[0];
        if (s !== null && s !== undefined) {
          best = best === null ? Number(s) : Math.min(best, Number(s));
          break;
        }
      }
    }
    return best;
  }

  /** The archived message with this sequence, or null. */
  async get(seq: number): Promise<ArchivedMessage | null> {
    for (const lane of await this.manifests()) {
      const e = lane.find((x) => x.first_seq <= seq && seq <= x.last_seq);
      if (!e) continue;
      const c = await this.cursorOver<ArchivedMessage>([[e]], `where seq = ${Math.trunc(seq)}`, true);
      try {
        const m = await c.next(seq);
        if (m) return m;
      } finally {
        await c.close();
      }
    }
    return null;
  }

  /** Every archived message the filter selects, in sequence order, each sequence once. */
  async *messages(f: HistoryFilter = {}): AsyncGenerator<ArchivedMessage> {
    const c = await this.cursor(f);
    try {
      for (let m = await c.next(f.fromSeq ?? 0); m; m = await c.next(m.seq + 1)) yield m;
    } finally {
      await c.close();
    }
  }

  /**
   * A reader that moves forward by sequence: next(min) is the first archived message at or after min. Segments
   * that end before min are skipped unread, so a reader that jumps ahead reads only what it asks for.
   */
  cursor(f: HistoryFilter = {}): Promise<HistoryCursor<ArchivedMessage>> {
    return this.filtered(f, true);
  }

  /** cursor() reading only what decoding a record needs (a replay): no subject, no append time. */
  recordCursor(f: HistoryFilter = {}): Promise<HistoryCursor<ArchivedRecord>> {
    return this.filtered(f, false);
  }

  async close(): Promise<void> {
    await Promise.all([...this.open].map((close) => close()));
    const c = this.conn;
    this.conn = null;
    if (c) (await c.catch(() => null))?.closeSync();
    const db = this.db;
    this.db = null;
    if (db) (await db.catch(() => null))?.closeSync();
  }

  private async filtered<T extends ArchivedRecord>(f: HistoryFilter, full: boolean): Promise<HistoryCursor<T>> {
    const lanes = (await this.manifests()).map((entries) => entries.filter((e) => keep(e, f)));
    return this.cursorOver<T>(lanes, whereOf(f), full);
  }

  /** Merges the lanes' readers by sequence; each lane reads through a DuckDB connection of its own. */
  private async cursorOver<T extends ArchivedRecord>(lanes: ManifestEntry[][], where: string, full: boolean): Promise<HistoryCursor<T>> {
    const conns: DuckDBConnection[] = [];
    const readers: LaneReader<T>[] = [];
    for (const entries of lanes) {
      if (!entries.length) continue;
      const conn = await (await this.instance()).connect();
      conns.push(conn);
      readers.push(new LaneReader<T>(entries, (e, min) => this.openSegment(conn, e, `select ${full ? MESSAGE_COLS : RECORD_COLS} from %s ${where ? `${where} and` : 'where'} seq >= ${Math.trunc(min)}`), full));
    }
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      this.open.delete(close);
      await Promise.all(readers.map((r) => r.close()));
      for (const c of conns) c.closeSync();
    };
    this.open.add(close);
    return {
      next: async (min: number) => {
        if (closed) return null;
        let best: T | null = null;
        for (const r of readers) {
          // a lane whose read rows run out reads its next chunk (already under way)
          const head = r.peek(min) ?? (await r.head(min));
          // a repartitioning may leave a sequence in two lanes' segments: it is the same message
          if (head && (!best || head.seq < best.seq)) best = head;
        }
        if (!best) await close();
        return best;
      },
      close,
    };
  }

  private instance(): Promise<DuckDBInstance> {
    this.db ??= DuckDBInstance.create(':memory:', { threads: '1' });
    return this.db;
  }

  private connection(): Promise<DuckDBConnection> {
    this.conn ??= this.instance().then((i) => i.connect());
    return this.conn;
  }

  /** The segment as a local file (S3: a scratch copy, removed by release). */
  private async segmentFile(e: ManifestEntry): Promise<{ path: string; release(): Promise<void> }> {
    const local = this.store.localPath(e.file);
    if (local) return { path: local, release: async () => undefined };
    const scratch = await this.store.scratchPath('history.parquet');
    try {
      const bytes = await this.store.get(e.file);
      if (!bytes) throw new Error(`archived segment ${e.file} (sequences ${e.first_seq}..${e.last_seq}) is missing`);
      await writeFile(scratch, bytes);
    } catch (err) {
      await removeQuietly(scratch);
      throw err;
    }
    return { path: scratch, release: () => removeQuietly(scratch) };
  }

  private async openSegment(conn: DuckDBConnection, e: ManifestEntry, sql: string): Promise<SegmentRead> {
    const file = await this.segmentFile(e);
    try {
      const result = await conn.stream(sql.replace('%s', `read_parquet('${file.path.replace(/'/g, "''")}')`));
      return { result, release: file.release };
    } catch (err) {
      await file.release();
      throw err;
    }
  }

  /** Runs sql with %s replaced by the segment's read_parquet(...) (S3: through a scratch copy). */
  private async query(e: ManifestEntry, sql: string): Promise<unknown[][]> {
    const file = await this.segmentFile(e);
    try {
      const c = await this.connection();
      return (await c.runAndReadAll(sql.replace('%s', `read_parquet('${file.path.replace(/'/g, "''")}')`))).getRows() as unknown[][];
    } finally {
      await file.release();
    }
  }
}

function keep(e: ManifestEntry, f: HistoryFilter): boolean {
  if (f.fromSeq !== undefined && e.last_seq < f.fromSeq) return false;
  if (f.beforeSeq !== undefined && e.first_seq >= f.beforeSeq) return false;
  if (f.since !== undefined && e.newest_received_at && Date.parse(e.newest_received_at) < f.since - TIME_SLACK_MS) return false;
  if (f.until !== undefined && e.oldest_received_at && Date.parse(e.oldest_received_at) >= f.until) return false;
  return true;
}

const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;

function whereOf(f: HistoryFilter): string {
  const w: string[] = [];
  if (f.fromSeq !== undefined) w.push(`seq >= ${Math.trunc(f.fromSeq)}`);
  if (f.beforeSeq !== undefined) w.push(`seq < ${Math.trunc(f.beforeSeq)}`);
  if (f.deploymentId !== undefined) w.push(`deployment_id = ${lit(f.deploymentId)}`);
  if (f.correlationId !== undefined) w.push(`correlation_id = ${lit(f.correlationId)}`);
  if (f.since !== undefined) w.push(`epoch_ms(stream_time) >= ${Math.trunc(f.since)}`);
  if (f.until !== undefined) w.push(`epoch_ms(stream_time) < ${Math.trunc(f.until)}`);
  return w.length ? `where ${w.join(' and ')}` : '';
}
