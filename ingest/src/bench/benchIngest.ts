import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { connectNats, JetStreamPublisher, names, type UsageEvent } from '@kaching/contracts';
import { signedUsage } from './events.js';

export interface BenchIngestOptions {
  /** Base URL of a running ingest bridge (its NATS service serves `names.ingestSubject`). */
  ingestUrl: string;
  natsUrl: string;
  namespace: string;
  deploymentId: string;
  /** An ingest token of that deployment with scope ingest:usage and a rate limit that does not bind. */
  token: string;
  keyId: string;
  secretKey: Uint8Array;
  /** Events per measured path (default 20000; single and NATS use a quarter). */
  events?: number;
  batchSize?: number;
  /** Requests in flight: batches / singles. */
  batchConcurrency?: number;
  singleConcurrency?: number;
  /** Raw publish messages in flight. */
  rawInFlight?: number;
  paths?: ('raw' | 'batch' | 'single' | 'nats' | 'paced')[];
  /** Events per batch of the paced run (open loop at half the batch path's throughput). */
  pacedBatchSize?: number;
  /** Offered rate of the paced run when the batch path is not measured here (e.g. by wrk). */
  pacedPerSecond?: number;
  progress?(line: string): void;
}

export interface PathResult {
  events: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU of this process (client and service share it) per event, in µs: where the time goes. */
  cpuUsPerEvent?: number;
}

export interface PacedResult extends PathResult {
  /** The offered rate: half the batch path's measured throughput. */
  targetPerSecond: number;
  batchSize: number;
}

export interface BenchIngestReport {
  messageBytes: number;
  /** Ceiling: the stock client's jetstream().publish(), one request per message. */
  raw?: PathResult;
  /** Ceiling: the same appends through contracts' JetStreamPublisher (what ingest uses). */
  rawPipelined?: PathResult;
  batch?: PathResult;
  single?: PathResult;
  nats?: PathResult;
  paced?: PacedResult;
  /** batch / the higher of the two raw ceilings: the target is >= 0.6 */
  batchToRaw?: number;
}

function summarise(events: number, ms: number, lat: number[], cpu?: NodeJS.CpuUsage): PathResult {
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]! * 100) / 100 : 0;
  const r: PathResult = { events, seconds: Math.round(ms) / 1000, perSecond: Math.round((events / ms) * 1000), p50Ms: q(0.5), p99Ms: q(0.99) };
  if (cpu) r.cpuUsPerEvent = Math.round((cpu.user + cpu.system) / events);
  return r;
}

/** Runs `n` tasks with at most `c` in flight. */
async function pool(n: number, c: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(c, n) }, async () => {
      while (next < n) await task(next++);
    }),
  );
}

/**
 * Measures, in one run: raw JetStream async publish of same-size messages (the ceiling), signed
 * events through the batch endpoint, the single endpoint and the NATS request path.
 */
