import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
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

/** Applies an already-filtered batch (seq > checkpoint) to one projection's tables, inside the caller's transaction. */
export async function applyBatch(client: pg.ClientBase, projection: ProjectionName, batch: Decoded[], t: Tables): Promise<void> {
  if (batch.length === 0) return;
  await copyToStaging(client, batch);
  if (projection === 'raw') await applyRaw(client, t);
  else if (projection === 'rollups') await applyRollups(client, t);
  else await applyConcurrency(client, t, { writePeak: !t.shadow });
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
