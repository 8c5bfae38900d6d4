import { writeFile } from 'node:fs/promises';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { loadConfig } from './config.js';
import { archivedLanes, readManifest, type ManifestEntry } from './manifest.js';
import { openStore } from './stores.js';
import { removeQuietly } from './segment.js';
import type { ArchiveStore } from './store.js';

/** One archived stream message: its exact bytes and what a reader of the stream would have seen. */
export interface ArchivedMessage {
  seq: number;
  subject: string;
  /** The message body exactly as the stream stored it. */
  data: Uint8Array;
  /** Kaching-Schema header (Avro fingerprint of data). */
  fingerprint: string | undefined;
  /** Nats-Msg-Id header. */
  msgId: string | undefined;
  /** JetStream append time (ms). */
  streamTime: number;
}

export interface HistoryCursor {
  next(min: number): Promise<ArchivedMessage | null>;
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
const COLS = 'seq, subject, record, schema_fingerprint, msg_id, epoch_ms(stream_time) as t';

/**
 * Reads the archive back in stream order: the manifests of every lane are read once (a snapshot), segments
 * are read one at a time per lane and merged by sequence, so a replay or an audit sees the archived part of
 * the stream as one ordered sequence (each sequence once).
 */
export class ArchiveHistory {
  private conn: Promise<DuckDBConnection> | null = null;
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
      const rows = await this.read(e, `where seq = ${seq}`);
      if (rows[0]) return rows[0];
    }
    return null;
  }

  /** Every archived message the filter selects, in sequence order, each sequence once. */
  async *messages(f: HistoryFilter = {}): AsyncGenerator<ArchivedMessage> {
    const c = await this.cursor(f);
    for (let m = await c.next(f.fromSeq ?? 0); m; m = await c.next(m.seq + 1)) yield m;
  }

  /**
   * A reader that moves forward by sequence: next(min) is the first archived message at or after min. Segments
   * that end before min are skipped unread, so a reader that jumps ahead reads only what it asks for.
   */
  async cursor(f: HistoryFilter = {}): Promise<HistoryCursor> {
    const where = whereOf(f);
    const lanes = (await this.manifests()).map((entries) => ({ entries: entries.filter((e) => keep(e, f)), rows: [] as ArchivedMessage[], at: 0 }));
    return {
      next: async (min: number) => {
        let best: ArchivedMessage | null = null;
        for (const l of lanes) {
          for (;;) {
            while (l.at < l.rows.length && l.rows[l.at]!.seq < min) l.at++;
            if (l.at < l.rows.length) break;
            while (l.entries.length && l.entries[0]!.last_seq < min) l.entries.shift();
            const e = l.entries.shift();
            if (!e) break;
            l.rows = await this.read(e, `${where ? `${where} and` : 'where'} seq >= ${Math.trunc(min)}`);
            l.at = 0;
          }
          const head = l.rows[l.at];
          // a repartitioning may leave a sequence in two lanes' segments: it is the same message
          if (head && (!best || head.seq < best.seq)) best = head;
        }
        return best;
      },
    };
  }

  async close(): Promise<void> {
    const c = this.conn;
    this.conn = null;
    if (c) (await c.catch(() => null))?.closeSync();
  }

  private connection(): Promise<DuckDBConnection> {
    this.conn ??= DuckDBInstance.create(':memory:', { threads: '1' }).then((i) => i.connect());
    return this.conn;
  }

  /** Runs sql with %s replaced by the segment's read_parquet(...) (S3: through a scratch copy). */
  private async query(e: ManifestEntry, sql: string): Promise<unknown[][]> {
    const local = this.store.localPath(e.file);
    const scratch = local ? null : await this.store.scratchPath('history.parquet');
    try {
      if (scratch) {
        const bytes = await this.store.get(e.file);
        if (!bytes) throw new Error(`archived segment ${e.file} (sequences ${e.first_seq}..${e.last_seq}) is missing`);
        await writeFile(scratch, bytes);
      }
      const path = (scratch ?? local!).replace(/'/g, "''");
      const c = await this.connection();
      return (await c.runAndReadAll(sql.replace('%s', `read_parquet('${path}')`))).getRows() as unknown[][];
    } finally {
      if (scratch) await removeQuietly(scratch);
    }
  }

  private async read(e: ManifestEntry, where: string): Promise<ArchivedMessage[]> {
    const rows = await this.query(e, `select ${COLS} from %s ${where} order by seq`);
    return rows.map((x) => ({
      seq: Number(x[0] as bigint),
      subject: x[1] as string,
      data: (x[2] as { bytes: Uint8Array }).bytes,
      fingerprint: (x[3] as string | null) ?? undefined,
      msgId: (x[4] as string | null) ?? undefined,
      streamTime: Number(x[5] as bigint),
    }));
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
