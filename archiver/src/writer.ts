import { ARCHIVER_CONSUMER, inLaneTransaction, LeaseLostError, type ConsumerHandler, type Lane, type LaneBatch, type LeaseToken, type Logger } from '@kaching/contracts';
import type pg from 'pg';
import { manifestKey, nextEntry, readManifest, segmentKey, serializeManifest, type ManifestEntry } from './manifest.js';
import { removeQuietly, rowOf, type ArchiveRow, type ParquetCodec } from './segment.js';
import type { ArchiveStore } from './store.js';

/** Version of the archive layout; raising it would re-archive from the stream (never done lightly). */
export const ARCHIVER_HANDLER_VERSION = 1;

interface LaneState {
  lane: Lane;
  lease: LeaseToken;
  entries: ManifestEntry[];
  /** Last sequence in a published segment listed in the manifest. */
  durable: number;
  /** The open segment: read, not yet published. */
  rows: ArchiveRow[];
  openedAt: number;
  timer: NodeJS.Timeout | undefined;
  chain: Promise<unknown>;
  dropped: boolean;
}

export interface WriterOptions {
  store: ArchiveStore;
  codec: ParquetCodec;
  pool: pg.Pool;
  log: Logger;
  segmentEvents: number;
  segmentSeconds: number;
  onSegment?(e: ManifestEntry, seconds: number): void;
  onError?(err: Error): void;
}

/**
 * The archiver's consumer handler. Messages gather in the lane's open segment; a segment closes after
 * segmentEvents events or segmentSeconds after its first event, is published (atomically), then listed in
 * the lane's manifest inside the batch transaction (fence checked), and only then does the checkpoint move.
 * The manifest is where a lane resumes: an open segment lost in a crash is read again from the stream.
 */
export class ArchiveWriter {
  private readonly lanes = new Map<string, LaneState>();

  constructor(private readonly o: WriterOptions) {}

  readonly handler: ConsumerHandler = {
    name: ARCHIVER_CONSUMER,
    version: ARCHIVER_HANDLER_VERSION,
    apply: (b) => this.apply(b),
    position: (lane, lease) => this.position(lane, lease),
  };

  /** Published manifest entries of the lanes this instance holds. */
  heldLanes(): { lane: Lane; entries: ManifestEntry[] }[] {
    return [...this.lanes.values()].filter((s) => !s.dropped).map((s) => ({ lane: s.lane, entries: s.entries }));
  }

  private async position(lane: Lane, lease: LeaseToken): Promise<number> {
    this.drop(lane.id);
    const { entries } = await readManifest(this.o.store, lane.id);
    // segments a crash or a deposed owner left unlisted: never part of the archive
    const listed = new Set(entries.map((e) => e.file));
    for (const k of await this.o.store.list(`${lane.id}/`)) {
      if (k.endsWith('.parquet') && !listed.has(k)) await this.o.store.remove(k);
    }
    let durable = entries.at(-1)?.last_seq ?? 0;
    if (!entries.length) {
      const r = await this.o.pool.query<{ last_seq: string }>('select last_seq from consumer_checkpoint where consumer = $1 and lane = $2', [ARCHIVER_CONSUMER, lane.id]);
      durable = Number(r.rows[0]?.last_seq ?? 0);
    }
    this.lanes.set(lane.id, { lane, lease, entries, durable, rows: [], openedAt: 0, timer: undefined, chain: Promise.resolve(), dropped: false });
    return durable;
  }

  private drop(laneId: string): void {
    const s = this.lanes.get(laneId);
    if (!s) return;
    s.dropped = true;
    clearTimeout(s.timer);
    this.lanes.delete(laneId);
  }

  private serial<T>(s: LaneState, fn: () => Promise<T>): Promise<T> {
    const p = s.chain.then(fn);
    s.chain = p.catch(() => undefined);
    return p;
  }

