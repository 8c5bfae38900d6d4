import type { NatsConnection } from '@nats-io/transport-node';
import type { Names } from '../names/names.js';

/**
 * Published on `names.configSubject(deployment)` by the API and CLI after every configuration
 * write, so the enforcer re-reads that deployment's limits at once instead of polling.
 */
export interface ConfigChange {
  deployment_id: string;
  kind: 'quota' | 'budget' | 'license' | 'deployment' | 'price' | 'plan' | 'feature_flag' | 'token' | 'key' | 'cert';
  /** The changed row's id when there is one. */
  id?: string;
  at: string;
}

export function publishConfigChange(nc: NatsConnection, n: Names, change: Omit<ConfigChange, 'at'>): void {
  const msg: ConfigChange = { ...change, at: new Date().toISOString() };
  nc.publish(n.configSubject(change.deployment_id), JSON.stringify(msg));
}

/** "May this job run?" — sent as a NATS request on `names.checkSubject(deployment)` (and via POST /v1/budget/check). */
export interface AdmissionRequest {
  deployment_id: string;
  /** Budget scope to check against. */
  scope: string;
  /** Estimated units of the budget's metric, or estimated cost in micro-USD for cost budgets. */
  estimate_units?: number;
  estimate_cost_micro_usd?: number;
  /** Hold the estimate for this long so concurrent checks cannot jointly overshoot. */
  reserve_ttl_s?: number;
  /** Settles the reservation when usage with this correlation id arrives. */
  correlation_id?: string;
}

export interface AdmissionResponse {
  allow: boolean;
  deployment_id: string;
  scope: string;
  limit_units: number | null;
  used_units: number;
  reserved_units: number;
  remaining_units: number | null;
  reservation_id?: string;
  reservation_expires_at?: string;
  reason?: string;
  /** On deny: the action the budget prescribes. */
  action?: string;
}
