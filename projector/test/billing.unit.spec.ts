import { describe, expect, it } from 'vitest';
import { BILLING_ADAPTERS, loadBillingConfig, loadConfig, type BillingDelivery } from '@kaching/projector';

const delivery: BillingDelivery = {
  delivery_id: '1', idempotency_key: 'k'.repeat(64), kind: 'correction', org_id: 'o', customer_id: 'cus_1', deployment_id: 'd', correlation_id: 'run-1',
  revision: 'r', cost_micro_usd: '1500000', delta_micro_usd: '-250', occurred_at: new Date('2026-11-20T10:00:00.500Z'), attempts: 0,
  record: {
    run_id: 'run-1', job_id: null, status: 'failed', agent_id: 'a', agent_type: 'coder', provider: 'openai', model_name: 'gpt-4o', tokens_in: 1, tokens_out: 2,
    tokens_cached_in: 0, tokens_cache_write: 0, tokens_reasoning: 0, price_version: 3, started_at: 's', completed_at: 'c',
  },
};

describe('billing configuration', () => {
  it('is off without BILLING_SERVICE_URL, with defaults per format otherwise', () => {
    expect(loadConfig({}).billing).toBeNull();
    expect(loadBillingConfig({ BILLING_SERVICE_URL: 'https://b.example/v1/usage' }, 'kaching')).toEqual({
      url: 'https://b.example/v1/usage', format: 'json', eventName: 'io.kaching.run.cost', source: 'kaching/kaching', maxAttempts: 10,
      retryBaseMs: 1000, retryMaxMs: 300_000, pollMs: 1000, timeoutMs: 10_000, batchSize: 20, cloudeventsBatch: false, sentRetentionDays: 30,
    });
    expect(loadBillingConfig({ BILLING_SERVICE_URL: 'http://x/', BILLING_FORMAT: 'stripe', BILLING_SERVICE_TOKEN: 't' }, 'ns')).toMatchObject({ format: 'stripe', eventName: 'kaching_cost_micro_usd', token: 't' });
  });

  it('refuses a bad URL, format or attempt count, naming the variable', () => {
    expect(() => loadBillingConfig({ BILLING_SERVICE_URL: 'billing.local' }, 'k')).toThrow(/BILLING_SERVICE_URL/);
    expect(() => loadBillingConfig({ BILLING_SERVICE_URL: 'ftp://x/' }, 'k')).toThrow(/BILLING_SERVICE_URL/);
    expect(() => loadBillingConfig({ BILLING_SERVICE_URL: 'http://x/', BILLING_FORMAT: 'xml' }, 'k')).toThrow(/BILLING_FORMAT must be one of json, cloudevents, stripe/);
    expect(() => loadBillingConfig({ BILLING_SERVICE_URL: 'http://x/', BILLING_MAX_ATTEMPTS: '0' }, 'k')).toThrow(/BILLING_MAX_ATTEMPTS/);
  });
});

describe('billing payload adapters', () => {
  const c = { eventName: 'ev', source: 'src' };
  it('json carries total and delta in micro-USD and USD', () => {
    const r = BILLING_ADAPTERS.json(delivery, c);
    expect(r.contentType).toBe('application/json');
    expect(JSON.parse(r.body)).toMatchObject({ kind: 'correction', run_id: 'run-1', cost_micro_usd: 1_500_000, cost_usd: '1.500000', delta_micro_usd: -250, delta_usd: '-0.000250', tokens_used: 3 });
  });
  it('cloudevents is structured CloudEvents 1.0 with the additive value in data', () => {
    const r = BILLING_ADAPTERS.cloudevents(delivery, c);
    const e = JSON.parse(r.body);
    expect(r.contentType).toBe('application/cloudevents+json');
    expect(e).toMatchObject({ specversion: '1.0', id: delivery.idempotency_key, source: 'src', type: 'ev', subject: 'cus_1', time: '2026-11-20T10:00:00.500Z', datacontenttype: 'application/json' });
    expect(e.data).toMatchObject({ value_micro_usd: -250, cost_micro_usd: 1_500_000 });
  });
  it('stripe is a form-encoded meter event with whole-second timestamp', () => {
    const r = BILLING_ADAPTERS.stripe(delivery, c);
    expect(r.contentType).toBe('application/x-www-form-urlencoded');
    expect(r.body).toBe(`event_name=ev&identifier=${'k'.repeat(64)}&timestamp=1795168800&payload%5Bstripe_customer_id%5D=cus_1&payload%5Bvalue%5D=-250`);
  });
});
