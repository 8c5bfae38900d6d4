import pg from 'pg';
import { createPool, cryptoReady, migrate, type BaseConfig } from '@kaching/contracts';
import { seedBenchDeployment, signedUsage } from '@kaching/ingest';
import { cpuBetween, cpuSnapshot, type CpuUse } from './harness/proc.js';
import { startStack, type Topology } from './harness/stack.js';

const CATCH_UP_MS = 120_000;

export interface EventToRollupOptions {
  /** A namespace and database of its own: the run writes data. */
  config: BaseConfig;
  /** Offered ingest rate, events/s. */
  rate: number;
  seconds: number;
  /** Events per HTTP batch (an agent fleet's SDK flushes small batches often). */
  batchSize?: number;
  topology?: Topology;
  progress?(line: string): void;
}

export interface EventToRollupResult {
  topology: Topology;
  offeredPerSecond: number;
  /** Events acknowledged by ingest divided by the time it took to send them. */
  achievedPerSecond: number;
  events: number;
  batchSize: number;
  /** From a batch's scheduled send time until the rollups checkpoint covers its last sequence. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Ingest ack latency of the same batches, for comparison. */
  ackP99Ms: number;
  /** Events ingest answered 503/429 (or could not be reached) and the sender sent again (as an SDK would). */
  retried: number;
  /**
   * CPU used while sending, per process: the bench process (the load generator), the service processes,
   * nats-server, postgres (all its backends). Empty where /proc is not available.
   */
  cpu: Record<string, CpuUse>;
}

/**
 * Event-to-rollup latency at a sustained ingest rate: signed events go through the real batch
 * endpoint on a fixed schedule (open loop, so a stall shows as latency rather than a lower rate),
 * while the projector (all three projections, as `kaching up` runs them) consumes the stream.
 * A batch counts as visible when the rollups checkpoint, committed in the same transaction as the
 * rollup rows, reaches the highest sequence ingest acknowledged for it. The checkpoint is polled
 * every 10 ms, so each figure may be up to 10 ms late, never early.
 */
