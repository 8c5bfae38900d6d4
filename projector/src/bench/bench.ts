import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import copyStreams from 'pg-copy-streams';
import type pg from 'pg';
import { connectNats, createPool, ensureEventsStream, names, PROJECTIONS, type BaseConfig, type ProjectionName } from '@kaching/contracts';
import { loadConfig } from '../config.js';
import { ensurePartitions, utcDay } from '../db/partitions.js';
import { q } from '../projections/common.js';
import { replay, replayPhaseText, type ReplayResult } from '../replay.js';
import { start } from '../service.js';
import { generateMessages, publishMessages } from './generate.js';

export interface BenchOptions {
  /** Installation to run in (use a dedicated namespace + database: the bench writes data). */
  config: BaseConfig;
  /** Distinct jobs to generate (events ≈ 1.25x jobs incl. revisions, heartbeats and 10% duplicates). Skipped when the stream already holds events and `reuseStream`. */
  jobs: number;
  batchSize?: number;
  reuseStream?: boolean;
  onProgress?(line: string): void;
}

export interface BenchProjectorResult {
  events: number;
  publishSeconds: number;
  projections: Record<ProjectionName, { seconds: number; eventsPerSecond: number }>;
}

export interface BenchReplayResult {
  events: number;
  replay: Record<ProjectionName, { seconds: number; eventsPerSecond: number; phases: ReplayResult['phases'] }>;
  rawCopy: { rows: number; seconds: number; rowsPerSecond: number };
  /** replay raw events/s divided by raw COPY rows/s. */
  ratio: number;
}

async function seedDeployment(pool: pg.Pool): Promise<{ orgId: string; deploymentId: string }> {
  const orgId = randomUUID();
  const deploymentId = randomUUID();
  await pool.query('insert into org (org_id, name) values ($1, $2)', [orgId, 'bench']);
  await pool.query('insert into deployment (deployment_id, org_id, name) values ($1, $2, $3)', [deploymentId, orgId, 'bench']);
  return { orgId, deploymentId };
}

/** Fills the stream (unless reused) and returns its last sequence. */
async function fillStream(o: BenchOptions, pool: pg.Pool): Promise<{ lastSeq: number; publishSeconds: number }> {
  const n = names(o.config.namespace);
  const nc = await connectNats(o.config.natsUrl);
  try {
    await ensureEventsStream(nc, n);
    const jsm = await jetstreamManager(nc);
    let si = await jsm.streams.info(n.eventsStream);
    if (o.reuseStream && si.state.messages > 0) return { lastSeq: si.state.last_seq, publishSeconds: 0 };
    const { orgId, deploymentId } = await seedDeployment(pool);
    const msgs = generateMessages(n, { deploymentId, orgId, jobs: o.jobs, seed: 7 });
    o.onProgress?.(`publishing ${msgs.length} events`);
    const t0 = Date.now();
    await publishMessages(jetstream(nc), msgs);
    si = await jsm.streams.info(n.eventsStream);
    return { lastSeq: si.state.last_seq, publishSeconds: (Date.now() - t0) / 1000 };
  } finally {
    await nc.close();
  }
}

