import { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { once } from 'node:events';
import type pg from 'pg';
import copyStreams from 'pg-copy-streams';
import type { ProjectionName } from '@kaching/contracts';
import { copyLine, stageRow, STAGE_COLUMNS, STAGE_DDL, type Decoded } from '../records.js';
import { applyRaw } from '../projections/raw.js';
import { applyRollups } from '../projections/rollups.js';
import { applyConcurrency } from '../projections/concurrency.js';
import type { Tables } from './tables.js';

/** COPY the batch into the session's staging table (text format, one round trip). */
export async function copyToStaging(client: pg.ClientBase, batch: Decoded[]): Promise<void> {
  await client.query(STAGE_DDL);
  const lines = batch.map((d) => copyLine(stageRow(d)));
  const sink = client.query(copyStreams.from(`copy stg_events (${STAGE_COLUMNS.join(', ')}) from stdin`));
  await pipeline(Readable.from(chunk(lines, 500).map((c) => c.join(''))), sink);
}

function chunk<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/** Runs the projection's merge over whatever the staging table holds (inside the caller's transaction). */
export async function applyStaged(client: pg.ClientBase, projection: ProjectionName, t: Tables): Promise<void> {
  if (projection === 'raw') await applyRaw(client, t);
  else if (projection === 'rollups') await applyRollups(client, t);
  else await applyConcurrency(client, t, { writePeak: !t.shadow });
}

/**
 * Streams any number of messages into staging with one COPY inside one transaction, then merges once:
 * a rebuild from scratch pays the per-batch statement overhead once instead of per batch.
 */
export class BulkLoader {
  // pg-copy-streams sends every write() as its own socket write: buffering rows into large chunks
  // took the per-row write syscalls (22% of replay CPU in a profile) off the single JS thread.
  private static readonly CHUNK_BYTES = 256 * 1024;
  private pending: string[] = [];
  private pendingBytes = 0;
  private count = 0;
  private lastSeq = 0;
  private readonly days = new Set<string>();
  private constructor(
    private readonly client: pg.PoolClient,
    private readonly sink: ReturnType<typeof copyStreams.from>,
  ) {}

  static async open(pool: pg.Pool, checkpointKey: string): Promise<BulkLoader> {
    const client = await pool.connect();
    try {
      await client.query('begin');
      await lockCheckpoint(client, checkpointKey);
      await client.query(STAGE_DDL);
      const sink = client.query(copyStreams.from(`copy stg_events (${STAGE_COLUMNS.join(', ')}) from stdin`));
      return new BulkLoader(client, sink);
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      client.release();
      throw err;
    }
  }

  get size(): number {
    return this.count;
  }

  async add(d: Decoded | null, seq: number): Promise<void> {
    this.lastSeq = Math.max(this.lastSeq, seq);
    if (!d) return;
    this.count++;
    if (d.record.kind === 'usage') this.days.add(new Date(d.record.usage.job.started_at).toISOString().slice(0, 10));
    const line = copyLine(stageRow(d));
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (this.pendingBytes >= BulkLoader.CHUNK_BYTES) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const chunk = this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    if (!this.sink.write(chunk)) await once(this.sink, 'drain');
  }

  /** Ends the COPY, creates the partitions it needs, merges, advances the checkpoint and commits. */
  async finish(projection: ProjectionName, t: Tables, checkpointKey: string, ensureDays: (c: pg.ClientBase, days: string[]) => Promise<void>): Promise<{ applied: number; lastSeq: number }> {
    try {
      await this.flush();
      this.sink.end();
      await finished(this.sink);
      if (projection === 'raw') await ensureDays(this.client, [...this.days]);
      await applyStaged(this.client, projection, t);
      await writeCheckpoint(this.client, checkpointKey, this.lastSeq);
      await this.client.query('commit');
      return { applied: this.count, lastSeq: this.lastSeq };
    } catch (err) {
      await this.client.query('rollback').catch(() => undefined);
      throw err;
    } finally {
      this.client.release();
    }
  }

  async abort(): Promise<void> {
    this.sink.destroy();
    await this.client.query('rollback').catch(() => undefined);
    this.client.release();
  }
}

/** Applies an already-filtered batch (seq > checkpoint) to one projection's tables, inside the caller's transaction. */
export async function applyBatch(client: pg.ClientBase, projection: ProjectionName, batch: Decoded[], t: Tables): Promise<void> {
  if (batch.length === 0) return;
  await copyToStaging(client, batch);
  await applyStaged(client, projection, t);
}

/** Locks and reads a projection's checkpoint (the row lock serialises the live consumer with a replay swap). */
export async function lockCheckpoint(client: pg.ClientBase, projection: string): Promise<number> {
  await client.query(`insert into projection_checkpoint (projection, last_seq) values ($1, 0) on conflict do nothing`, [projection]);
  const r = await client.query<{ last_seq: string }>(
    `select last_seq from projection_checkpoint where projection = $1 for update`,
    [projection],
  );
  return Number(r.rows[0]!.last_seq);
}

export async function writeCheckpoint(client: pg.ClientBase, projection: string, seq: number): Promise<void> {
  await client.query(`update projection_checkpoint set last_seq = $2, updated_at = now() where projection = $1`, [projection, seq]);
}
