import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import copyStreams from 'pg-copy-streams';
import type { ProjectionName } from '@kaching/contracts';
import { copyLine, sightings, stageRow, stagedRows, STAGE_COLUMNS, STAGE_DDL, type Decoded } from '../records.js';
import { rawMerge } from '../projections/raw.js';
import { rollupsMerge } from '../projections/rollups.js';
import { concurrencyMerge } from '../projections/concurrency.js';
import { BATCH_SOURCE, billingEnqueueSql } from '../billing/enqueue.js';
import type { Tables } from './tables.js';
import { CopyChunks } from './copyChunks.js';

/** The session's temp staging table and winners view (created once per connection; a rollback may undo them). */
async function ensureStaging(client: pg.ClientBase): Promise<void> {
  const r = await client.query<{ ok: boolean }>(`select to_regclass('pg_temp.stg_win') is not null as ok`);
  if (r.rows[0]?.ok) return;
  await client.query(STAGE_DDL);
  // stagedRows() leaves one usage row per identity, so the winners are simply the staged usage rows.
  await client.query(`create or replace temp view stg_win as select * from stg_events where kind = 'usage'`);
}

/** COPY rows (already reduced by stagedRows) into the session's staging table, in large chunks. */
export async function copyToStaging(client: pg.ClientBase, rows: Decoded[]): Promise<void> {
  await ensureStaging(client);
  if (rows.length === 0) return;
  const sink = client.query(copyStreams.from(`copy stg_events (${STAGE_COLUMNS.join(', ')}) from stdin`));
  await pipeline(Readable.from(chunks(rows)), sink);
}

function* chunks(rows: Decoded[]): Generator<Buffer> {
  const out = new CopyChunks();
  for (const d of rows) {
    const full = out.add(copyLine(stageRow(d)));
    if (full) yield full;
  }
  const rest = out.take();
  if (rest) yield rest;
}

/**
 * Runs the projection's merge over whatever the staging table holds (inside the caller's transaction), as
 * one multi-statement script: one round trip, so Postgres never waits on this thread between statements.
 * `batch` is every message of the batch (raw records node/agent sightings of losing revisions too).
 */
export async function applyStaged(client: pg.ClientBase, projection: ProjectionName, t: Tables, batch: Decoded[], opts: ApplyOptions = {}): Promise<void> {
  const sql =
    projection === 'raw' ? rawMerge(t, sightings(batch))
    : projection === 'rollups' ? rollupsMerge(t)
    : concurrencyMerge(t, { writePeak: !t.shadow });
  // billing records of the runs this batch changed, in the batch's transaction (never from a shadow rebuild)
  if (projection === 'rollups' && opts.billing && !t.shadow) sql.push(...billingEnqueueSql(BATCH_SOURCE));
  // Temp tables have no statistics; a rebuild's joins against growing shadow tables need some.
  if (t.shadow) sql.unshift('analyze stg_events (kind, deployment_id, correlation_id)');
  await client.query(sql.join(';\n'));
}

/** Applies an already-filtered batch (seq > checkpoint) to one projection's tables, inside the caller's transaction. */
export async function applyBatch(client: pg.ClientBase, projection: ProjectionName, batch: Decoded[], t: Tables, opts: ApplyOptions = {}): Promise<void> {
  if (batch.length === 0) return;
  await copyToStaging(client, stagedRows(batch));
  await applyStaged(client, projection, t, batch, opts);
}

export interface ApplyOptions {
  /** Billing forwarding is configured: the rollups batch enqueues billing records of the runs it changed. */
  billing?: boolean;
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
