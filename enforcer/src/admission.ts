import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { inTransaction, InputError, type AdmissionRequest, type AdmissionResponse } from '@kaching/contracts';
import { fromMicro, toMicro } from '@kaching/contracts';
import { budgetUsage, openReservations } from '@kaching/contracts';
import { windowAt } from '@kaching/contracts';

const MAX_TTL_S = 24 * 3600;

/**
 * "May this job run?" The budget row is locked (select … for update) for the check-and-reserve, so
 * concurrent checks — also from two enforcer instances — serialise and cannot jointly overshoot.
 */
export async function checkAdmission(pool: pg.Pool, req: AdmissionRequest, now: Date = new Date()): Promise<AdmissionResponse> {
  validate(req);
  return inTransaction(pool, async (client) => {
    const r = await client.query(
      `select b.metric, b.period, b.limit_units::text as limit_units, b.action, d.timezone, d.org_id
         from budget b join deployment d using (deployment_id)
        where b.deployment_id = $1 and b.scope = $2 for update of b`,
      [req.deployment_id, req.scope],
    );
    const b = r.rows[0];
    if (!b) {
      await client.query('commit');
      return { allow: true, deployment_id: req.deployment_id, scope: req.scope, limit_units: null, used_units: 0, reserved_units: 0, remaining_units: null, reason: 'no budget for this scope' };
    }
    const estimate = b.metric === 'cost_usd'
      ? (req.estimate_cost_micro_usd !== undefined ? BigInt(Math.ceil(req.estimate_cost_micro_usd)) : toMicro(req.estimate_units ?? 0))
      : toMicro(req.estimate_units ?? 0);
    const w = windowAt(b.period, now, b.timezone);
    const used = await budgetUsage(client, req.deployment_id, { scope: req.scope, metric: b.metric }, w);
    const reserved = await openReservations(client, req.deployment_id, req.scope, now);
    const limit = toMicro(b.limit_units);
    const remaining = limit - used - reserved;
    const allow = estimate <= remaining && (estimate > 0n || remaining > 0n);
    const res: AdmissionResponse = {
      allow, deployment_id: req.deployment_id, scope: req.scope, limit_units: num(limit), used_units: num(used), reserved_units: num(reserved),
      remaining_units: num(remaining > 0n ? remaining : 0n),
    };
    if (!allow) {
      res.reason = `estimate ${fromMicro(estimate)} exceeds the remaining ${fromMicro(remaining > 0n ? remaining : 0n)} of budget ${req.scope} (${b.period})`;
      res.action = b.action;
    } else if (req.reserve_ttl_s && req.reserve_ttl_s > 0) {
      const id = randomUUID();
      const expires = new Date(now.getTime() + req.reserve_ttl_s * 1000);
      await client.query(
        `insert into enforcer_reservation (reservation_id, deployment_id, org_id, scope, units, correlation_id, expires_at) values ($1, $2, $3, $4, $5, $6, $7)`,
        [id, req.deployment_id, b.org_id, req.scope, fromMicro(estimate), req.correlation_id ?? null, expires],
      );
      res.reservation_id = id;
      res.reservation_expires_at = expires.toISOString();
      res.reserved_units = num(reserved + estimate);
      const left = remaining - estimate;
      res.remaining_units = num(left > 0n ? left : 0n);
    }
    return res;
  });
}

const num = (v: bigint) => Number(fromMicro(v));

function validate(req: AdmissionRequest): void {
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  if (!req || typeof req !== 'object') throw new InputError('FIELD_TYPE', { message: 'An AdmissionRequest object is required' });
  if (typeof req.deployment_id !== 'string' || !uuid.test(req.deployment_id)) throw new InputError('FIELD_FORMAT', { field: 'deployment_id', rule: 'format:uuid' });
  if (typeof req.scope !== 'string' || !req.scope) throw new InputError('FIELD_REQUIRED', { field: 'scope' });
  for (const k of ['estimate_units', 'estimate_cost_micro_usd', 'reserve_ttl_s'] as const) {
    const v = req[k];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 0)) throw new InputError('FIELD_RANGE', { field: k, rule: 'minimum:0' });
  }
  if (req.reserve_ttl_s !== undefined && req.reserve_ttl_s > MAX_TTL_S) throw new InputError('FIELD_RANGE', { field: 'reserve_ttl_s', rule: `maximum:${MAX_TTL_S}` });
}
