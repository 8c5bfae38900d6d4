import { microUsdToUsd } from '@kaching/contracts';
import type { BillingConfig, BillingFormat } from '../config.js';

/** One outbox row as the forwarder reads it (customer_id: org.billing_customer_id, else the org id). */
export interface BillingDelivery {
  delivery_id: string;
  idempotency_key: string;
  kind: 'usage' | 'correction';
  org_id: string;
  customer_id: string;
  deployment_id: string;
  correlation_id: string;
  revision: string;
  cost_micro_usd: string;
  delta_micro_usd: string;
  occurred_at: Date;
  attempts: number;
  record: BillingRecordFields;
}

/** The format-neutral record stored in billing_outbox.record (see billing/enqueue.ts). */
export interface BillingRecordFields {
  run_id: string;
  job_id: string | null;
  status: string;
  agent_id: string;
  agent_type: string;
  provider: string | null;
  model_name: string | null;
  tokens_in: number;
  tokens_out: number;
  tokens_cached_in: number;
  tokens_cache_write: number;
  tokens_reasoning: number;
  price_version: number | null;
  started_at: string;
  completed_at: string;
}

export interface BillingRequest {
  contentType: string;
  body: string;
}

type Adapter = (d: BillingDelivery, c: Pick<BillingConfig, 'eventName' | 'source'>) => BillingRequest;

/**
 * Generic JSON: the whole record. `cost_micro_usd` is the run's total after this record, `delta_micro_usd`
 * what it adds to what billing was told before (= the cost for a `usage` record). Pro-Cloud's field names
 * (user_id, service, run_id, cost_usd, tokens_used, started_at, completed_at) are included.
 */
const json: Adapter = (d) => {
  const r = d.record;
  return {
    contentType: 'application/json',
    body: JSON.stringify({
      idempotency_key: d.idempotency_key, kind: d.kind, service: 'kaching', user_id: d.customer_id, customer_id: d.customer_id,
      org_id: d.org_id, deployment_id: d.deployment_id, run_id: d.correlation_id, revision: d.revision, job_id: r.job_id,
      status: r.status, agent_id: r.agent_id, agent_type: r.agent_type, provider: r.provider, model_name: r.model_name,
      tokens_in: r.tokens_in, tokens_out: r.tokens_out, tokens_cached_in: r.tokens_cached_in, tokens_cache_write: r.tokens_cache_write,
      tokens_reasoning: r.tokens_reasoning, tokens_used: r.tokens_in + r.tokens_out, price_version: r.price_version,
      cost_micro_usd: Number(d.cost_micro_usd), cost_usd: microUsdToUsd(BigInt(d.cost_micro_usd)),
      delta_micro_usd: Number(d.delta_micro_usd), delta_usd: microUsdToUsd(BigInt(d.delta_micro_usd)),
      currency: 'USD', started_at: r.started_at, completed_at: r.completed_at,
    }),
  };
};

/**
 * CloudEvents 1.0, structured mode (what OpenMeter ingests): id = idempotency key, subject = the customer,
 * time = the run's completion. data.value_micro_usd is additive (the delta: a meter SUMs it); data.cost_micro_usd
 * the run's total after this record.
 */
const cloudevents: Adapter = (d, c) => ({ contentType: 'application/cloudevents+json', body: JSON.stringify(cloudEvent(d, c)) });

/** BILLING_CLOUDEVENTS_BATCH: the claimed records as one JSON array of CloudEvents (batched mode; OpenMeter takes it too). */
export function cloudeventsBatch(ds: BillingDelivery[], c: Pick<BillingConfig, 'eventName' | 'source'>): BillingRequest {
  return { contentType: 'application/cloudevents-batch+json', body: JSON.stringify(ds.map((d) => cloudEvent(d, c))) };
}

function cloudEvent(d: BillingDelivery, c: Pick<BillingConfig, 'eventName' | 'source'>) {
  const r = d.record;
  return {
    specversion: '1.0', id: d.idempotency_key, source: c.source, type: c.eventName, subject: d.customer_id,
    time: d.occurred_at.toISOString(), datacontenttype: 'application/json',
    data: {
      kind: d.kind, value_micro_usd: Number(d.delta_micro_usd), cost_micro_usd: Number(d.cost_micro_usd), org_id: d.org_id,
      deployment_id: d.deployment_id, run_id: d.correlation_id, revision: d.revision, status: r.status, agent_type: r.agent_type,
      provider: r.provider, model_name: r.model_name, tokens_in: r.tokens_in, tokens_out: r.tokens_out,
    },
  };
}

/**
 * A Stripe-style meter event, form-encoded as Stripe's v1 API takes it (POST /v1/billing/meter_events):
 * event_name, identifier (= idempotency key), timestamp (Unix seconds of the run's completion),
 * payload[stripe_customer_id], payload[value] = the delta in integer micro-USD (meters sum it).
 */
const stripe: Adapter = (d, c) => {
  const form = new URLSearchParams();
  form.set('event_name', c.eventName);
  form.set('identifier', d.idempotency_key);
  form.set('timestamp', String(Math.floor(d.occurred_at.getTime() / 1000)));
  form.set('payload[stripe_customer_id]', d.customer_id);
  form.set('payload[value]', d.delta_micro_usd);
  return { contentType: 'application/x-www-form-urlencoded', body: form.toString() };
};

export const BILLING_ADAPTERS: Record<BillingFormat, Adapter> = { json, cloudevents, stripe };
