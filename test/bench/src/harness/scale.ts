import { randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connectNats, createPool, currentPartitioning, ensureEventsStream, lanesOf, migrate, names, partitionOf, type BaseConfig } from '@kaching/contracts';
import { generateMessages, publishMessages } from '@kaching/projector';
import { cpuBetween, cpuSnapshot, type CpuUse } from './proc.js';

const KACHING_BIN = fileURLToPath(new URL('../../../../deploy/bin/kaching.mjs', import.meta.url));

export interface ScaleRow {
  /** Partitions and projector instances (each instance runs all three projections). */
  instances: number;
  events: number;
  seconds: number;
  eventsPerSecond: number;
  /** CPU over the run: the projector instances together, postgres, nats-server (and µs per event). */
  cpu: Record<string, CpuUse>;
  /** Why this count was not measured (the instances did not settle in time); the other counts still are. */
  error?: string;
}

/**
 * The partitioned pipeline with 1, 2, 4… partitions and as many projector processes: the same number of
 * events (spread over deployments on every partition) published while the instances, already started and
 * holding their leases, project them. On a 2-core machine more instances cannot add cores; what the row shows
 * is whether CPU per event stays flat — the price of leases, fencing and per-partition batches.
 */
export async function benchScale(o: { config: BaseConfig; counts: number[]; jobs: number; suffix: string; progress(line: string): void }): Promise<ScaleRow[]> {
  const rows: ScaleRow[] = [];
  for (const k of o.counts) {
    const namespace = `bs${k}${o.suffix}`;
    const cfg = { ...o.config, namespace };
    await migrate({ databaseUrl: cfg.databaseUrl, namespace });
    const pool = createPool({ databaseUrl: cfg.databaseUrl, namespace, max: 2 });
    const nc = await connectNats(cfg.natsUrl);
    const children: ChildProcess[] = [];
    try {
      const n = names(namespace);
      await ensureEventsStream(nc, n);
      await currentPartitioning(pool, k);
      // two deployments per partition, the jobs split evenly over them
      const org = randomUUID();
      await pool.query('insert into org (org_id, name) values ($1, $2)', [org, 'bench']);
      const deps: string[] = [];
      while (deps.length < 2 * k) {
        const d = randomUUID();
        if (deps.filter((x) => partitionOf(x, k) === partitionOf(d, k)).length >= 2) continue;
        deps.push(d);
        await pool.query('insert into deployment (deployment_id, org_id, name) values ($1, $2, $3)', [d, org, d.slice(0, 8)]);
      }
      const msgs = deps.flatMap((d, i) => generateMessages(n, { deploymentId: d, orgId: org, jobs: Math.ceil(o.jobs / deps.length), seed: 11 + i, partitions: k }));
      o.progress(`scale: ${k} partition(s), ${k} projector process(es), ${msgs.length} events`);
      const env = { ...process.env, DATABASE_URL: cfg.databaseUrl, NATS_URL: cfg.natsUrl, KACHING_NAMESPACE: namespace, KACHING_PARTITIONS: String(k), LOG_LEVEL: 'warn' };
      for (let i = 0; i < k; i++) {
        // port 0: each instance binds a port of its own (its metrics are not read here)
        children.push(spawn(process.execPath, [KACHING_BIN, 'projector'], { env: { ...env, PROJECTOR_PORT: '0', PROJECTOR_HOST: '127.0.0.1' }, stdio: 'ignore' }));
      }
      // every lane of every projection leased before the load starts (the instances have rebalanced)
      const lanes = lanesOf(k).length + 1;
      await until(async () => {
        const r = await pool.query<{ n: string; owners: string }>(
          `select count(*)::text as n, count(distinct owner)::text as owners from consumer_lease where owner is not null and expires_at > now()`,
        );
        return Number(r.rows[0]!.n) >= 3 * lanes && Number(r.rows[0]!.owners) === k;
      }, 90_000, 'every lane leased by the instances');
      const pids = Object.fromEntries(children.map((c, i) => [`projector ${i + 1}`, c.pid]));
      const before = cpuSnapshot(pids);
      const t0 = performance.now();
      await publishMessages(jetstream(nc), msgs);
      const last = (await (await jetstreamManager(nc)).streams.info(n.eventsStream)).state.last_seq;
      // caught up: every lane's checkpoint is at the last message of its subject
      const jsm = await jetstreamManager(nc);
      const tails = await Promise.all(
        lanesOf(k).map(async (lane) => {
          const m = await jsm.streams.getMessage(n.eventsStream, { last_by_subj: n.laneFilter(lane) }).catch(() => null);
          return { lane: lane.id, seq: m?.seq ?? 0 };
        }),
      );
      await until(async () => {
        const r = await pool.query<{ consumer: string; lane: string; last_seq: string }>(`select consumer, lane, last_seq from consumer_checkpoint`);
        return ['raw', 'rollups', 'concurrency'].every((c) =>
          tails.every((t) => t.seq === 0 || Number(r.rows.find((x) => x.consumer === c && x.lane === t.lane)?.last_seq ?? 0) >= t.seq),
        );
      }, 600_000, `projections at ${last}`);
      const seconds = (performance.now() - t0) / 1000;
      const raw = cpuBetween(before, cpuSnapshot(pids));
      const projector = Object.entries(raw).filter(([key]) => key.startsWith('projector')).reduce((a, [, v]) => ({ seconds: a.seconds + v.seconds, percent: a.percent + v.percent }), { seconds: 0, percent: 0 });
      const cpu: Record<string, CpuUse> = { [`projector ×${k}`]: projector };
      for (const key of ['postgres', 'nats-server']) if (raw[key]) cpu[key] = raw[key]!;
      rows.push({ instances: k, events: msgs.length, seconds, eventsPerSecond: Math.round(msgs.length / seconds), cpu });
    } catch (err) {
      rows.push({ instances: k, events: 0, seconds: 0, eventsPerSecond: 0, cpu: {}, error: (err as Error).message });
      o.progress(`scale: ${k} partition(s) not measured: ${(err as Error).message}`);
    } finally {
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((r) => {
              if (c.exitCode !== null) return r();
              c.once('exit', () => r());
              c.kill('SIGTERM');
            }),
        ),
      );
      const jsm = await jetstreamManager(nc).catch(() => null);
      await jsm?.streams.delete(names(namespace).eventsStream).catch(() => undefined);
      await nc.close().catch(() => undefined);
      await pool.end().catch(() => undefined);
    }
  }
  return rows;
}

async function until(cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
