import type pg from 'pg';
import { HQ_METRIC_FIELDS } from '@kaching/contracts';

// HQ's cross-installation view and an installation's sync state. These tables are installation-wide
// (no org owns them): only the operator's pool reads them, behind the operator scope.

const sums = HQ_METRIC_FIELDS.map((f) => `coalesce(sum(${f}), 0)::text as ${f}`).join(', ');

export async function hqInstallations(pool: pg.Pool) {
  const r = await pool.query(
    `select i.installation_id, i.name, encode(i.cert_sha256, 'hex') as cert_sha256, i.created_at, i.revoked_at, i.last_push_at,
            count(distinct r.deployment) filter (where not r.deleted)::int as deployments,
            count(*) filter (where r.day is not null and not r.deleted)::int as rows,
            min(r.day) filter (where not r.deleted)::text as first_day, max(r.day) filter (where not r.deleted)::text as last_day
     from hq_installation i left join hq_rollup_daily r on r.installation_id = i.installation_id
     group by i.installation_id order by i.name, i.installation_id`,
  );
  return r.rows;
}

/** Per day across installations (or one), plus the totals over the window: sums of what installations pushed. */
export async function hqUsageDaily(pool: pg.Pool, q: { from?: string; to?: string; installation_id?: string }) {
  const where = ['not deleted'];
  const params: unknown[] = [];
  if (q.from) where.push(`day >= $${params.push(q.from)}`);
  if (q.to) where.push(`day <= $${params.push(q.to)}`);
  if (q.installation_id) where.push(`installation_id = $${params.push(q.installation_id)}`);
  const w = where.join(' and ');
  const days = await pool.query(
    `select day::text as day, count(distinct installation_id)::int as installations, count(distinct (installation_id, deployment))::int as deployments, ${sums}
     from hq_rollup_daily where ${w} group by day order by day`,
    params,
  );
  const totals = await pool.query(
    `select count(distinct installation_id)::int as installations, count(distinct (installation_id, deployment))::int as deployments, count(*)::int as rows, ${sums}
     from hq_rollup_daily where ${w}`,
    params,
  );
  return { items: days.rows, totals: totals.rows[0] };
}

/** The installation side: what waits in the outbox and how the last pushes went. */
export async function hqSyncState(pool: pg.Pool) {
  const outbox = await pool.query<{ rows: number; pending: number; oldest_pending_at: string | null }>(
    `select count(*)::int as rows, count(*) filter (where revision > pushed_revision)::int as pending,
            min(to_timestamp(revision / 1000.0)) filter (where revision > pushed_revision) as oldest_pending_at
     from hq_outbox`,
  );
  const state = await pool.query('select last_attempt_at, last_success_at, last_error, consecutive_failures, rows_pushed from hq_sync_state');
  return { outbox: outbox.rows[0], ...(state.rows[0] ?? { last_attempt_at: null, last_success_at: null, last_error: null, consecutive_failures: 0, rows_pushed: '0' }) };
}
