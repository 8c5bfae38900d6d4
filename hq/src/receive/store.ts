import type pg from 'pg';
import { HQ_METRIC_FIELDS, InputError, type HqPushAnswer, type HqRollupRow } from '@kaching/contracts';

const TYPES: Record<(typeof HQ_METRIC_FIELDS)[number], string> = {
  cpu_seconds: 'numeric', gpu_seconds: 'numeric', disk_io_mb: 'numeric', net_in_mb: 'numeric', net_out_mb: 'numeric',
  context_reads: 'bigint', context_writes: 'bigint', context_bytes_read: 'bigint', context_bytes_written: 'bigint',
  model_tokens_in: 'bigint', model_tokens_out: 'bigint', jobs: 'bigint', jobs_succeeded: 'bigint', jobs_failed: 'bigint',
  seats_active: 'integer', nodes_active: 'integer', orchestration_peak_concurrency: 'integer',
};
const cols = HQ_METRIC_FIELDS.join(', ');
const recordType = HQ_METRIC_FIELDS.map((f) => `${f} ${TYPES[f]}`).join(', ');
const xcols = HQ_METRIC_FIELDS.map((f) => `x.${f}`).join(', ');
const updates = HQ_METRIC_FIELDS.map((f) => `${f} = excluded.${f}`).join(', ');

/**
 * Applies pushed rows: each (installation, deployment, day) keeps its highest revision. The same push
 * twice, or an older revision arriving late, changes nothing — that is what makes retries safe.
 */
export async function applyRows(pool: pg.Pool, installationId: string, rows: HqRollupRow[], now: Date): Promise<HqPushAnswer> {
  const keys = new Set<string>();
  for (const [i, r] of rows.entries()) {
    const k = `${r.deployment}/${r.day}`;
    if (keys.has(k)) throw new InputError('FIELD_FORMAT', { field: `rows.${i}`, rule: 'unique:deployment+day', message: `rows.${i} repeats deployment and day of an earlier row` });
    keys.add(k);
  }
  const r = await pool.query(
    `insert into hq_rollup_daily as h (installation_id, deployment, day, org, revision, deleted, ${cols}, received_at)
     select $1, x.deployment, x.day, x.org, x.revision, x.deleted, ${xcols}, $3
     from jsonb_to_recordset($2::jsonb) as x(deployment text, org text, day date, revision bigint, deleted boolean, ${recordType})
     on conflict (installation_id, deployment, day) do update set
       org = excluded.org, revision = excluded.revision, deleted = excluded.deleted, ${updates}, received_at = excluded.received_at
     where excluded.revision > h.revision`,
    [installationId, JSON.stringify(rows), now],
  );
  await pool.query('update hq_installation set last_push_at = $2 where installation_id = $1', [installationId, now]);
  const applied = r.rowCount ?? 0;
  return { received: rows.length, applied, ignored: rows.length - applied };
}
