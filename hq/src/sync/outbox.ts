import type pg from 'pg';
import { HQ_METRIC_FIELDS, hqPseudonym, type HqRollupRow, type InstallationIdentity } from '@kaching/contracts';

/**
 * The outbox holds, per (deployment, day) of usage_rollup_daily, exactly the redacted row HQ gets.
 * `stage` compares each rollup row with what the outbox last took from it (an md5 over the policy's
 * fields) and, where it differs, stores the new redacted row under a higher revision; rows that
 * vanished become tombstones. `pending` and `markPushed` then move rows to HQ. Nothing here touches
 * the tables ingest or the projector write: the outbox is read from them, never the other way.
 */

const fieldText = HQ_METRIC_FIELDS.map((f) => `d.${f}::text as ${f}`).join(', ');
const contentHash = `md5(concat_ws('|', ${HQ_METRIC_FIELDS.map((f) => `d.${f}::text`).join(', ')}))`;

type RollupRow = { deployment_id: string; org_id: string; day: string; content_hash: string } & Record<(typeof HQ_METRIC_FIELDS)[number], string>;

/** The redacted row (without its revision, which the outbox assigns). */
export function redactRow(salt: Buffer, r: { deployment_id: string; org_id: string; day: string } & Partial<Record<(typeof HQ_METRIC_FIELDS)[number], string>>, deleted = false): Omit<HqRollupRow, 'revision'> {
  const row: Record<string, unknown> = {
    deployment: hqPseudonym(salt, 'deployment', r.deployment_id),
    org: hqPseudonym(salt, 'org', r.org_id),
    day: r.day,
    deleted,
  };
  for (const f of HQ_METRIC_FIELDS) row[f] = deleted ? '0' : (r[f] ?? '0');
  return row as Omit<HqRollupRow, 'revision'>;
}

async function upsert(pool: pg.Pool, rows: { deployment_id: string; day: string; content_hash: string; payload: object }[], revision: number): Promise<void> {
  if (rows.length === 0) return;
  // revision: the clock in ms, but always above the row's previous one (it survives a lost outbox too)
  await pool.query(
    `insert into hq_outbox as o (deployment_id, day, content_hash, revision, payload)
     select x.deployment_id, x.day, x.content_hash, $2::bigint, x.payload || jsonb_build_object('revision', $2::bigint)
     from jsonb_to_recordset($1::jsonb) as x(deployment_id uuid, day date, content_hash text, payload jsonb)
     on conflict (deployment_id, day) do update set
       content_hash = excluded.content_hash,
       revision = greatest(o.revision + 1, excluded.revision),
       payload = excluded.payload || jsonb_build_object('revision', greatest(o.revision + 1, excluded.revision))
     where o.content_hash is distinct from excluded.content_hash`,
    [JSON.stringify(rows), revision],
  );
}

/** Brings the outbox up to date with usage_rollup_daily; returns how many rows got a new revision. */
export async function stage(pool: pg.Pool, identity: InstallationIdentity, now: Date, chunk = 5000): Promise<number> {
  let staged = 0;
  for (;;) {
    const r = await pool.query<RollupRow>(
      `select d.deployment_id, d.org_id, d.day::text as day, ${fieldText}, h.content_hash
       from usage_rollup_daily d
       cross join lateral (select ${contentHash} as content_hash) h
       left join hq_outbox o on o.deployment_id = d.deployment_id and o.day = d.day
       where o.content_hash is distinct from h.content_hash
       limit $1`,
      [chunk],
    );
    await upsert(
      pool,
      r.rows.map((row) => ({ deployment_id: row.deployment_id, day: row.day, content_hash: row.content_hash, payload: redactRow(identity.hqSalt, row) })),
      now.getTime(),
    );
    staged += r.rows.length;
    if (r.rows.length < chunk) break;
  }
  // rows gone from usage_rollup_daily: HQ must drop them too, or its totals would keep them
  const gone = await pool.query<{ deployment_id: string; day: string; org: string }>(
    `select o.deployment_id, o.day::text as day, o.payload->>'org' as org from hq_outbox o
     where o.content_hash <> 'deleted'
       and not exists (select 1 from usage_rollup_daily d where d.deployment_id = o.deployment_id and d.day = o.day)`,
  );
  await upsert(
    pool,
    gone.rows.map((g) => {
      const payload = { ...redactRow(identity.hqSalt, { deployment_id: g.deployment_id, org_id: '', day: g.day }, true), org: g.org };
      return { deployment_id: g.deployment_id, day: g.day, content_hash: 'deleted', payload };
    }),
    now.getTime(),
  );
  return staged + gone.rows.length;
}

export interface PendingRow {
  deployment_id: string;
  day: string;
  revision: string;
  payload: HqRollupRow;
}

/** The next rows HQ has not acknowledged, oldest revision first. */
export async function pending(pool: pg.Pool, limit: number): Promise<PendingRow[]> {
  const r = await pool.query<PendingRow>(
    `select deployment_id, day::text as day, revision::text as revision, payload from hq_outbox
     where revision > pushed_revision order by revision, deployment_id, day limit $1`,
    [limit],
  );
  return r.rows;
}

/** HQ acknowledged these revisions (a newer revision staged meanwhile stays pending). */
export async function markPushed(pool: pg.Pool, rows: PendingRow[], now: Date): Promise<void> {
  await pool.query(
    `update hq_outbox o set pushed_revision = greatest(o.pushed_revision, x.revision), pushed_at = $2
     from jsonb_to_recordset($1::jsonb) as x(deployment_id uuid, day date, revision bigint)
     where o.deployment_id = x.deployment_id and o.day = x.day`,
    [JSON.stringify(rows.map((r) => ({ deployment_id: r.deployment_id, day: r.day, revision: r.revision }))), now],
  );
}

export async function outboxCounts(pool: pg.Pool): Promise<{ rows: number; pending: number }> {
  const r = await pool.query<{ rows: number; pending: number }>(
    'select count(*)::int as rows, count(*) filter (where revision > pushed_revision)::int as pending from hq_outbox',
  );
  return r.rows[0]!;
}
