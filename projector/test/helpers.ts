import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { decodeStreamRecord, revisionKey, type Names } from '@kaching/contracts';
import { generateMessages, type GeneratedMessage, type GenerateOptions } from '../src/bench/generate.js';
import { pickWinner } from '../src/records.js';

export async function seedDeployment(pool: pg.Pool): Promise<{ orgId: string; deploymentId: string }> {
  const orgId = randomUUID();
  const deploymentId = randomUUID();
  await pool.query('insert into org (org_id, name) values ($1, $2)', [orgId, 'test org']);
  await pool.query('insert into deployment (deployment_id, org_id, name) values ($1, $2, $3)', [deploymentId, orgId, 'test dep']);
  return { orgId, deploymentId };
}

export function makeStream(n: Names, o: GenerateOptions): GeneratedMessage[] {
  return generateMessages(n, o);
}

/**
 * The highest lane checkpoint of a consumer. With one partition every new event is in one lane, so this
 * is "applied up to"; multi-partition tests compare each lane with its own last sequence instead.
 */
export async function checkpoint(pool: pg.Pool, projection: string): Promise<number> {
  const r = await pool.query<{ last_seq: string | null }>('select max(last_seq) as last_seq from consumer_checkpoint where consumer = $1', [projection]);
  return Number(r.rows[0]?.last_seq ?? 0);
}

export async function waitFor(cond: () => Promise<boolean>, timeoutMs = 60_000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function waitCaughtUp(pool: pg.Pool, lastSeq: number, projections = ['raw', 'rollups', 'concurrency'], timeoutMs = 120_000): Promise<void> {
  await waitFor(async () => {
    for (const p of projections) if ((await checkpoint(pool, p)) < lastSeq) return false;
    return true;
  }, timeoutMs, `checkpoints at ${lastSeq}`);
}

/** The winning revision per correlation id, computed in JS straight from the generated messages. */
export function expectedWinners(msgs: GeneratedMessage[]): Map<string, { revision: string; contextBytesRead: number; tokensIn: number }> {
  const by = new Map<string, { revision: string; seq: number; contextBytesRead: number; tokensIn: number }[]>();
  msgs.forEach((m, seq) => {
    const r = decodeStreamRecord(m.data);
    if (r.kind !== 'usage') return;
    const list = by.get(m.correlationId) ?? [];
    list.push({ revision: revisionKey(r.usage), seq, contextBytesRead: r.usage.metrics.context_bytes_read, tokensIn: r.usage.llm?.tokens_in ?? 0 });
    by.set(m.correlationId, list);
  });
  const out = new Map<string, { revision: string; contextBytesRead: number; tokensIn: number }>();
  for (const [k, list] of by) out.set(k, pickWinner(list)!);
  return out;
}

/** Independent recomputation of the rollup totals from usage_sample, compared with both rollup tables. */
export async function rollupTotals(pool: pg.Pool): Promise<Record<string, string>[]> {
  const cols = ['cpu_seconds', 'gpu_seconds', 'disk_io_mb', 'net_in_mb', 'net_out_mb', 'context_reads', 'context_writes',
    'context_bytes_read', 'context_bytes_written', 'model_tokens_in', 'model_tokens_out'];
  const sel = (t: string) => `select '${t}' as src, ${cols.map((c) => `coalesce(sum(${c}), 0)::text as ${c}`).join(', ')} from ${t}`;
  const r = await pool.query(`${sel('usage_sample')} union all ${sel('usage_rollup_hourly')} union all ${sel('usage_rollup_daily')}`);
  return r.rows;
}

export async function tableSnapshot(pool: pg.Pool, table: string, order: string): Promise<string> {
  const r = await pool.query(`select * from ${table} order by ${order}`);
  return JSON.stringify(r.rows);
}