export async function benchIngest(o: BenchIngestOptions): Promise<BenchIngestReport> {
  const total = o.events ?? 20_000;
  const batchSize = o.batchSize ?? 1000;
  const paths = o.paths ?? ['raw', 'batch', 'paced', 'single', 'nats'];
  const log = o.progress ?? (() => undefined);
  const n = names(o.namespace);
  const make = (count: number): UsageEvent[] => Array.from({ length: count }, () => signedUsage(o.deploymentId, o.keyId, o.secretKey));
  const sample = JSON.stringify(make(1)[0]);
  const report: BenchIngestReport = { messageBytes: Buffer.byteLength(sample) };
  const nc: NatsConnection = await connectNats(o.natsUrl);
  try {
    if (paths.includes('raw')) {
      // Same-size payloads with message ids into a scratch stream of the same storage type.
      const stream = `${n.eventsStream}_BENCHRAW`;
      const subject = `${n.namespace}.benchraw.x`;
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(stream).catch(() => undefined);
      await jsm.streams.add({ name: stream, subjects: [subject], storage: StorageType.File, duplicate_window: 120e9 });
      const js = jetstream(nc);
      const payload = new TextEncoder().encode(sample);
      const inflight = o.rawInFlight ?? 2000;
      const lat: number[] = [];
      const tag = randomBytes(4).toString('hex');
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await pool(total, inflight, async (i) => {
        const s = performance.now();
        const h = natsHeaders();
        h.set('Kaching-Schema', 'bench');
        await js.publish(subject, payload, { msgID: `${tag}-${i}`, headers: h });
        lat.push(performance.now() - s);
      });
      report.raw = summarise(total, performance.now() - t0, lat, process.cpuUsage(c0));
      log(`raw publish (stock client): ${report.raw.perSecond}/s`);
      // The same appends through KACHING's publisher (one reply subscription, no per-message request objects).
      const publisher = new JetStreamPublisher(nc, 10_000);
      const latP: number[] = [];
      const c1 = process.cpuUsage();
      const t1 = performance.now();
      try {
        await pool(total, inflight, async (i) => {
          const s = performance.now();
          await publisher.publish(subject, payload, `${tag}-p-${i}`, { 'Kaching-Schema': 'bench' });
          latP.push(performance.now() - s);
        });
      } finally {
        publisher.close();
      }
      report.rawPipelined = summarise(total, performance.now() - t1, latP, process.cpuUsage(c1));
      await jsm.streams.delete(stream).catch(() => undefined);
      log(`raw publish (KACHING publisher): ${report.rawPipelined.perSecond}/s`);
    }
    const auth = { authorization: `Bearer ${o.token}`, 'content-type': 'application/json' };
    if (paths.includes('batch')) {
      const batches = Math.ceil(total / batchSize);
      const bodies = Array.from({ length: batches }, () => JSON.stringify({ events: make(batchSize) }));
      const lat: number[] = [];
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await pool(batches, o.batchConcurrency ?? 4, async (i) => {
        const s = performance.now();
        const r = await fetch(`${o.ingestUrl}/v1/ingest/batch`, { method: 'POST', headers: auth, body: bodies[i] });
        if (r.status !== 207) throw new Error(`batch answered ${r.status}: ${(await r.text()).slice(0, 300)}`);
        await r.arrayBuffer();
        lat.push(performance.now() - s);
      });
      report.batch = summarise(batches * batchSize, performance.now() - t0, lat, process.cpuUsage(c0));
      log(`batch endpoint: ${report.batch.perSecond}/s`);
    }
    const quarter = Math.max(1, Math.floor(total / 4));
    if (paths.includes('single')) {
      const bodies = make(quarter).map((e) => JSON.stringify(e));
      const lat: number[] = [];
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await pool(quarter, o.singleConcurrency ?? 64, async (i) => {
        const s = performance.now();
        const r = await fetch(`${o.ingestUrl}/v1/ingest/usage`, { method: 'POST', headers: auth, body: bodies[i] });
        if (r.status !== 202) throw new Error(`usage answered ${r.status}: ${(await r.text()).slice(0, 300)}`);
        await r.arrayBuffer();
        lat.push(performance.now() - s);
      });
      report.single = summarise(quarter, performance.now() - t0, lat, process.cpuUsage(c0));
      log(`single endpoint: ${report.single.perSecond}/s`);
    }
    if (paths.includes('nats')) {
      const bodies = make(quarter).map((e) => JSON.stringify(e));
      const h = natsHeaders();
      h.set('Authorization', `Bearer ${o.token}`);
      const subject = n.ingestSubject(o.deploymentId);
      const lat: number[] = [];
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await pool(quarter, o.singleConcurrency ?? 64, async (i) => {
        const s = performance.now();
        const m = await nc.request(subject, bodies[i]!, { headers: h, timeout: 10_000 });
        const r = m.json<{ status: number }>();
        if (r.status !== 202) throw new Error(`nats ingest answered ${JSON.stringify(r).slice(0, 300)}`);
        lat.push(performance.now() - s);
      });
      report.nats = summarise(quarter, performance.now() - t0, lat, process.cpuUsage(c0));
      log(`nats path: ${report.nats.perSecond}/s`);
    }
    if (paths.includes('paced') && (report.batch || o.pacedPerSecond)) {
      // Ack latency below saturation: batches offered on a fixed schedule (open loop) at half the
      // measured batch throughput; latency counts from each batch's scheduled time, so a stall shows.
      const size = o.pacedBatchSize ?? 100;
      const target = o.pacedPerSecond ?? report.batch!.perSecond / 2;
      // at least 200 batches, so the p99 is not simply the slowest of a few dozen
      const batches = Math.max(200, Math.ceil(total / 2 / size));
      const bodies = Array.from({ length: batches }, () => JSON.stringify({ events: make(size) }));
      const intervalMs = (size / target) * 1000;
      const lat: number[] = [];
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await Promise.all(
        bodies.map(async (b, i) => {
          const due = t0 + i * intervalMs;
          const wait = due - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          const r = await fetch(`${o.ingestUrl}/v1/ingest/batch`, { method: 'POST', headers: auth, body: b });
          if (r.status !== 207) throw new Error(`batch answered ${r.status}: ${(await r.text()).slice(0, 300)}`);
          await r.arrayBuffer();
          lat.push(performance.now() - due);
        }),
      );
      report.paced = { ...summarise(batches * size, performance.now() - t0, lat, process.cpuUsage(c0)), targetPerSecond: Math.round(target), batchSize: size };
      log(`batch endpoint paced at ${Math.round(target)}/s: p99 ${report.paced.p99Ms} ms`);
    }
    const ceiling = Math.max(report.raw?.perSecond ?? 0, report.rawPipelined?.perSecond ?? 0);
    if (ceiling && report.batch) report.batchToRaw = Math.round((report.batch.perSecond / ceiling) * 100) / 100;
    return report;
  } finally {
    await nc.close();
  }
}
