import type pg from 'pg';
import type { Logger } from '@kaching/contracts';
import type { BillingConfig } from '../config.js';
import type { ProjectorMetrics } from '../metrics.js';
import { BILLING_ADAPTERS, cloudeventsBatch, type BillingDelivery, type BillingRequest } from './formats.js';

/** Outcome of one attempt: sent, retry later, or give up now (a 4xx the receiver will answer the same way again). */
type Outcome = { ok: true; status: number } | { ok: false; status: number | null; error: string; permanent: boolean; retryAfterMs?: number };

/**
 * Sends the billing outbox to BILLING_SERVICE_URL. Rows are claimed with `for update skip locked` and a lease
 * (next_attempt_at moved past the request timeout), so any number of projector instances share the work and a
 * row claimed by a crashed one comes back after the lease. Delivery is at least once; the idempotency key
 * (Idempotency-Key header and the format's id field) makes it exactly once at the receiver.
 */
export class BillingForwarder {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;
  private stopped = false;
  private prunedAt = 0;
  /** Aborts requests in flight on stop (the record stays pending and comes back after its lease). */
  private readonly abort = new AbortController();

  constructor(private readonly pool: pg.Pool, private readonly config: BillingConfig, private readonly metrics: ProjectorMetrics, private readonly log: Logger) {}

