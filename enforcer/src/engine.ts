import type pg from 'pg';
import {
  advanceLane, beginLaneTransaction, localDay, lockLane, loadLimits, type DeploymentLimits, type LeaseToken, type Names, type PolicyDecision, type PriceBook, type StreamRecord,
} from '@kaching/contracts';
import { persistDecisions } from './decisions.js';
import { evaluateLimits } from './evaluate.js';
import { applyUsage, lockDeployments, prefetch, readUsage, toRows, type Prefetched } from './ledger.js';

// The enforcer's batch transaction. What it does lives beside it: ledger.ts (usage by difference, and the figures
// limits read), evaluate.ts (the limits against those figures, pure), decisions.ts (decisions, alerts, outbox).
export { decisionId } from './decisions.js';
export { lockDeployments } from './ledger.js';

export const CHECKPOINT_KEY = 'enforcer';

/** Cached limits per deployment; a config change drops the entry, and a TTL bounds staleness if one is missed. */
export class LimitsCache {
  private m = new Map<string, { p: Promise<DeploymentLimits | null>; at: number }>();
  constructor(private readonly ttlMs = 30_000) {}
  get(db: pg.Pool, id: string): Promise<DeploymentLimits | null> {
    const e = this.m.get(id);
    if (e && Date.now() - e.at < this.ttlMs) return e.p;
    const p = loadLimits(db, id);
    this.m.set(id, { p, at: Date.now() });
    p.catch(() => this.m.delete(id));
    return p;
  }
  drop(id?: string): void {
    if (id) this.m.delete(id);
    else this.m.clear();
  }
}

export interface Decoded {
  seq: number;
  record: StreamRecord;
  /** eventDigest, when the Nats-Msg-Id carried it (saves re-canonicalising the event). */
  digest?: string;
}

export interface EngineCtx {
  pool: pg.Pool;
  names: Names;
  limits: LimitsCache;
  prices: PriceBook;
  onDecision?: (d: PolicyDecision) => void;
  /** Decision ids known to be committed: the steady state skips re-inserting them every batch. */
  known?: Set<string>;
  /** Ids touched by the open transaction; moved to `known` only after commit. */
  touched?: string[];
}

export interface BatchResult {
  applied: number;
  skipped: number;
  lastSeq: number;
  decisions: PolicyDecision[];
}

/**
 * One batch in ONE transaction: skip seq <= checkpoint, apply usage by difference, evaluate the touched
 * deployments, write new decisions (+ alerts, suggestions, outbox, notifications), advance the checkpoint.
 */
export async function processBatch(ctx: EngineCtx, batch: Decoded[], lease: LeaseToken): Promise<BatchResult> {
  const client = await ctx.pool.connect();
  try {
    await beginLaneTransaction(client, lease);
    // the lane's checkpoint and this instance's fence (contracts/src/consumer/lease.ts)
    const cp = await lockLane(client, lease);
    ctx.touched = [];
    const fresh = batch.filter((d) => d.seq > cp);
    const maxSeq = batch.reduce((a, d) => Math.max(a, d.seq), cp);
    // priced with the book as of this transaction: a price writer waits for it (PriceBook.lockForBatch)
    if (fresh.some((d) => d.record.kind === 'usage' && d.record.usage.llm)) await ctx.prices.lockForBatch(client);
    const { rows } = await toRows(ctx, fresh);
    const decisions: PolicyDecision[] = [];
    if (rows.length) {
      await lockDeployments(client, rows.map((r) => r.deployment_id));
      const byDep = new Map<string, { at: number; unpriced: Map<string, string> }>();
      for (const r of await applyUsage(client, rows)) {
        const x = byDep.get(r.deployment_id) ?? { at: 0, unpriced: new Map<string, string>() };
        x.at = Math.max(x.at, r.at);
        if (r.model_name && r.cost_micro_usd === null) x.unpriced.set(r.model_name, r.day);
        byDep.set(r.deployment_id, x);
      }
      const lims = new Map<string, DeploymentLimits>();
      for (const dep of byDep.keys()) {
        const lim = await ctx.limits.get(ctx.pool, dep);
        if (lim) lims.set(dep, lim);
      }
      const pre = await prefetch(client, [...lims.values()]);
      for (const [dep, x] of byDep) {
        const lim = lims.get(dep);
        if (!lim) continue;
        decisions.push(...(await evaluateDeployment(ctx, client, lim, { at: x.at, unpriced: x.unpriced, pre })));
      }
    }
    if (maxSeq > cp) await advanceLane(client, lease, maxSeq);
    await client.query('commit');
    if (ctx.known && ctx.touched) {
      if (ctx.known.size > 100_000) ctx.known.clear();
      for (const id of ctx.touched) ctx.known.add(id);
    }
    return { applied: rows.length, skipped: batch.length - fresh.length, lastSeq: maxSeq, decisions };
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** Re-evaluates one deployment now (config change: a raised limit clears, a lowered one decides). */
export async function reevaluate(ctx: EngineCtx, deploymentId: string, now: Date = new Date()): Promise<PolicyDecision[]> {
  const lim = await ctx.limits.get(ctx.pool, deploymentId);
  if (!lim) return [];
  const client = await ctx.pool.connect();
  try {
    await client.query('begin');
    await lockDeployments(client, [deploymentId]);
    const out = await evaluateDeployment(ctx, client, lim, { at: now.getTime(), unpriced: new Map(), now });
    await client.query('commit');
    return out;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Evaluates a deployment's limits at its newest local day (late events for old days never move the current
 * decision backwards), or at `now` for a config change: read the figures, evaluate, persist.
 */
async function evaluateDeployment(
  ctx: EngineCtx,
  client: pg.PoolClient,
  lim: DeploymentLimits,
  o: { at: number; unpriced: Map<string, string>; now?: Date; pre?: Prefetched },
): Promise<PolicyDecision[]> {
  let day: string;
  if (o.now) {
    day = localDay(o.now, lim.timezone);
  } else if (o.pre?.latestDay.has(lim.deployment_id)) {
    day = o.pre.latestDay.get(lim.deployment_id)!;
  } else {
    const s = await client.query('select latest_day::text as d from enforcer_deployment_state where deployment_id = $1', [lim.deployment_id]);
    day = s.rows[0]?.d ?? localDay(o.at, lim.timezone);
  }
  const usage = await readUsage(client, lim, day, o.pre);
  const ev = evaluateLimits(lim, day, usage, o.at, o.unpriced.keys());
  return persistDecisions(ctx, client, lim, ev, { configChange: !!o.now, ...(o.pre ? { active: o.pre.active.get(lim.deployment_id) ?? [] } : {}) });
}
