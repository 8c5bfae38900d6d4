import { randomBytes } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { baseConfig, cryptoReady, migrate, names, type BaseConfig } from '@kaching/contracts';
import { loadConfig as ingestConfig, selfBenchIngest, signedUsage } from '@kaching/ingest';
import { benchProjector, benchReplay, replayPhaseText } from '@kaching/projector';
import { benchDecisionLatency } from '@kaching/enforcer';
import { generateSigningKeyPair } from '@kaching/contracts';
import { noopFastifyPost } from './ceilings.js';
import { benchEventToRollup, type EventToRollupResult } from './eventToRollup.js';

export interface BenchPlan {
  ingestEvents: number;
  projectorJobs: number;
  decisionRate: number;
  decisionSeconds: number;
  /** Offered ingest rates (events/s) at which event-to-rollup latency is measured, and for how long. */
  rollupRates: number[];
  rollupSeconds: number;
}

export const QUICK: BenchPlan = {
  ingestEvents: 20_000, projectorJobs: 16_000, decisionRate: 2_000, decisionSeconds: 8, rollupRates: [2_000, 5_000], rollupSeconds: 6,
};
// ~780k jobs make ~1M events (revisions, heartbeats and 10% duplicates)
export const FULL: BenchPlan = {
  ingestEvents: 40_000, projectorJobs: 780_000, decisionRate: 2_000, decisionSeconds: 30, rollupRates: [2_000, 5_000], rollupSeconds: 20,
};

export const RESULTS_DIR = fileURLToPath(new URL('../results/', import.meta.url));

interface Row {
  figure: string;
  value: string;
  ceiling?: string;
  ratio?: number;
  target?: string;
}

