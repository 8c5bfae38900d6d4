import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  decodeStreamRecord, messageId, names, revisionKey, signEvent,
  type PolicyDecision, type SignedEvent, type UsageEvent,
} from '@kaching/contracts';
import { backoffDelay, HttpTransport, TransportError, type BatchOutcome } from '@kaching/sdk';
import { verifyProjections } from '@kaching/projector';
import { seedDeployment, type SeededDeployment } from '../../ingest/test/support.js';
import { addBudget, addQuota, controlMessages } from '../../enforcer/test/helpers.js';
import { prng } from '../../projector/src/bench/generate.js';
import { checkpoint, makeStream, rollupTotals, waitCaughtUp, waitFor } from '../../projector/test/helpers.js';
import { privateWorld, type PrivateNats, type PrivatePostgres, type PrivateWorld } from '../../projector/test/servers.js';
import { streamEvents } from '../e2e/support.js';

/**
 * The whole pipeline under faults: ingest, projector and enforcer each run as a child process from
 * dist/ against a private nats-server and a private Postgres. Signed events (revisions out of order,
 * exact resends, heartbeats) go through the real HTTP batch endpoint with an agent's retry policy
 * while ingest, projector, enforcer and NATS are SIGKILLed and Postgres is stopped (immediate) —
 * each restarted. Afterwards every acknowledged event must be in the stream, every correlation id in
 * usage_sample once with its last revision, the rollups and the enforcer's usage must equal an
 * independent recomputation, and no alert or decision may exist twice.
 * `npm run test:faults` (KACHING_FAULTS=full) runs ~8x the events and three times the fault rounds.
 */
const FULL = process.env.KACHING_FAULTS === 'full';
const JOBS = FULL ? 22_000 : 2_800; // ~1.45 events per job with duplicates and heartbeats
const ROUNDS = FULL ? 6 : 2;
const SEND_SECONDS = FULL ? 150 : 28; // paced so the faults land while events flow
const SEED = Number(process.env.KACHING_FAULTS_SEED ?? 20261203);
const NS = 'kpipe';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ARTIFACT = fileURLToPath(new URL('../artifacts/faults-summary.txt', import.meta.url));
const DIST = { ingest: 'ingest/dist/mod.js', projector: 'projector/dist/mod.js', enforcer: 'enforcer/dist/mod.js' } as const;
type ServiceName = keyof typeof DIST;
const BATCH = 50;
const WORKERS = 3;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One service as a supervised child process (a crash that we did not cause is restarted, and recorded). */
class Service {
  child: ChildProcess | null = null;
  starts = 0;
  url = '';
  /** Exits we did not cause (the supervisor restarted the service). */
  readonly unexpected: string[] = [];
  private stderr = '';
  private stopping = false;
  private killing = false;
  constructor(readonly name: ServiceName, private readonly env: () => NodeJS.ProcessEnv) {}

