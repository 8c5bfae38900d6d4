import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { signEvent, type UsageEvent } from '@kaching/contracts';
import { sampleUsage, loadConfig as ingestConfig, type IngestConfig } from '@kaching/ingest';
import { loadConfig, type ArchiverConfig } from '@kaching/archiver';
import type { IsolatedEnv } from '../../test/support/isolation.js';
import type { SeededDeployment } from '../../ingest/test/support.js';

export const tempDir = (tag: string) => mkdtemp(join(tmpdir(), `kaching-${tag}-`));

export function archiverConfig(env: IsolatedEnv, dir: string, over: Partial<ArchiverConfig> = {}): ArchiverConfig {
  return { ...loadConfig(env.env), archiveDir: dir, s3: null, port: 0, host: '127.0.0.1', logLevel: 'warn', segmentEvents: 50, segmentSeconds: 1, checkIntervalMs: 3_600_000, ...over };
}

export function ingestTestConfig(env: IsolatedEnv): IngestConfig {
  return { ...ingestConfig(env.env), port: 0, host: '127.0.0.1', verifyWorkers: 1, logLevel: 'warn' };
}

/** n signed usage events with varied metrics (so sums mean something). */
export function fleet(d: SeededDeployment, n: number, from = 0): UsageEvent[] {
  return Array.from({ length: n }, (_, k) => {
    const i = from + k;
    const u = sampleUsage(d.deploymentId, { correlationId: `job-${i}`, endedAt: new Date(Date.now() - 60_000 + i) });
    u.metrics.cpu_seconds = (i % 13) * 0.25 + 1;
    u.metrics.context_bytes_read = i * 1000;
    u.llm = { ...u.llm!, tokens_in: 100 + i * 7, tokens_out: i % 17 };
    return signEvent(u, d.keyId, d.secretKey) as UsageEvent;
  });
}

export async function postBatch(ingestUrl: string, token: string, events: UsageEvent[]): Promise<void> {
  const r = await fetch(`${ingestUrl}/v1/ingest/batch`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ events }) });
  const body = (await r.json()) as { results?: { status: number }[] };
  if (r.status >= 300 && r.status !== 207) throw new Error(`ingest answered ${r.status}: ${JSON.stringify(body)}`);
  const refused = body.results?.filter((x) => x.status !== 202) ?? [];
  if (refused.length) throw new Error(`ingest refused ${refused.length} events: ${JSON.stringify(refused[0])}`);
}

/** DuckDB, as an independent reader of the segments. */
export async function duck(sql: string): Promise<unknown[][]> {
  const inst = await DuckDBInstance.create(':memory:');
  const c = await inst.connect();
  try {
    return (await c.runAndReadAll(sql)).getRows() as unknown[][];
  } finally {
    c.closeSync();
    inst.closeSync();
  }
}

export async function archiverCheckpoint(env: IsolatedEnv): Promise<number> {
  const r = await env.pool.query<{ s: string | null }>(`select max(last_seq) as s from consumer_checkpoint where consumer = 'archiver'`);
  return Number(r.rows[0]?.s ?? 0);
}