/** One run: ceilings and pipeline side by side, in a database and namespace of its own (dropped afterwards). */
export async function runBench(plan: BenchPlan, progress: (line: string) => void): Promise<{ machine: Record<string, string>; rows: Row[]; raw: Record<string, unknown> }> {
  const base = baseConfig();
  const suffix = randomBytes(4).toString('hex');
  const dbName = `kaching_bench_${suffix}`;
  const admin = new pg.Client({ connectionString: withDb(base.databaseUrl, 'postgres') });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  const cfg = (ns: string): BaseConfig => ({ ...base, databaseUrl: withDb(base.databaseUrl, dbName), namespace: ns });
  const raw: Record<string, unknown> = {};
  try {
    await cryptoReady();
    const machine = await machineFacts(cfg(`bench${suffix}`));

    progress('ceiling: no-op Fastify POST of a signed event body');
    const kp = generateSigningKeyPair();
    const body = JSON.stringify(signedUsage('00000000-0000-4000-8000-000000000000', 'bench', kp.secretKey));
    const noop = await noopFastifyPost(body, plan.ingestEvents / 4, 64);
    raw.noopFastify = noop;

    progress('ingest: raw JetStream publish (ceiling), batch, single, NATS');
    const ingestNs = `bi${suffix}`;
    await migrate({ databaseUrl: cfg(ingestNs).databaseUrl, namespace: ingestNs });
    const ing = await selfBenchIngest(
      ingestConfig({ ...process.env, DATABASE_URL: cfg(ingestNs).databaseUrl, KACHING_NAMESPACE: ingestNs, NATS_URL: base.natsUrl }),
      { events: plan.ingestEvents, progress },
    );
    raw.ingest = ing;

    progress('projector: live consumers');
    const projNs = `bp${suffix}`;
    await migrate({ databaseUrl: cfg(projNs).databaseUrl, namespace: projNs });
    const proj = await benchProjector({ config: cfg(projNs), jobs: plan.projectorJobs, onProgress: progress });
    raw.projector = proj;
    progress('projector: replay of the same stream, next to a raw COPY');
    const rep = await benchReplay({ config: cfg(projNs), jobs: plan.projectorJobs, reuseStream: true, onProgress: progress });
    raw.replay = rep;

    const rollup: EventToRollupResult[] = [];
    for (const topology of ['one-process', 'per-service'] as const) {
      for (const rate of plan.rollupRates) {
        progress(`event-to-rollup latency at ${rate} events/s offered, ${topology}`);
        const ns = `br${rate}${topology === 'one-process' ? 'a' : 'b'}${suffix}`;
        rollup.push(await benchEventToRollup({ config: cfg(ns), rate, seconds: plan.rollupSeconds, topology, progress }));
        await dropStream(base.natsUrl, ns);
      }
    }
    raw.eventToRollup = rollup;

    progress(`enforcer: decision latency at ${plan.decisionRate} events/s`);
    const dec = await benchDecisionLatency({
      databaseUrl: cfg('x').databaseUrl, natsUrl: base.natsUrl, namespace: `be${suffix}`,
      rate: plan.decisionRate, durationS: plan.decisionSeconds,
    });
    raw.enforcer = dec;

    const f = (n: number) => Math.round(n).toLocaleString('en-US');
    const stockPub = ing.raw?.perSecond ?? 0;
    const rawPub = Math.max(stockPub, ing.rawPipelined?.perSecond ?? 0);
    const rows: Row[] = [
      { figure: 'ceiling: raw JetStream publish, stock client (js.publish per message, msg ids, file store)', value: `${f(stockPub)} msgs/s, ${ing.raw?.cpuUsPerEvent} µs CPU/msg` },
      {
        figure: 'ceiling: raw JetStream publish, KACHING publisher (one reply subscription; what ingest uses)',
        value: ing.rawPipelined ? `${f(ing.rawPipelined.perSecond)} msgs/s, ${ing.rawPipelined.cpuUsPerEvent} µs CPU/msg` : 'not measured',
      },
      { figure: 'ceiling: raw Postgres COPY into usage_sample', value: `${f(rep.rawCopy.rowsPerSecond)} rows/s` },
      { figure: 'ceiling: no-op Fastify POST (same body, 64 in flight)', value: `${f(noop.perSecond)} req/s, p99 ${noop.p99Ms} ms` },
      ...(['batch', 'single', 'nats'] as const).map((p) => {
        const r = ing[p];
        return {
          figure: `ingest ${p} (signed, verified, appended)`,
          value: r ? `${f(r.perSecond)} events/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, ${r.cpuUsPerEvent} µs CPU/event` : 'not measured',
          ceiling: 'raw publish (higher ceiling)',
          ratio: r && rawPub ? r.perSecond / rawPub : undefined,
          target: p === 'batch' ? '≥ 0.6×' : undefined,
        } as Row;
      }),
      {
        figure: `ingest batch ack latency, ${ing.paced?.batchSize ?? 100}-event batches offered at half the batch throughput (${f(ing.paced?.targetPerSecond ?? 0)} events/s)`,
        value: ing.paced ? `p50 ${ing.paced.p50Ms} ms, p99 ${ing.paced.p99Ms} ms` : 'not measured',
        target: 'p99 < 50 ms',
      },
      ...Object.entries(proj.projections).map(([p, r]) => ({
        figure: `projector ${p} (live consumer)`,
        value: `${f(r.eventsPerSecond)} events/s`,
        ceiling: 'raw COPY',
        ratio: r.eventsPerSecond / rep.rawCopy.rowsPerSecond,
      })),
      ...Object.entries(rep.replay).map(([p, r]) => ({
        figure: `replay ${p} (${f(rep.events)} events)`,
        value: `${f(r.eventsPerSecond)} events/s (${replayPhaseText(r.phases)})`,
        ceiling: 'raw COPY',
        ratio: r.eventsPerSecond / rep.rawCopy.rowsPerSecond,
        target: '≥ 30k/s, ≥ 0.4×',
      })),
      ...rollup.map((r) => ({
        figure: `event-to-rollup latency (batch send → rollup committed), ${f(r.offeredPerSecond)} events/s offered in ${r.batchSize}-event batches, ${r.topology === 'one-process' ? 'ingest and projector in the bench process (as kaching up runs them)' : 'ingest and projector each in its own process (kaching@ units)'}`,
        value: `p50 ${f(r.p50Ms)} ms, p99 ${f(r.p99Ms)} ms; ingest took ${f(r.achievedPerSecond)} events/s (ack p99 ${f(r.ackP99Ms)} ms${r.retried ? `; ${f(r.retried)} events answered 503/429 and sent again` : ''})${cpuText(r.cpu)}`,
        target: r.offeredPerSecond === 5_000 ? 'p99 < 2 s at 5k/s' : undefined,
      })),
      {
        figure: `decision latency (append → published) at ${f(dec.achievedRate)} events/s`,
        value: `p50 ${Math.round(dec.p50Ms)} ms, p99 ${Math.round(dec.p99Ms)} ms (${dec.decisions} decisions)`,
        target: 'p99 < 250 ms',
      },
    ];
    return { machine, rows, raw };
  } finally {
    for (const ns of [`bench${suffix}`, `bi${suffix}`, `bp${suffix}`, `be${suffix}`]) await dropStream(base.natsUrl, ns).catch(() => undefined);
    await admin.query(`drop database if exists ${dbName} with (force)`).catch(() => undefined);
    await admin.end();
  }
}