  private apply(batch: LaneBatch): Promise<number> {
    const s = this.lanes.get(batch.lane.id);
    if (!s || s.lease.fence !== batch.lease.fence) throw new LeaseLostError(batch.lease);
    return this.serial(s, async () => {
      for (const m of batch.messages) {
        const last = s.rows.at(-1)?.seq ?? s.durable;
        if (m.info.streamSequence <= last) continue; // redelivered
        if (!s.rows.length) s.openedAt = Date.now();
        s.rows.push(rowOf(m, s.lane.id));
        if (s.rows.length >= this.o.segmentEvents) await this.publish(s, this.o.segmentEvents);
      }
      if (s.rows.length && !s.timer) this.arm(s, s.openedAt + this.o.segmentSeconds * 1000 - Date.now());
      return s.durable;
    });
  }

  /** Closes the open segment when its time is up (no new message needed). */
  private arm(s: LaneState, delayMs: number): void {
    clearTimeout(s.timer);
    s.timer = setTimeout(() => {
      s.timer = undefined;
      if (s.dropped || !s.rows.length) return;
      void this.serial(s, () => this.publish(s, s.rows.length)).catch((err: Error) => {
        if (err instanceof LeaseLostError) return this.drop(s.lane.id);
        this.o.onError?.(err);
        this.o.log.warn({ lane: s.lane.id, err: err.message }, 'publishing a segment failed; retrying');
        if (!s.dropped) this.arm(s, 1000);
      });
    }, Math.max(0, delayMs));
  }

  /** Publishes the first n open rows as one segment. Leaves the rows in place when anything fails. */
  private async publish(s: LaneState, n: number): Promise<void> {
    const rows = s.rows.slice(0, n);
    if (!rows.length) return;
    const t0 = performance.now();
    const { store, codec, pool } = this.o;
    const key = segmentKey(s.lane.id, rows[0]!.seq, s.lease.fence);
    const scratch = await store.scratchPath('segment.parquet');
    try {
      const seg = await codec.write(rows, scratch);
      await store.putFile(key, scratch);
      const entry = nextEntry(s.entries.at(-1), {
        lane: s.lane.id, file: key, first_seq: seg.firstSeq, last_seq: seg.lastSeq, count: seg.count, bytes: seg.bytes, sha256: seg.sha256,
        oldest_received_at: seg.oldestReceivedAt, newest_received_at: seg.newestReceivedAt, archived_at: new Date().toISOString(),
      });
      const entries = [...s.entries, entry];
      const totalBytes = entries.reduce((a, e) => a + e.bytes, 0);
      await inLaneTransaction(pool, s.lease, async (client) => {
        // listed while the lease row is locked (fence checked): a deposed owner cannot append after the new one
        await store.putBytes(manifestKey(s.lane.id), serializeManifest(entries));
        await client.query(
          `insert into archive_head (lane, last_seq, entry_hash, segments, bytes) values ($1, $2, $3, $4, $5)
           on conflict (lane) do update set last_seq = excluded.last_seq, entry_hash = excluded.entry_hash, segments = excluded.segments, bytes = excluded.bytes, updated_at = now()`,
          [s.lane.id, entry.last_seq, entry.hash, entries.length, totalBytes],
        );
        return { lastSeq: entry.last_seq, result: null };
      });
      s.entries = entries;
      s.durable = entry.last_seq;
      s.rows.splice(0, n);
      if (s.rows.length) s.openedAt = Date.now();
      else clearTimeout(s.timer), (s.timer = undefined);
      this.o.onSegment?.(entry, (performance.now() - t0) / 1000);
    } finally {
      await removeQuietly(scratch);
    }
  }

  /** Publishes every open segment now (graceful stop, tests). */
  async flush(): Promise<void> {
    await Promise.all(
      [...this.lanes.values()].map((s) => this.serial(s, () => (s.dropped ? Promise.resolve() : this.publish(s, s.rows.length)))),
    );
  }

  stop(): void {
    for (const id of [...this.lanes.keys()]) this.drop(id);
  }
}
