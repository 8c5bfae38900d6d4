import type pg from 'pg';

/** Usage winners of the batch: per identity the highest revision key (byte order), then the latest seq. */
export async function stageWinners(client: pg.ClientBase): Promise<void> {
  await client.query(`create temp table if not exists stg_win (like stg_events) on commit delete rows`);
  await client.query(`insert into stg_win select distinct on (deployment_id, correlation_id) * from stg_events
    where kind = 'usage' order by deployment_id, correlation_id, revision collate "C" desc, seq asc`);
}

export const q = (ident: string): string => `"${ident.replace(/"/g, '""')}"`;
