import type pg from 'pg';

/** Usage winners of the batch: per identity the highest revision key (byte order), then the latest seq. */
export async function stageWinners(client: pg.ClientBase, analyze = false): Promise<void> {
  // Temp tables have no statistics; a rebuild stages far more rows than a live batch, so give the planner some.
  await client.query(`create temp table if not exists stg_win (like stg_events) on commit delete rows`);
  await client.query(`insert into stg_win select distinct on (deployment_id, correlation_id) * from stg_events
    where kind = 'usage' order by deployment_id, correlation_id, revision collate "C" desc, seq asc`);
  if (analyze) await client.query('analyze stg_win');
}

/** ANALYZE a temp table when rebuilding (see stageWinners). */
export async function analyzeIf(client: pg.ClientBase, on: boolean, table: string): Promise<void> {
  if (on) await client.query(`analyze ${table}`);
}

export const q = (ident: string): string => `"${ident.replace(/"/g, '""')}"`;