  async start(): Promise<void> {
    const entry = `${ROOT}${DIST[this.name]}`;
    const script = `import { start, loadConfig } from ${JSON.stringify(entry)};
const h = await start(loadConfig());
process.stdout.write('ready ' + h.url + '\\n');
process.on('SIGTERM', () => h.close().then(() => process.exit(0)));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, env: this.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.starts++;
    child.stderr!.on('data', (b: Buffer) => {
      this.stderr = (this.stderr + b.toString()).slice(-4000);
      if (process.env.FAULT_LOG) process.stderr.write(`[${this.name}] ${b.toString()}`);
    });
    child.once('exit', (code, signal) => {
      if (this.child !== child || this.killing || this.stopping) return;
      // not ours: note it and restart, as a supervisor (systemd Restart=always) would
      this.unexpected.push(`${this.name} exited code=${code} signal=${signal}: ${this.stderr.slice(-600).trim()}`);
      this.child = null;
      void sleep(500).then(() => (this.stopping || this.child ? undefined : this.start().catch(() => undefined)));
    });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        if (process.env.FAULT_LOG) process.stderr.write(`[${this.name}:out] ${b.toString().slice(0, 600)}`);
        const m = /ready (\S+)\n/.exec(out);
        if (m) {
          this.url = m[1]!;
          resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`${this.name} exited (${code}) before ready: ${this.stderr.slice(-1500)}`)));
    });
  }

  async sigkill(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) throw new Error(`${this.name} is not running`);
    this.killing = true;
    await new Promise<void>((r) => {
      c.once('exit', () => r());
      c.kill('SIGKILL');
    });
    this.child = null;
    this.killing = false;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((r) => {
      c.once('exit', () => r());
      c.kill('SIGKILL');
    });
  }
}

interface Planned {
  event: SignedEvent;
  msgId: string;
  correlationId: string;
  kind: 'usage' | 'job_status';
}

/** The generator's streams (revisions, out-of-order finals, heartbeats, duplicates) as events an agent signed. */
function planEvents(D: SeededDeployment): Planned[] {
  // 4 h ago .. 3 h ago: final reports end in the past, heartbeats of jobs still running stay out of the future
  const base = new Date(Date.now() - 4 * 3_600_000);
  const gen = makeStream(names(NS), {
    deploymentId: D.deploymentId, orgId: D.orgId, jobs: JOBS, seed: SEED, base, spanHours: 1,
    revisionRate: 0.2, dupRate: 0.25, heartbeatRate: 0.08,
  });
  const signed = gen.map((m): Planned => {
    const r = decodeStreamRecord(m.data);
    const { sig: _sig, ...unsigned } = r.kind === 'usage' ? r.usage : r.job_status;
    const event = signEvent(unsigned as never, D.keyId, D.secretKey) as SignedEvent;
    return { event, msgId: messageId(event), correlationId: m.correlationId, kind: r.kind };
  });
  // The generator puts many of its resends after the last new event; spread the new events over the
  // whole send (order among them kept) and let each resend follow its original within a fifth of it,
  // so that new work reaches the stream until the last fault.
  const rnd = prng(SEED);
  const firsts = new Map<string, number>();
  const keyed: { key: number; p: Planned }[] = [];
  const originals = new Set(signed.map((p) => p.msgId)).size;
  for (const p of signed) {
    const first = firsts.get(p.msgId);
    if (first === undefined) {
      const key = (firsts.size / originals) * signed.length;
      firsts.set(p.msgId, key);
      keyed.push({ key, p });
    } else keyed.push({ key: first + 1 + rnd() * 0.2 * signed.length, p });
  }
  return keyed.sort((a, b) => a.key - b.key).map((k) => k.p);
}

/**
 * A deployment timezone in which now is about 14:00 local, so the 4 hours of events fall in one local
 * day (and month): each quota has exactly one period window, and its alerts are predictable.
 */
function middayTimezone(now = new Date()): string {
  let off = 14 - now.getUTCHours(); // local = UTC + off
  if (off > 14) off -= 24;
  if (off < -12) off += 24;
  // POSIX Etc zones have the sign inverted
  return off === 0 ? 'Etc/UTC' : `Etc/GMT${off > 0 ? '-' : '+'}${Math.abs(off)}`;
}

describe('faults: the whole pipeline under kills and restarts', () => {
  let world: PrivateWorld | undefined;
  let nats: PrivateNats;
  let pgs: PrivatePostgres;
  let pool: pg.Pool;
  let nc: NatsConnection;
  let databaseUrl = '';
  let ingestPort = 0;
  let D: SeededDeployment;
  let plan: Planned[] = [];
  const services: Service[] = [];

  const serviceEnv = (): NodeJS.ProcessEnv => ({
    ...process.env,
    NATS_URL: nats.url, DATABASE_URL: databaseUrl, KACHING_NAMESPACE: NS, LOG_LEVEL: process.env.FAULT_LOG ?? 'error',
    INGEST_PORT: String(ingestPort), INGEST_HOST: '127.0.0.1', INGEST_RATE_LIMIT_PER_S: '0',
    PROJECTOR_PORT: '0', PROJECTOR_HOST: '127.0.0.1', PROJECTOR_BATCH_SIZE: '200', PROJECTOR_ACK_WAIT_MS: '2000',
    ENFORCER_PORT: '0', ENFORCER_HOST: '127.0.0.1', ENFORCER_BATCH: '50',
  });

  beforeAll(async () => {
    for (const d of Object.values(DIST)) {
      if (!existsSync(`${ROOT}${d}`)) throw new Error(`${d} is missing: run \`npx tsc -b\` first`);
    }
    world = await privateWorld(NS);
    ({ nats, pgs, pool, nc, databaseUrl } = world);
    D = await seedDeployment(pool, { keyId: 'faults-key' });
    await pool.query('update deployment set timezone = $1 where deployment_id = $2', [middayTimezone(), D.deploymentId]);
    plan = planEvents(D);

    // limits at fixed shares of what the final revisions add up to: every threshold is crossed once
    const winners = expectedWinners(plan);
    const total = (f: (e: UsageEvent) => number) => [...winners.values()].reduce((s, e) => s + f(e), 0);
    const cpu = total((e) => e.metrics.cpu_seconds);
    const tokens = total((e) => e.llm?.tokens_in ?? 0);
    const gpu = total((e) => e.metrics.gpu_seconds);
    await addQuota(pool, D.deploymentId, D.orgId, { name: 'cpu', metric: 'cpu_seconds', period: 'daily', soft: Math.round(cpu * 0.4), hard: Math.round(cpu * 0.75) });
    await addQuota(pool, D.deploymentId, D.orgId, { name: 'tokens', metric: 'model_tokens_in', period: 'monthly', soft: Math.round(tokens * 0.5), hard: Math.round(tokens * 0.85) });
    await addBudget(pool, D.deploymentId, D.orgId, { scope: 'gpu', metric: 'gpu_seconds', period: 'daily', limit: Math.round(gpu * 0.6), action: 'throttle', params: { max_concurrency: 4 } });

    for (const name of ['ingest', 'projector', 'enforcer'] as const) services.push(new Service(name, serviceEnv));
    // ingest binds a port of its own choosing at its first start (port 0) and keeps it for its restarts
    for (const s of services) await s.start();
    ingestPort = Number(new URL(services[0]!.url).port);
  }, 180_000);

  afterAll(async () => {
    for (const s of services) if (s.unexpected.length) console.error(`${s.name}: ${s.starts} starts, unexpected exits:\n${s.unexpected.join('\n')}`);
    for (const s of services) await s.stop();
    await world?.close();
  });

  it('loses nothing and counts nothing twice', async () => {
    const t0 = Date.now();
    const svc = (n: ServiceName) => services.find((s) => s.name === n)!;
    const transport = new HttpTransport(`http://127.0.0.1:${ingestPort}`, D.token, 10_000);

    // ---- the agent side: batches, sent at a steady pace, each retried until every event has an answer
    let inputsTried = 0;
    let attempts = 0;
    const acked = new Map<number, { duplicate: boolean }>(); // plan index -> first acknowledgement
    const refused: string[] = [];
    let ackedSubmissions = 0;
    let duplicateAnswers = 0; // 200 duplicate:true: the stream's duplicate window caught an exact resend
    let lastAnswer = '';
    const sendUntilAnswered = async (idx: number[]) => {
      let pending = idx;
      for (let attempt = 0; pending.length; attempt++) {
        attempts++;
        let outcome: BatchOutcome | null = null;
        try {
          outcome = await transport.sendBatch(pending.map((i) => plan[i]!.event));
          lastAnswer = outcome.kind === 'items' ? `207 (${outcome.items.filter((it) => it.status >= 300).length} items not accepted)` : `${outcome.status} ${outcome.error?.code ?? ''}`;
        } catch (e) {
          if (!(e instanceof TransportError)) throw e;
          lastAnswer = `transport error: ${e.message}`;
        }
        const retry: number[] = [];
        if (outcome?.kind === 'items') {
          outcome.items.forEach((it, k) => {
            const i = pending[k]!;
            if (it.status >= 200 && it.status < 300) {
              ackedSubmissions++;
              if (it.duplicate) duplicateAnswers++;
              if (!acked.has(i)) acked.set(i, { duplicate: !!it.duplicate });
            } else if (it.status >= 400 && it.status < 500 && it.status !== 429 && it.status !== 408) {
              refused.push(`${plan[i]!.correlationId}: ${it.status} ${it.error?.code}`);
            } else retry.push(i);
          });
        } else if (outcome && outcome.status >= 200 && outcome.status < 300) {
          for (const i of pending) {
            ackedSubmissions++;
            if (!acked.has(i)) acked.set(i, { duplicate: false });
          }
        } else if (outcome) {
          if (outcome.status >= 400 && outcome.status < 500 && outcome.status !== 429 && outcome.status !== 408) {
            for (const i of pending) refused.push(`${plan[i]!.correlationId}: whole batch ${outcome.status} ${outcome.error?.code}`);
          } else retry.push(...pending); // 503 (stream or database unavailable), 5xx
        } else retry.push(...pending); // connection refused / reset / no answer: ingest is down
        pending = retry;
        if (pending.length) await sleep(Math.max(outcome?.retryAfterMs ?? 0, backoffDelay(attempt, { baseMs: 50, maxMs: 1000 })));
      }
    };
    const batches: number[][] = [];
    for (let i = 0; i < plan.length; i += BATCH) batches.push(Array.from({ length: Math.min(BATCH, plan.length - i) }, (_, k) => i + k));
    let nextBatch = 0;
    let sentEvents = 0;
    const rate = plan.length / SEND_SECONDS;
    let resends = 0;
    const kinds = ['ingest', 'projector', 'enforcer', 'nats', 'postgres'] as const;
    const total = ROUNDS * kinds.length;
    const segment = plan.length / (total + 1);
    let faultsDone = 0;
    const sendersWaitForFault = () => faultsDone < Math.min(total, Math.floor(sentEvents / segment - 0.5));
    const sender = async (w: number) => {
      while (nextBatch < batches.length) {
        const b = batches[nextBatch++]!;
        // fault k starts when (k+1) segments are sent; half a segment later the send waits for it, so
        // every fault happens while events flow and none is left for after the send
        await waitFor(async () => !sendersWaitForFault(), 600_000, 'fault injection');
        // pacing: the send lasts SEND_SECONDS so that every fault lands while events flow
        const due = t0 + (sentEvents / rate) * 1000;
        if (due > Date.now()) await sleep(due - Date.now());
        sentEvents += b.length;
        inputsTried += b.length;
        await sendUntilAnswered(b);
        // a blind resend of an acknowledged batch (an agent that lost the answer): must be a duplicate
        if ((nextBatch + w) % 9 === 0) {
          inputsTried += b.length;
          resends += b.length;
          await sendUntilAnswered(b);
        }
      }
    };

    // ---- the faults, spread over the send; each waits for its service to be busy, kills, restarts
    const faults: string[] = [];
    const jsm = await jetstreamManager(nc);
    const lastSeq = async () => (await jsm.streams.info(names(NS).eventsStream)).state.last_seq;
    // mid-batch: has committed since `v` and the stream is ahead of it (or, once everything is sent, it is done)
    let midBatch = 0;
    const busy = async (p: string, v: number) => {
      let seen = '';
      await waitFor(async () => {
        const c = await checkpoint(pool, p).catch(() => -1);
        const l = await lastSeq().catch(() => -1);
        seen = `checkpoint ${c} (was ${v}), stream ${l}, sent ${sentEvents} of ${plan.length}, ingest's last answer: ${lastAnswer}`;
        if (c > v && c < l) return ++midBatch > 0;
        // Caught up while the senders pause for this very fault: nothing more will come, kill it now
        // (counted as a kill without work pending). Waiting on would wait for ever.
        return (sentEvents >= plan.length || sendersWaitForFault()) && c >= 0 && c >= l;
      }, 120_000, `${p} progress`).catch((err: Error) => {
        throw new Error(`${err.message}; last seen: ${seen}`);
      });
    };
    const chaos = async () => {
      for (let k = 0; k < total; k++) {
        const kind = kinds[k % kinds.length]!;
        await waitFor(async () => sentEvents >= (k + 1) * segment, 600_000, `send progress for fault ${k + 1}`);
        switch (kind) {
          case 'ingest':
            await svc('ingest').sigkill();
            await svc('ingest').start();
            break;
          case 'projector':
          case 'enforcer': {
            // mid-batch: once it has committed since the last look and the stream is ahead of it
            const cp = kind === 'projector' ? 'raw' : 'enforcer';
            await busy(cp, await checkpoint(pool, cp).catch(() => 0));
            await svc(kind).sigkill();
            await svc(kind).start();
            break;
          }
          case 'nats':
            await nats.kill();
            await nats.start();
            break;
          case 'postgres':
            pgs.stopImmediate();
            await sleep(500); // the outage itself
            await pgs.start();
            break;
        }
        faults.push(`${kind}@${sentEvents}`);
        faultsDone++;
        if (process.env.FAULT_LOG) {
          const cps = await Promise.all(['raw', 'rollups', 'concurrency', 'enforcer'].map((p) => checkpoint(pool, p).catch(() => -1)));
          console.log(`fault ${k + 1}/${total} ${kind} at ${sentEvents} sent, ${Date.now() - t0} ms, stream ${await lastSeq().catch(() => -1)}, checkpoints ${cps.join(' ')}`);
        }
      }
    };

    await Promise.all([chaos(), ...Array.from({ length: WORKERS }, (_, w) => sender(w))]);
    await transport.close();
    const sendMs = Date.now() - t0;

    // ---- recovery: everything that was acknowledged reaches every consumer
    const last = await lastSeq();
    await waitCaughtUp(pool, last, ['raw', 'rollups', 'concurrency', 'enforcer'], FULL ? 900_000 : 150_000);
    // committed decisions are published without waiting for more events
    await waitFor(async () => (await pool.query('select 1 from enforcer_outbox where published_at is null')).rows.length === 0, 60_000, 'enforcer outbox drained');

    // ---- lost: acknowledged but missing from the stream, or from usage_sample, or not at its last revision
    const ackedIdx = [...acked.keys()];
    const inStream = new Set((await streamEvents(nc, names(NS))).msgIds);
    const missingInStream = ackedIdx.filter((i) => !inStream.has(plan[i]!.msgId)).map((i) => plan[i]!.msgId);
    const winners = expectedWinners(ackedIdx.map((i) => plan[i]!));
    const rows = await pool.query<{ correlation_id: string; revision: string; cpu_seconds: string; context_bytes_read: string; model_tokens_in: string; n: string }>(
      `select correlation_id, min(revision) as revision, min(cpu_seconds)::text as cpu_seconds, min(context_bytes_read)::text as context_bytes_read,
              min(model_tokens_in)::text as model_tokens_in, count(*)::text as n
         from usage_sample where deployment_id = $1 group by correlation_id`, [D.deploymentId]);
    const got = new Map(rows.rows.map((r) => [r.correlation_id, r]));
    const notLast: string[] = [];
    let missingRows = 0;
    for (const [cid, w] of winners) {
      const r = got.get(cid);
      if (!r) {
        missingRows++;
        continue;
      }
      if (r.revision !== revisionKey(w) || Number(r.cpu_seconds) !== w.metrics.cpu_seconds || Number(r.context_bytes_read) !== w.metrics.context_bytes_read
        || Number(r.model_tokens_in) !== (w.llm?.tokens_in ?? 0)) notLast.push(cid);
    }

    // ---- counted twice: extra rows, projections that disagree with the raw samples, repeated alerts or decisions
    const extraRows = rows.rows.reduce((s, r) => s + Number(r.n) - 1, 0) + rows.rows.filter((r) => !winners.has(r.correlation_id)).length;
    const diffs = await verifyProjections(pool);
    const [raw, hourly, daily] = await rollupTotals(pool);
    const strip = (r: Record<string, string>) => Object.fromEntries(Object.entries(r).filter(([k]) => k !== 'src'));
    const rollupMismatches = Object.keys(strip(raw!)).filter((c) => hourly![c] !== raw![c] || daily![c] !== raw![c]);
    const enforcerUsage = await pool.query<{ metric: string; enforcer: string; raw: string }>(
      `with e as (select metric, sum(value) as v from enforcer_usage_daily where deployment_id = $1 group by metric),
            r as (select sum(cpu_seconds) as cpu_seconds, sum(gpu_seconds) as gpu_seconds, sum(model_tokens_in) as model_tokens_in
                    from usage_sample where deployment_id = $1)
       select m.metric, coalesce(e.v, 0)::text as enforcer,
              (case m.metric when 'cpu_seconds' then r.cpu_seconds when 'gpu_seconds' then r.gpu_seconds else r.model_tokens_in end)::text as raw
         from (values ('cpu_seconds'), ('gpu_seconds'), ('model_tokens_in')) as m(metric) cross join r left join e on e.metric = m.metric`,
      [D.deploymentId]);
    // the enforcer's own per-identity record must hold the same (last) revision as usage_sample
    const enforcerMissed = (await pool.query<{ correlation_id: string; seq: string; enforcer_seq: string | null; revision: string; enforcer_revision: string | null }>(
      `select u.correlation_id, u.stream_seq::text as seq, c.stream_seq::text as enforcer_seq, u.revision, c.revision as enforcer_revision
         from usage_sample u left join enforcer_contribution c on c.deployment_id = u.deployment_id and c.correlation_id = u.correlation_id
        where u.deployment_id = $1 and c.revision is distinct from u.revision order by u.stream_seq`, [D.deploymentId])).rows;
    const enforcerOver = enforcerUsage.rows.filter((r) => Number(r.enforcer) > Number(r.raw));
    const enforcerUnder = enforcerUsage.rows.filter((r) => Number(r.enforcer) < Number(r.raw));
    const alerts = await pool.query<{ code: string; scope: string; window_start: string | null; n: string }>(
      `select code, context->>'scope' as scope, context->'period'->>'window_start' as window_start, count(*)::text as n
         from alert where deployment_id = $1 group by 1, 2, 3 order by 2, 1`, [D.deploymentId]);
    const repeatedAlerts = alerts.rows.filter((r) => Number(r.n) > 1);
    const published = (await controlMessages(nc, names(NS))).filter((m: PolicyDecision) => m.deployment_id === D.deploymentId && m.state === 'active');
    const perDecision = new Map<string, number>();
    for (const m of published) perDecision.set(m.decision_id, (perDecision.get(m.decision_id) ?? 0) + 1);
    const repeatedDecisions = [...perDecision].filter(([, n]) => n > 1);
    const decisionRows = await pool.query<{ decision_id: string }>('select decision_id from enforcer_decision where deployment_id = $1', [D.deploymentId]);

    const lost = missingInStream.length + missingRows + notLast.length + enforcerMissed.length;
    const doubleCounts = extraRows + diffs.length + rollupMismatches.length + enforcerOver.length + repeatedAlerts.length
      + repeatedDecisions.reduce((s, [, n]) => s + n - 1, 0);
    const unexpected = services.flatMap((s) => s.unexpected);
    const line = `faults: inputs tried ${inputsTried}, faults injected ${faults.length}, events acknowledged ${ackedSubmissions}, events lost ${lost}, double counts ${doubleCounts}`;
    console.log(line);
    console.log(`faults: ${midBatch} of ${2 * ROUNDS} consumer kills with work pending; ${plan.length} distinct events (${winners.size} correlation ids, ${resends} blind resends), ${duplicateAnswers} answered duplicate, ${attempts} HTTP requests, stream last seq ${last}, `
      + `sent in ${sendMs} ms, total ${Date.now() - t0} ms; faults ${faults.join(' ')}; alerts ${alerts.rows.map((r) => `${r.scope}:${r.code}`).join(' ')}`
      + (unexpected.length ? `; UNEXPECTED EXITS (restarted): ${unexpected.join(' | ')}` : '')
      + (enforcerMissed.length ? `; enforcer missed ${enforcerMissed.length}: ${JSON.stringify(enforcerMissed.slice(0, 20))}` : ''));
    await mkdir(fileURLToPath(new URL('../artifacts/', import.meta.url)), { recursive: true });
    await writeFile(ARTIFACT, `${line}\n`);

    // no service died of a fault it did not receive (e.g. of a Postgres restart under it)
    expect(unexpected).toEqual([]);
    // every planned event was answered, none refused, all acknowledged
    expect(refused).toEqual([]);
    expect(acked.size).toBe(plan.length);
    expect(ackedSubmissions).toBe(inputsTried);
    expect(faults.length).toBe(total);
    // nothing lost
    expect(missingInStream).toEqual([]);
    expect(missingRows).toBe(0);
    expect(notLast).toEqual([]);
    expect(enforcerMissed).toEqual([]);
    expect(enforcerUnder).toEqual([]);
    // nothing twice
    expect(extraRows).toBe(0);
    expect(diffs).toEqual([]);
    expect(rollupMismatches).toEqual([]);
    expect(enforcerOver).toEqual([]);
    expect(repeatedAlerts).toEqual([]);
    expect(repeatedDecisions).toEqual([]);
    // each threshold crossed once in its one window: exactly one alert each, each published exactly once
    const codes = alerts.rows.map((r) => `${r.scope}:${r.code}`);
    for (const want of ['cpu:QUOTA_NEARING', 'cpu:QUOTA_EXCEEDED', 'tokens:QUOTA_NEARING', 'tokens:QUOTA_EXCEEDED', 'gpu:BUDGET_EXCEEDED']) {
      expect(codes.filter((c) => c === want)).toEqual([want]);
    }
    expect(new Set(perDecision.keys())).toEqual(new Set(decisionRows.rows.map((r) => r.decision_id)));
    expect(lost).toBe(0);
    expect(doubleCounts).toBe(0);
  }, FULL ? 1_800_000 : 175_000);
});

/** The winning (last) revision per correlation id among usage events, by the contract's revision order. */
function expectedWinners(events: Planned[]): Map<string, UsageEvent> {
  const best = new Map<string, { key: string; e: UsageEvent }>();
  for (const p of events) {
    if (p.kind !== 'usage') continue;
    const e = p.event as UsageEvent;
    const key = revisionKey(e);
    const cur = best.get(e.job.correlation_id);
    if (!cur || key > cur.key) best.set(e.job.correlation_id, { key, e });
  }
  return new Map([...best].map(([k, v]) => [k, v.e]));
}
