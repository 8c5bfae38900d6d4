import type pg from 'pg';
import { KachingError, microUsdToUsd } from '@kaching/contracts';
import { decodeCursor, toPage, type Page } from './cursor.js';

// Billing forwarding as the API shows it: the projector's outbox (billing_outbox, 054_billing.sql). Every function
// runs inside asOrg(): row-level security limits it to the caller's org.

export type DeliveryStatus = 'pending' | 'sent' | 'dead';

export interface DeliveryQuery {
  status?: DeliveryStatus;
  deployment_id?: string;
  limit: number;
  cursor?: string;
}

const COLS = `delivery_id::text, idempotency_key, kind, deployment_id, correlation_id as run_id, revision, cost_micro_usd::text,
  delta_micro_usd::text, occurred_at, status, attempts, next_attempt_at, last_status, last_error, created_at, sent_at`;

type Row = Record<string, unknown> & { delivery_id: string; cost_micro_usd: string; delta_micro_usd: string };

const shape = (r: Row) => ({
  ...r,
  delivery_id: Number(r.delivery_id),
  cost_micro_usd: Number(r.cost_micro_usd),
  cost_usd: microUsdToUsd(BigInt(r.cost_micro_usd)),
  delta_micro_usd: Number(r.delta_micro_usd),
  delta_usd: microUsdToUsd(BigInt(r.delta_micro_usd)),
  // pending rows wait for next_attempt_at; it means nothing for the others
  next_attempt_at: r.status === 'pending' ? r.next_attempt_at : null,
});

/** Billing records, newest first, optionally by status (dead = the dead-letter list) and deployment. */
export async function listDeliveries(c: pg.PoolClient, q: DeliveryQuery): Promise<Page<ReturnType<typeof shape>>> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, v: unknown) => {
    params.push(v);
    where.push(sql.replace('?', `$${params.length}`));
  };
  if (q.status) add('status = ?', q.status);
  if (q.deployment_id) add('deployment_id = ?', q.deployment_id);
  const cur = decodeCursor(q.cursor, 1);
  if (cur) add('delivery_id < ?::bigint', cur[0]);
  const r = await c.query<Row>(
    `select ${COLS} from billing_outbox ${where.length ? `where ${where.join(' and ')}` : ''} order by delivery_id desc limit ${q.limit + 1}`,
    params,
  );
  return toPage(r.rows.map(shape), q.limit, (x) => [String(x.delivery_id)]);
}

/** Puts a dead-lettered record back in the queue with a fresh attempt budget (same idempotency key). */
export async function retryDelivery(c: pg.PoolClient, deliveryId: string): Promise<ReturnType<typeof shape>> {
  const r = await c.query<Row>(
    `update billing_outbox set status = 'pending', attempts = 0, next_attempt_at = now() where delivery_id = $1::bigint and status = 'dead'
     returning ${COLS}`,
    [deliveryId],
  );
  if (r.rowCount) return shape(r.rows[0]!);
  const found = await c.query<{ status: string }>('select status from billing_outbox where delivery_id = $1::bigint', [deliveryId]);
  if (!found.rowCount) throw new KachingError('NOT_FOUND', { field: 'id', message: `No billing record ${deliveryId} in this organisation` });
  throw new KachingError('BILLING_DELIVERY_NOT_DEAD', { field: 'id', message: `Billing record ${deliveryId} is ${found.rows[0]!.status}; only a dead one can be retried` });
}

/** Stripe-style customer mapping: the billing system's customer id for the caller's organisation (null: the org id). */
export async function setBillingCustomer(c: pg.PoolClient, orgId: string, customerId: string | null): Promise<{ org_id: string; billing_customer_id: string | null }> {
  const r = await c.query<{ org_id: string; billing_customer_id: string | null }>(
    'update org set billing_customer_id = $2 where org_id = $1 returning org_id, billing_customer_id',
    [orgId, customerId],
  );
  if (!r.rowCount) throw new KachingError('NOT_FOUND', { field: 'org_id', message: 'The organisation is not visible' });
  return r.rows[0]!;
}
