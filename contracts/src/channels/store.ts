import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { InputError, KachingError } from '../errors/errors.js';
import { checkCode, checkNewChannel, checkSeverity, displayUrl, isUuid, type Channel, type NewChannel } from './channel.js';
import { sealSecret } from './secrets.js';
import { newWebhookSecret } from './signer.js';
import { DELIVERY_COLUMNS, DELIVERY_DEFAULTS, attempt, record, type ClaimedDelivery, type Delivery, type DeliveryOptions } from './delivery.js';
import { testPayload } from './message.js';

// `db` is the caller's RLS client in the API (it sees its org only) and the operator pool in the CLI.
type Db = pg.Pool | pg.PoolClient;

const COLUMNS = `webhook_id as channel_id, org_id, name, kind, url, deployment_id, codes, severities, enabled, created_at`;

function toChannel(r: Record<string, unknown>): Channel {
  return { ...(r as unknown as Channel), url: displayUrl(String(r.kind), String(r.url)), created_at: (r.created_at as Date).toISOString() };
}

/** Creates a channel; the answer carries its signing secret, which is shown this once (stored encrypted). */
export async function createChannel(db: Db, key: Buffer, orgId: string, input: NewChannel): Promise<Channel & { secret: string }> {
  const c = checkNewChannel(input);
  if (c.deploymentId) {
    const d = await db.query('select 1 from deployment where deployment_id = $1 and org_id = $2', [c.deploymentId, orgId]);
    if (!d.rowCount) throw new InputError('CHANNEL_FILTER_INVALID', { field: 'deployment_id', rule: 'exists', message: 'No such deployment in this organisation' });
  }
  const id = randomUUID();
  const secret = newWebhookSecret();
  const r = await db.query(
    `insert into enforcer_webhook (webhook_id, org_id, deployment_id, kind, url, secret_enc, codes, severities, name)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning ${COLUMNS}`,
    [id, orgId, c.deploymentId, c.kind, c.url, sealSecret(key, id, secret), c.codes, c.severities, c.name],
  );
  return { ...toChannel(r.rows[0]), secret };
}

export interface ChannelFilter {
  orgId?: string;
  /** Channels that receive this deployment's alerts (its own and the org-wide ones). */
  deploymentId?: string;
  /** Channels that receive alerts with this code / severity. */
  code?: string;
  severity?: string;
}

export async function listChannels(db: Db, f: ChannelFilter = {}): Promise<Channel[]> {
  const where: string[] = [];
  const args: unknown[] = [];
  const arg = (v: unknown) => (args.push(v), `$${args.length}`);
  if (f.orgId !== undefined) where.push(`org_id = ${arg(f.orgId)}`);
  if (f.deploymentId !== undefined) {
    if (!isUuid(f.deploymentId)) throw new InputError('CHANNEL_FILTER_INVALID', { field: 'deployment_id', rule: 'format:uuid' });
    where.push(`(deployment_id is null or deployment_id = ${arg(f.deploymentId)})`);
  }
  if (f.code !== undefined) where.push(`(codes is null or ${arg(checkCode(f.code))} = any(codes))`);
  if (f.severity !== undefined) where.push(`(severities is null or ${arg(checkSeverity(f.severity))} = any(severities))`);
  const r = await db.query(`select ${COLUMNS} from enforcer_webhook ${where.length ? 'where ' + where.join(' and ') : ''} order by created_at, webhook_id`, args);
  return r.rows.map(toChannel);
}

export async function getChannel(db: Db, id: string): Promise<Channel> {
  const r = isUuid(id) ? await db.query(`select ${COLUMNS} from enforcer_webhook where webhook_id = $1`, [id]) : { rows: [] };
  if (!r.rows[0]) throw new KachingError('NOT_FOUND', { field: 'id' });
  return toChannel(r.rows[0]);
}

/** Deletes a channel and its delivery log (pending deliveries to it are dropped with it). */
export async function deleteChannel(db: Db, id: string): Promise<void> {
  const r = isUuid(id) ? await db.query('delete from enforcer_webhook where webhook_id = $1', [id]) : { rowCount: 0 };
  if (!r.rowCount) throw new KachingError('NOT_FOUND', { field: 'id' });
}

export async function listDeliveries(db: Db, channelId: string, limit = 100): Promise<Delivery[]> {
  await getChannel(db, channelId);
  const r = await db.query(`select ${DELIVERY_COLUMNS} from enforcer_notification n where n.webhook_id = $1 order by n.notification_id desc limit $2`, [channelId, limit]);
  return r.rows.map(deliveryOf);
}

function deliveryOf(r: Record<string, unknown>): Delivery {
  const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : null);
  return {
    ...(r as unknown as Delivery),
    last_attempt_at: iso(r.last_attempt_at), next_attempt_at: iso(r.next_attempt_at), delivered_at: iso(r.delivered_at), created_at: iso(r.created_at)!,
  };
}

/**
 * Queues a test message and makes its first attempt now; a failed one stays in the delivery log and is
 * retried by the enforcer's notifier like any alert. Runs on the operator pool: callers check visibility first.
 */
export async function sendTestMessage(pool: pg.Pool, key: Buffer, channelId: string, o: DeliveryOptions = DELIVERY_DEFAULTS): Promise<Delivery> {
  const ch = await getChannel(pool, channelId);
  const payload = testPayload(ch.channel_id);
  // queued under a lease so the notifier does not attempt it at the same time
  const ins = await pool.query<ClaimedDelivery>(
    `with n as (
       insert into enforcer_notification (decision_id, webhook_id, org_id, payload, next_attempt_at)
       values ($1, $2, $3, $4, now() + interval '60 seconds') returning *)
     select n.notification_id::text, n.webhook_id, n.attempts, n.created_at, n.payload, w.kind, w.url, w.secret, w.secret_enc
       from n join enforcer_webhook w using (webhook_id)`,
    [`test:${randomUUID()}`, ch.channel_id, ch.org_id, payload],
  );
  const d = ins.rows[0]!;
  await record(pool, d, await attempt(key, d, o.timeoutMs), o);
  const r = await pool.query(`select ${DELIVERY_COLUMNS} from enforcer_notification n where n.notification_id = $1`, [d.notification_id]);
  return deliveryOf(r.rows[0]);
}
