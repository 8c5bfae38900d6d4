import type pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { inTransaction, type PriceBook, type ProjectionName } from '@kaching/contracts';
import type { JsMsg } from '@nats-io/jetstream';
import { decodeJsMsg } from '../processor.js';
import { copyLine, priceDecoded, REBUILD_STAGE, Sightings, stageColumnsDdl, stageRow, STAGE_COLUMNS, type Decoded, type Sighting, type StageValue } from '../records.js';
import { rawBuild, sightingUpserts } from '../projections/raw.js';
import { rollupsBuild } from '../projections/rollups.js';
import { concurrencyBuild } from '../projections/concurrency.js';
import { q, type BuildStep } from '../projections/common.js';
import { ensureHourlyPartitions, ensurePartitions, utcDay, utcMonth } from './partitions.js';
import { LIVE, type Tables } from './tables.js';
import { CopyChunks } from './copyChunks.js';

/**
 * What the JS side learns while staging: the days usage_sample needs partitions for, the months the hourly
 * rollups need partitions for, node/agent sightings.
 */
export interface StageFacts {
  rows: number;
  undecodable: number;
  days: string[];
  months: string[];
  sightings: { nodes: Sighting[]; agents: Sighting[] };
}

/**
 * One COPY that stays open for a whole rebuild: every message's staging row goes into an unlogged table
 * without indexes, at close to raw COPY speed. Nothing is merged per batch; buildFromStage does it once.
 * (Decoding in a worker thread was measured too: no faster on 2 cores, where Postgres and NATS use the other.)
 */
export class StageWriter {
  private readonly out = new CopyChunks();
  private readonly sink: ReturnType<typeof copyStreams.from>;
  private readonly done: Promise<void>;
  private failure: Error | null = null;
  private readonly sightings = new Sightings();
  private readonly days = new Set<string>();
  private readonly months = new Set<string>();
  private rows = 0;
  private undecodable = 0;

  private constructor(
    client: pg.ClientBase,
    readonly table: string,
    columns: readonly string[],
    private readonly row: (d: Decoded) => StageValue[] | null,
    private readonly gatherFacts: boolean,
    private readonly gatherMonths: boolean,
    private readonly book: PriceBook | null,
  ) {
    this.sink = client.query(copyStreams.from(`copy ${q(table)} (${columns.join(', ')}) from stdin`));
    this.done = new Promise<void>((resolve, reject) => {
      this.sink.on('finish', resolve);
      this.sink.on('error', (err: Error) => {
        this.failure = err;
        reject(err);
      });
    });
    this.done.catch(() => undefined);
  }

  /**
   * (Re)creates the unlogged staging table `table` with the columns `projection` builds from and opens
   * the COPY into it. For raw it also gathers sightings and partition days on the way.
   */
  static async open(client: pg.ClientBase, table: string, projection: ProjectionName, book: PriceBook): Promise<StageWriter> {
    const { columns, row } = projection === 'raw' ? { columns: STAGE_COLUMNS, row: stageRow } : REBUILD_STAGE[projection];
    await client.query(`drop table if exists ${q(table)}`);
    await client.query(`create unlogged table ${q(table)} ${stageColumnsDdl(columns)}`);
    return new StageWriter(client, table, columns, row, projection === 'raw', projection === 'rollups', projection === 'concurrency' ? null : book);
  }

  /** Adds one message; resolves at once unless Postgres is behind (then when it has taken the buffer). */
  add(m: JsMsg): Promise<void> | undefined {
    return this.addDecoded(decodeJsMsg(m));
  }

  /** Adds one decoded message (from the stream or the archive); null: it did not decode. */
  addDecoded(d: Decoded | null): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    if (!d) {
      this.undecodable++;
      return undefined;
    }
    this.rows++;
    if (this.book) priceDecoded([d], this.book);
    const row = this.row(d);
    const full = row ? this.out.add(copyLine(row)) : null;
    if (this.gatherFacts) {
      this.sightings.add(d);
      if (d.record.kind === 'usage') this.days.add(utcDay(d.record.usage.job.started_at));
    }
    if (this.gatherMonths && d.record.kind === 'usage') this.months.add(utcMonth(d.record.usage.job.ended_at ?? d.record.usage.job.started_at));
    if (!full) return undefined;
    const ok = this.sink.write(full);
    return ok ? undefined : new Promise<void>((resolve) => this.sink.once('drain', resolve));
  }

  /** Sends what is left, closes the COPY and returns what was learnt on the way. */
  async end(): Promise<StageFacts> {
    if (this.failure) throw this.failure;
    const rest = this.out.take();
    if (rest) this.sink.end(rest);
    else this.sink.end();
    await this.done;
    return { rows: this.rows, undecodable: this.undecodable, days: [...this.days], months: [...this.months], sightings: this.sightings.result() };
  }
}