export async function benchEventToRollup(o: EventToRollupOptions): Promise<EventToRollupResult> {
  const size = o.batchSize ?? 50;
  const batches = Math.ceil((o.rate * o.seconds) / size);
  await migrate({ databaseUrl: o.config.databaseUrl, namespace: o.config.namespace });
  await cryptoReady();
  const pool = createPool({ databaseUrl: o.config.databaseUrl, namespace: o.config.namespace, max: 2 });
  const env = { ...process.env, DATABASE_URL: o.config.databaseUrl, KACHING_NAMESPACE: o.config.namespace, NATS_URL: o.config.natsUrl };
  const topology = o.topology ?? 'all-in-one';
  const services = await startStack({ topology, env });
  const ingest = { url: services.ingestUrl };
  const procs = { ...services.pids, 'bench process (load generator)': process.pid };
  try {
    const dep = await seedBenchDeployment(pool);
    o.progress?.(`signing ${batches * size} events`);
    const events = Array.from({ length: batches }, () => Array.from({ length: size }, () => signedUsage(dep.deploymentId, dep.keyId, dep.secretKey)));
    const bodies = events.map((batch) => JSON.stringify({ events: batch }));
    const headers = { authorization: `Bearer ${dep.token}`, 'content-type': 'application/json' };

    const waiting: { due: number; seq: number }[] = [];
    const visible: number[] = [];
    const acks: number[] = [];
    let sending = true;
    let abandoned = false;
    let retried = 0;
    let giveUpAt = Infinity;
    const watcher: Promise<Error | null> = (async () => {
      const client = new pg.Client({ connectionString: o.config.databaseUrl });
      client.on('error', () => undefined); // a failure reaches the pending query; without a listener it killed the process
      await client.connect();
      try {
        // one partition: every event is in one lane, so the highest lane checkpoint is "applied up to"
        const sql = `select max(last_seq) as last_seq from ${pg.escapeIdentifier(o.config.namespace)}.consumer_checkpoint where consumer = 'rollups'`;
        while (!abandoned && (sending || waiting.length)) {
          if (performance.now() > giveUpAt) throw new Error(`rollups did not catch up within ${CATCH_UP_MS / 1000} s of the last send`);
          const r = await client.query<{ last_seq: string }>(sql);
          const seq = Number(r.rows[0]?.last_seq ?? 0);
          const now = performance.now();
          for (let i = waiting.length - 1; i >= 0; i--) {
            if (waiting[i]!.seq <= seq) {
              visible.push(now - waiting[i]!.due);
              waiting.splice(i, 1);
            }
          }
          await new Promise((r) => setTimeout(r, 10));
        }
      } finally {
        await client.end();
      }
      return null;
    })().catch((err: Error) => err);

    o.progress?.(`offering ${o.rate} events/s for ${o.seconds} s in batches of ${size}`);
    const intervalMs = (size / o.rate) * 1000;
    const cpu0 = cpuSnapshot(procs);
    const t0 = performance.now();
    const sent = Promise.all(
      bodies.map(async (body, i) => {
        const due = t0 + i * intervalMs;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        // As an agent's SDK does: what ingest could not take yet (503/429, with Retry-After) is sent again, so an
        // overloaded run shows as latency (counted from the first due time), not as an aborted bench.
        let todo = events[i]!;
        let payload = body;
        let seq = 0;
        for (let attempt = 0; ; attempt++) {
          const retryable = (st: number) => st === 503 || st === 429;
          // a connection refused or reset under overload is retried too, as an SDK would
          const res = await fetch(`${ingest.url}/v1/ingest/batch`, { method: 'POST', headers, body: payload }).catch((err: Error) => {
            if (attempt >= 20) throw err;
            return new Response(JSON.stringify({ error: err.message }), { status: 503, headers: { 'retry-after': '1' } });
          });
          const out = (await res.json()) as { results?: { status: number; seq?: number }[] };
          if (res.status !== 207 && !retryable(res.status)) throw new Error(`batch answered ${res.status}: ${JSON.stringify(out).slice(0, 300)}`);
          const results: { status: number; seq?: number }[] = res.status === 207 ? out.results ?? [] : todo.map(() => ({ status: res.status }));
          const again = todo.filter((_, k) => retryable(results[k]!.status));
          const refused = results.find((x) => x.status !== 202 && x.status !== 200 && !retryable(x.status));
          if (refused) throw new Error(`batch item answered ${refused.status}: ${JSON.stringify(refused).slice(0, 300)}`);
          seq = Math.max(seq, ...results.map((x) => x.seq ?? 0));
          if (!again.length) break;
          if (attempt >= 20) throw new Error(`${again.length} events still refused after 20 retries`);
          retried += again.length;
          const after = Number(res.headers.get('retry-after') ?? 1);
          await new Promise((r) => setTimeout(r, Math.min(5, Math.max(0.2, after)) * 1000));
          todo = again;
          payload = JSON.stringify({ events: todo });
        }
        acks.push(performance.now() - due);
        waiting.push({ due, seq });
      }),
    );
    try {
      await sent;
    } catch (err) {
      abandoned = true;
      await watcher;
      throw err;
    } finally {
      sending = false;
      giveUpAt = performance.now() + CATCH_UP_MS;
    }
    const sendMs = performance.now() - t0;
    const cpu = cpuBetween(cpu0, cpuSnapshot(procs));
    const failed = await watcher;
    if (failed) throw failed;
    const q = (xs: number[], p: number) => {
      const s = [...xs].sort((a, b) => a - b);
      return Math.round(s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0);
    };
    return {
      topology,
      offeredPerSecond: o.rate,
      achievedPerSecond: Math.round((batches * size * 1000) / sendMs),
      events: batches * size,
      batchSize: size,
      p50Ms: q(visible, 0.5),
      p99Ms: q(visible, 0.99),
      maxMs: q(visible, 1),
      ackP99Ms: q(acks, 0.99),
      retried,
      cpu,
    };
  } finally {
    await services.close();
    await pool.end();
  }
}