  /** Records waiting (pending) and dead-lettered, for the backlog gauge (read at scrape time). */
  async backlog(): Promise<{ pending: number; dead: number }> {
    const r = await this.pool.query<{ status: string; n: number }>(`select status, count(*)::int as n from billing_outbox where status <> 'sent' group by status`);
    const of = (s: string) => r.rows.find((x) => x.status === s)?.n ?? 0;
    return { pending: of('pending'), dead: of('dead') };
  }

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.flush()
        .catch((err) => this.log.warn({ err: (err as Error).message }, 'billing forwarding round failed; retried at the next poll'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.config.pollMs).unref();
        });
    };
    this.timer = setTimeout(tick, 0).unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.abort.abort();
    await this.running?.catch(() => undefined);
  }

  /** Sends every due record, in rounds of batchSize; returns how many records were attempted. */
  flush(): Promise<number> {
    this.running ??= (async () => {
      let total = 0;
      try {
        await this.prune();
        for (;;) {
          const rows = await this.claim();
          if (!rows.length) return total;
          if (this.config.format === 'cloudevents' && this.config.cloudeventsBatch) {
            // one application/cloudevents-batch+json request; its answer settles every record in it
            const out = await this.post(cloudeventsBatch(rows, this.config));
            await this.settle(rows, out);
          } else {
            await Promise.all(rows.map(async (d) => this.settle([d], await this.post(BILLING_ADAPTERS[this.config.format](d, this.config), d.idempotency_key))));
          }
          total += rows.length;
          if (this.stopped) return total;
        }
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  /** Hourly: sent records past BILLING_SENT_RETENTION_DAYS go (billing_run, not the outbox, keeps a run from being billed twice). */
  private async prune(): Promise<void> {
    if (!this.config.sentRetentionDays || Date.now() - this.prunedAt < 3_600_000) return;
    this.prunedAt = Date.now();
    await this.pool.query(`delete from billing_outbox where status = 'sent' and sent_at < now() - make_interval(days => $1)`, [this.config.sentRetentionDays]);
  }

  private async claim(): Promise<BillingDelivery[]> {
    const leaseMs = this.config.timeoutMs + 5_000;
    const r = await this.pool.query<BillingDelivery>(
      `update billing_outbox o set next_attempt_at = now() + make_interval(secs => $2::float8 / 1000)
        from (select delivery_id from billing_outbox where status = 'pending' and next_attempt_at <= now()
               order by next_attempt_at, delivery_id limit $1 for update skip locked) due
       where o.delivery_id = due.delivery_id
       returning o.delivery_id::text, o.idempotency_key, o.kind, o.org_id, o.deployment_id, o.correlation_id, o.revision,
         o.cost_micro_usd::text, o.delta_micro_usd::text, o.occurred_at, o.attempts, o.record,
         coalesce((select billing_customer_id from org where org.org_id = o.org_id), o.org_id::text) as customer_id`,
      [this.config.batchSize, leaseMs],
    );
    // UPDATE … RETURNING follows no order: a CloudEvents batch goes out in the order the records were enqueued
    return r.rows.sort((x, y) => (BigInt(x.delivery_id) < BigInt(y.delivery_id) ? -1 : 1));
  }

  /** Records the outcome of the request that carried `ds` (one record, or a CloudEvents batch: settled together). */
  private async settle(ds: BillingDelivery[], out: Outcome): Promise<void> {
    if (this.abort.signal.aborted && !out.ok) return; // stopping: not the receiver's failure
    const label = { format: this.config.format };
    const ids = ds.map((d) => d.delivery_id);
    if (out.ok) {
      await this.pool.query(
        `update billing_outbox set status = 'sent', sent_at = now(), attempts = attempts + 1, last_status = $2, last_error = null
          where delivery_id = any($1::bigint[]) and status = 'pending'`,
        [ids, out.status],
      );
      this.metrics.billingSent.inc(label, ds.length);
      return;
    }
    this.metrics.billingFailed.inc(label, ds.length);
    const c = this.config;
    const error = this.redact(out.error).slice(0, 500);
    // backoff: base · 2^(attempt-1) capped at max, at least Retry-After
    const r = await this.pool.query<{ delivery_id: string; idempotency_key: string; attempts: number; status: string }>(
      `update billing_outbox set attempts = attempts + 1, last_status = $2, last_error = $3,
         status = case when $4 or attempts + 1 >= $5 then 'dead' else 'pending' end,
         next_attempt_at = now() + make_interval(secs => greatest($6::float8, least($7::float8, $8::float8 * power(2, attempts))) / 1000)
        where delivery_id = any($1::bigint[]) and status = 'pending'
       returning delivery_id::text, idempotency_key, attempts, status`,
      [ids, out.status, error, out.permanent, c.maxAttempts, out.retryAfterMs ?? 0, c.retryMaxMs, c.retryBaseMs],
    );
    for (const d of r.rows.filter((x) => x.status === 'dead')) {
      this.metrics.billingDead.inc(label);
      this.log.warn({ delivery_id: d.delivery_id, idempotency_key: d.idempotency_key, attempts: d.attempts, status: out.status, error }, 'billing record dead-lettered');
    }
  }

  private async post(req: BillingRequest, idempotencyKey?: string): Promise<Outcome> {
    const headers: Record<string, string> = { 'content-type': req.contentType, ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}) };
    if (this.config.token) headers.authorization = `Bearer ${this.config.token}`;
    let res: Response;
    try {
      res = await fetch(this.config.url, { method: 'POST', headers, body: req.body, signal: AbortSignal.any([AbortSignal.timeout(this.config.timeoutMs), this.abort.signal]) });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      return { ok: false, status: null, error: e.cause?.code ?? e.cause?.message ?? e.message, permanent: false };
    }
    const text = await res.text().catch(() => '');
    // 409: the receiver already holds this idempotency key (an earlier attempt arrived but its answer did not)
    if ((res.status >= 200 && res.status < 300) || res.status === 409) return { ok: true, status: res.status };
    const retryable = res.status >= 500 || res.status === 408 || res.status === 429;
    const retryAfter = Number(res.headers.get('retry-after'));
    return {
      ok: false, status: res.status, error: `HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`, permanent: !retryable,
      ...(Number.isFinite(retryAfter) && retryAfter > 0 ? { retryAfterMs: Math.min(retryAfter * 1000, this.config.retryMaxMs) } : {}),
    };
  }

  /** Nothing the receiver echoes may carry the token into the database or the log. */
  private redact(s: string): string {
    return this.config.token ? s.split(this.config.token).join('[redacted]') : s;
  }
}
