import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, start, type ApiHandle } from '@kaching/api';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { seedOrg, type SeededOrg } from './support/seed.js';

const ROWS = 100_000;
let env: IsolatedEnv;
let api: ApiHandle;
let A: SeededOrg;

beforeAll(async () => {
  env = await isolatedEnv();
  A = await seedOrg(env.pool, 'alpha');
  await env.pool.query(`select ensure_usage_partitions(current_date - 9, 10)`);
  // 100k wide samples spread over the last 9 days (plus the one seedOrg wrote)
  await env.pool.query(
    `insert into usage_sample (deployment_id, correlation_id, started_at, org_id, job_id, agent_id, node_id, agent_type, status,
       cpu_seconds, gpu_seconds, ram_mb_peak, context_bytes_written, model_name, provider, model_tokens_in, model_tokens_out, revision, stream_seq)
     select $1, 'bulk-' || g, current_date - 9 + make_interval(secs => g * 7), $2, gen_random_uuid(), $3, $4, 'bulk-agent-type-with-a-long-name', 'succeeded',
       g % 1000 + 0.123456, g % 77, 2048.5, g * 10, 'some-model-name-v1', 'local', g, g * 2, 'rev-' || g, g
     from generate_series(1, ${ROWS}) g`,
    [A.deploymentId, A.orgId, A.agentId, A.nodeId],
  );
  api = await start({ ...loadConfig(env.env), port: 0 }, { pool: env.pool, nc: await env.nats() });
}, 120_000);

afterAll(async () => {
  await api?.close();
  await env?.cleanup();
});

async function copyIsRunning(): Promise<boolean> {
  const r = await env.pool.query(`select count(*)::int as n from pg_stat_activity where datname = current_database() and state = 'active' and query ilike 'copy (select%'`);
  return r.rows[0].n > 0;
}

describe('GET /v1/usage/export.csv', () => {
  it('streams 100k rows: the first bytes arrive while COPY still runs, a paused reader holds the query back, and every row arrives', async () => {
    const url = new URL(`/v1/usage/export.csv?deployment_id=${A.deploymentId}`, api.url);
    const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http.get(url, { headers: { authorization: `Bearer ${A.readKey}` } }, resolve).on('error', reject),
    );
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/csv');
    expect(res.headers['transfer-encoding']).toBe('chunked'); // no content-length: the size was never known up front

    // take the first chunk, then stop reading
    const first: Buffer = await new Promise((resolve) =>
      res.once('data', (b: Buffer) => {
        res.pause(); // synchronously, so no further chunk is emitted unseen
        resolve(b);
      }),
    );
    expect(first.toString('utf8')).toMatch(/^deployment_id,correlation_id,/);
    // while the reader is paused the server cannot have run the query to completion:
    // the COPY is still active in Postgres, held back by backpressure through the socket
    await new Promise((r) => setTimeout(r, 300));
    expect(await copyIsRunning()).toBe(true);
    const heapBefore = process.memoryUsage().heapUsed;

    // now drain it, counting lines without keeping them
    let lines = 0;
    let bytes = first.length;
    let peakHeapGrowth = 0;
    lines += countNewlines(first);
    await new Promise<void>((resolve, reject) => {
      res.on('data', (b: Buffer) => {
        lines += countNewlines(b);
        bytes += b.length;
        peakHeapGrowth = Math.max(peakHeapGrowth, process.memoryUsage().heapUsed - heapBefore);
      });
      res.on('end', resolve);
      res.on('error', reject);
      res.resume();
    });
    expect(lines).toBe(ROWS + 1 + 1); // header + bulk rows + the seeded sample
    expect(bytes).toBeGreaterThan(20_000_000);
    // the whole export is > 20 MB; server and reader together stayed far below holding it (generous bound for GC noise)
    expect(peakHeapGrowth).toBeLessThan(bytes / 2);
    expect(await copyIsRunning()).toBe(false);
  });

  it('a client that disconnects mid-export releases the connection and the API keeps serving', async () => {
    const url = new URL(`/v1/usage/export.csv`, api.url);
    const req = http.get(url, { headers: { authorization: `Bearer ${A.readKey}` } });
    const res = await new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve));
    await new Promise((resolve) => res.once('data', resolve));
    req.destroy();
    // the aborted COPY must not leave a connection stuck: the pool (max 5) keeps answering
    for (let i = 0; i < 8; i++) {
      const r = await fetch(new URL('/v1/usage/daily', api.url), { headers: { authorization: `Bearer ${A.readKey}` } });
      expect(r.status).toBe(200);
    }
    for (let i = 0; i < 50 && (await copyIsRunning()); i++) await new Promise((r) => setTimeout(r, 100));
    expect(await copyIsRunning()).toBe(false);
  });
});

function countNewlines(b: Buffer): number {
  let n = 0;
  for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) n++;
  return n;
}
