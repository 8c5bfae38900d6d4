import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { lanesOf, LEGACY_LANE, partitionOf, type Lane, type Names } from '@kaching/contracts';

/** Deployment ids chosen so that every partition of `count` gets `perPartition` of them. */
export function deploymentsCovering(count: number, perPartition: number): string[] {
  const need = new Map<number, number>(Array.from({ length: count }, (_, p) => [p, perPartition]));
  const out: string[] = [];
  while ([...need.values()].some((v) => v > 0)) {
    const id = randomUUID();
    const p = partitionOf(id, count);
    if (need.get(p)! > 0) {
      need.set(p, need.get(p)! - 1);
      out.push(id);
    }
  }
  return out;
}

export async function seedDeployments(pool: pg.Pool, orgId: string, ids: string[]): Promise<void> {
  await pool.query('insert into org (org_id, name) values ($1, $2) on conflict do nothing', [orgId, 'scale org']);
  for (const id of ids) await pool.query('insert into deployment (deployment_id, org_id, name) values ($1, $2, $3) on conflict do nothing', [id, orgId, `dep ${id.slice(0, 8)}`]);
}

/** Messages the stream holds in one lane (from sequence `after` + 1). */
export async function laneCount(nc: NatsConnection, n: Names, lane: Lane, after = 0): Promise<number> {
  const c = await jetstream(nc).consumers.get(n.eventsStream, { filter_subjects: n.laneFilter(lane), deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 });
  const pending = (await c.info(true)).num_pending;
  await c.delete().catch(() => undefined);
  return pending;
}

/** Lanes of the given counts, plus legacy. */
export function lanesFor(...counts: number[]): Lane[] {
  return [LEGACY_LANE, ...counts.flatMap((c) => lanesOf(c))];
}

export async function lanesCaughtUp(pool: pg.Pool, nc: NatsConnection, n: Names, consumers: string[]): Promise<boolean> {
  const r = await pool.query<{ consumer: string; lane: string; last_seq: string; retired: boolean }>(
    'select consumer, lane, last_seq, retired_at is not null as retired from consumer_checkpoint where consumer = any($1)',
    [consumers],
  );
  if (!r.rows.length) return false;
  for (const row of r.rows) {
    const lane = row.lane === 'legacy' ? LEGACY_LANE : { id: row.lane, count: Number(row.lane.split('.')[0]), partition: Number(row.lane.split('.')[1]) };
    if ((await laneCount(nc, n, lane, Number(row.last_seq))) > 0) return false;
  }
  return true;
}

export async function streamMessages(nc: NatsConnection, n: Names): Promise<number> {
  return (await (await jetstreamManager(nc)).streams.info(n.eventsStream)).state.messages;
}

/** A digest of a table's rows (columns filled by now() left out), to compare two installations. */
export async function tableDigest(pool: pg.Pool, table: string): Promise<string> {
  const cols = await pool.query<{ column_name: string }>(
    `select column_name from information_schema.columns
      where table_schema = current_schema() and table_name = $1 and coalesce(column_default, '') not like '%now()%' order by ordinal_position`,
    [table],
  );
  const list = cols.rows.map((c) => `"${c.column_name}"`).join(', ');
  const r = await pool.query<{ d: string | null; n: string }>(`select md5(string_agg(x, '|' order by x)) as d, count(*)::text as n from (select row(${list})::text as x from ${table}) t`);
  return `${r.rows[0]!.n}:${r.rows[0]!.d}`;
}

export const PROJECTION_TABLES = ['job', 'usage_sample', 'usage_rollup_hourly', 'usage_rollup_daily', 'concurrency_minute'];

export async function waitFor(cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Owner per lane of one consumer (live leases only). */
export async function owners(pool: pg.Pool, consumer: string): Promise<Map<string, string>> {
  const r = await pool.query<{ lane: string; owner: string }>(
    'select lane, owner from consumer_lease where consumer = $1 and owner is not null and expires_at > now()',
    [consumer],
  );
  return new Map(r.rows.map((x) => [x.lane, x.owner]));
}