/**
 * Builds one projection's (empty, index-less) shadow tables from a staged stream: first each identity's
 * winning revision (highest revision key in byte order, ties to the earlier message — the order the live
 * merges use), then the projection's build steps side by side on their own connections (this thread has
 * nothing to do meanwhile; Postgres gets both cores). Each step then gives its tables the live tables'
 * indexes: bulk inserts and index builds beat index maintenance row by row. The shadow tables are thrown
 * away if anything fails, so the steps need not share one transaction.
 */
export async function buildFromStage(pool: pg.Pool, projection: ProjectionName, t: Tables, stage: string, facts: StageFacts): Promise<void> {
  const win = `${stage}_win`;
  try {
    await pool.query(`drop table if exists ${q(win)}`);
    // Sorting only the keys and then picking the rows beats sorting whole rows (which spills sooner). Byte order
    // ("C") groups the same identities as any deterministic collation and sorts faster (abbreviated keys, no
    // strcoll): winners at 1M events 3.9/4.6 s -> 3.3/3.8 s under C.UTF-8, more under richer locales.
    await inTransaction(pool, async (client) => {
      await client.query(`set local work_mem = '256MB'; set local jit = off`);
      await client.query(`create unlogged table ${q(win)} as
        select * from ${q(stage)} where seq in (
          select distinct on (deployment_id, correlation_id collate "C") seq from ${q(stage)} where kind = 'usage'
          order by deployment_id, correlation_id collate "C", revision collate "C" desc, seq asc)`);
    });
    if (projection === 'raw') for (const d of [...facts.days].sort()) await ensurePartitions(pool, t.usageSample, d, 1);
    if (projection === 'rollups') for (const m of [...facts.months].sort()) await ensureHourlyPartitions(pool, t.hourly, m);
    const steps = projection === 'raw' ? rawBuild(t, stage, win) : projection === 'rollups' ? rollupsBuild(t, win) : concurrencyBuild(t, stage, win);
    await Promise.all(steps.map((step) => runStep(pool, t, step)));
    if (projection === 'raw') {
      // node/agent are not replayed tables: the same idempotent upserts as the live merge.
      const upserts = sightingUpserts(facts.sightings);
      if (upserts.length) await inTransaction(pool, async (client) => void (await client.query(upserts.join(';\n'))));
    }
  } finally {
    await pool.query(`drop table if exists ${q(win)}`).catch(() => undefined);
  }
}

async function runStep(pool: pg.Pool, t: Tables, step: BuildStep): Promise<void> {
  await inTransaction(pool, async (client) => {
    // Shadow tables are thrown away when a replay fails: no need to wait for the WAL flush.
    // jit: compiling took 0.1-0.3 s per statement and buys nothing on these single-pass scans.
    await client.query(`set local synchronous_commit = off; set local work_mem = '256MB'; set local maintenance_work_mem = '512MB'; set local jit = off`);
    for (const statement of step.sql) await client.query(statement);
    for (const k of step.indexes) await copyIndexes(client, LIVE[k] as string, t[k] as string);
  });
}

/** Creates on `target` the indexes and primary/unique keys `source` has. */
export async function copyIndexes(client: pg.ClientBase, source: string, target: string): Promise<void> {
  const keys = await client.query<{ def: string }>(
    `select pg_get_constraintdef(oid) as def from pg_constraint
     where conrelid = to_regclass(quote_ident(current_schema()) || '.' || $1) and contype in ('p', 'u')`,
    [source],
  );
  for (const { def } of keys.rows) await client.query(`alter table ${q(target)} add ${def}`);
  const indexes = await client.query<{ def: string }>(
    `select pg_get_indexdef(i.indexrelid) as def from pg_index i
     where i.indrelid = to_regclass(quote_ident(current_schema()) || '.' || $1)
       and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)`,
    [source],
  );
  for (const { def } of indexes.rows) {
    const using = / USING .*$/.exec(def)?.[0];
    if (!using) throw new Error(`cannot copy index of ${source}: ${def}`);
    await client.query(`create ${def.startsWith('CREATE UNIQUE') ? 'unique ' : ''}index on ${q(target)}${using}`);
  }
}