/** "; CPU while sending (% of one core): bench process 60, nats-server 28, postgres 50" — empty without /proc. */
function cpuText(cpu: Record<string, number>): string {
  const parts = Object.entries(cpu).map(([k, v]) => `${k} ${v}`);
  return parts.length ? `; CPU while sending (% of one core): ${parts.join(', ')}` : '';
}

export function toMarkdown(r: { machine: Record<string, string>; rows: Row[] }, mode: string): string {
  const lines = [
    `# kaching bench (${mode}) — ${new Date().toISOString()}`,
    '',
    Object.entries(r.machine).map(([k, v]) => `- ${k}: ${v}`).join('\n'),
    '',
    '| figure | value | vs ceiling | target |',
    '|---|---|---|---|',
    ...r.rows.map((x) => `| ${x.figure} | ${x.value} | ${x.ratio !== undefined ? `${x.ratio.toFixed(2)}× ${x.ceiling}` : ''} | ${x.target ?? ''} |`),
  ];
  return lines.join('\n') + '\n';
}

export async function writeResults(md: string, json: unknown): Promise<string[]> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const files = [`${RESULTS_DIR}latest.md`, `${RESULTS_DIR}latest.json`, `${RESULTS_DIR}${stamp}.md`];
  await writeFile(files[0]!, md);
  await writeFile(files[1]!, JSON.stringify(json, null, 2) + '\n');
  await writeFile(files[2]!, md);
  return files;
}

async function machineFacts(c: BaseConfig): Promise<Record<string, string>> {
  const nc = await connect({ servers: c.natsUrl });
  const natsVersion = nc.info?.version ?? 'unknown';
  await nc.close();
  const client = new pg.Client({ connectionString: c.databaseUrl });
  await client.connect();
  const pgVersion = (await client.query<{ v: string }>('select current_setting($$server_version$$) as v')).rows[0]?.v ?? 'unknown';
  await client.end();
  return {
    cores: String(cpus().length),
    cpu: cpus()[0]?.model ?? 'unknown',
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    node: process.version,
    'nats-server': natsVersion,
    postgres: pgVersion,
  };
}

/** Deletes a bench namespace's streams and KV bucket, so runs leave nothing behind on the NATS server. */
async function dropStream(natsUrl: string, namespace: string): Promise<void> {
  const n = names(namespace);
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    for (const s of [n.eventsStream, n.decisionsStream, `KV_${n.decisionsBucket}`]) await jsm.streams.delete(s).catch(() => undefined);
  } finally {
    await nc.close();
  }
}

function withDb(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}