async function waitCheckpoint(pool: pg.Pool, projection: string, seq: number): Promise<void> {
  for (;;) {
    const r = await pool.query<{ last_seq: string }>('select max(last_seq) as last_seq from consumer_checkpoint where consumer = $1', [projection]);
    if (Number(r.rows[0]?.last_seq ?? 0) >= seq) return;
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** Throughput of each live consumer alone (one after the other) over the same stream. */
export async function benchProjector(o: BenchOptions): Promise<BenchProjectorResult> {
  const pool = createPool({ databaseUrl: o.config.databaseUrl, namespace: o.config.namespace, max: 2 });
  try {
    const { lastSeq, publishSeconds } = await fillStream(o, pool);
    const projections = {} as BenchProjectorResult['projections'];
    for (const p of PROJECTIONS) {
      const r0 = await pool.query<{ last_seq: string }>('select max(last_seq) as last_seq from consumer_checkpoint where consumer = $1', [p]);
      const from = Number(r0.rows[0]?.last_seq ?? 0);
      const t0 = Date.now();
      const h = await start({ ...loadConfig({}), ...o.config, port: 0, host: '127.0.0.1', projections: [p], batchSize: o.batchSize ?? 1000 });
      await waitCheckpoint(pool, p, lastSeq);
      const seconds = (Date.now() - t0) / 1000;
      await h.close();
      projections[p] = { seconds, eventsPerSecond: (lastSeq - from) / seconds };
      o.onProgress?.(`${p}: ${Math.round(projections[p].eventsPerSecond)} events/s`);
    }
    return { events: lastSeq, publishSeconds, projections };
  } finally {
    await pool.end();
  }
}

/** Replay of each projection over the whole stream, next to a COPY of as many rows into a usage_sample-shaped table. */
export async function benchReplay(o: BenchOptions): Promise<BenchReplayResult> {
  const pool = createPool({ databaseUrl: o.config.databaseUrl, namespace: o.config.namespace, max: 3 });
  try {
    const { lastSeq } = await fillStream(o, pool);
    const out = {} as BenchReplayResult['replay'];
    for (const p of PROJECTIONS) {
      const r = await replay(o.config, p, { batchSize: o.batchSize, pool });
      out[p] = { seconds: r.seconds, eventsPerSecond: r.events / r.seconds, phases: r.phases };
      o.onProgress?.(`replay ${p}: ${r.events} events, ${Math.round(out[p].eventsPerSecond)} events/s (${replayPhaseText(r.phases)})`);
    }
    const rawCopy = await copyBaseline(pool, lastSeq);
    o.onProgress?.(`raw COPY: ${Math.round(rawCopy.rowsPerSecond)} rows/s`);
    return { events: lastSeq, replay: out, rawCopy, ratio: out.raw.eventsPerSecond / rawCopy.rowsPerSecond };
  } finally {
    await pool.end();
  }
}

/** COPY `rows` synthetic rows into a partitioned clone of usage_sample (same indexes), then drop it. */
async function copyBaseline(pool: pg.Pool, rows: number): Promise<BenchReplayResult['rawCopy']> {
  const t = 'usage_sample__bench';
  const org = randomUUID();
  const dep = randomUUID();
  const client = await pool.connect();
  try {
    await client.query(`drop table if exists ${q(t)}`);
    await client.query(`create table ${q(t)} (like usage_sample including all) partition by range (started_at)`);
    const base = Date.now() - 2 * 86_400_000;
    await ensurePartitions(client, t, utcDay(base), 3);
    const t0 = Date.now();
    const lines = function* () {
      for (let i = 0; i < rows; i++) {
        const s = new Date(base + (i % 172_800) * 1000).toISOString();
        yield `${dep}\tjob-${i}\t${s}\t${org}\t${dep}\t${dep}\t${dep}\tcoder\t${s}\tsucceeded\t1.5\t0.25\t1024.5\t10.5\t1.5\t0.5\t10\t5\t100000\t20000\tm\tlocal\t100\t50\t0\t0\t{}\trev-${i}\t${i}\n`;
      }
    };
    const sink = client.query(copyStreams.from(`copy ${q(t)} (deployment_id, correlation_id, started_at, org_id, job_id, agent_id, node_id,
      agent_type, ended_at, status, cpu_seconds, gpu_seconds, ram_mb_peak, disk_io_mb, net_in_mb, net_out_mb, context_reads,
      context_writes, context_bytes_read, context_bytes_written, model_name, provider, model_tokens_in, model_tokens_out,
      model_tokens_cached_in, model_tokens_reasoning, flags, revision, stream_seq) from stdin`));
    await pipeline(Readable.from(lines()), sink);
    const seconds = (Date.now() - t0) / 1000;
    return { rows, seconds, rowsPerSecond: rows / seconds };
  } finally {
    await client.query(`drop table if exists ${q(t)}`).catch(() => undefined);
    client.release();
  }
}
