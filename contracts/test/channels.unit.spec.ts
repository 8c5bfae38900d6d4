import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import {
  backoffMs, checkNewChannel, displayUrl, InputError, newWebhookSecret, openSecret, sealSecret, signWebhook, slackBody, testPayload, verifyWebhook, webhookBody,
  webhookHeaders, type PolicyDecision,
} from '@kaching/contracts';
import { expectSlackShape } from '../../test/support/slack.js';

const decision: PolicyDecision = {
  schema: 'kaching.v1.policy_decision', decision_id: 'd1', deployment_id: randomUUID(), org_id: randomUUID(), code: 'BUDGET_EXCEEDED', scope: 'llm',
  state: 'active', action: 'block', enforcement: 'hard', severity: 'error', metric: 'cost_usd', observed: 1.234567, limit: 1,
  period: { kind: 'daily', window_start: '2026-12-04T00:00:00Z', window_end: '2026-12-05T00:00:00Z', timezone: 'UTC' },
  message: 'Budget llm: cost_usd $1.23 reached the budget $1.00 (daily window from 2026-12-04); action block', issued_at: '2026-12-04T05:00:00.000Z',
};

function codeOf(fn: () => unknown): [string, string | undefined, string | undefined] {
  try {
    fn();
  } catch (e) {
    if (e instanceof InputError) return [e.code, e.field, e.rule];
    throw e;
  }
  throw new Error('no error');
}

describe('Standard Webhooks signing', () => {
  it('the standardwebhooks library verifies our signature; a changed body, another secret or an old timestamp does not', () => {
    const secret = newWebhookSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    const body = webhookBody(decision);
    const h = webhookHeaders(secret, 'msg_42', body);
    expect(new Webhook(secret).verify(body, h)).toMatchObject({ type: 'decision.active', data: { code: 'BUDGET_EXCEEDED', observed: 1.234567 } });
    expect(verifyWebhook(secret, h, body)).toBe(true);
    expect(() => new Webhook(secret).verify(body.replace('1.234567', '0.1'), h)).toThrow();
    expect(() => new Webhook(newWebhookSecret()).verify(body, h)).toThrow();
    const old = webhookHeaders(secret, 'msg_42', body, Date.now() - 3600_000);
    expect(() => new Webhook(secret).verify(body, old)).toThrow();
    // the library's own signer agrees byte for byte
    const t = new Date(1_700_000_000_000);
    expect(signWebhook(secret, 'msg_1', 1_700_000_000, body)).toBe(new Webhook(secret).sign('msg_1', t, body));
  });

  it('secrets are sealed with AES-GCM bound to their channel', () => {
    const key = randomBytes(32);
    const id = randomUUID();
    const s = newWebhookSecret();
    const sealed = sealSecret(key, id, s);
    expect(sealed.toString('latin1')).not.toContain(s.slice(6));
    expect(openSecret(key, id, sealed)).toBe(s);
    expect(() => openSecret(key, randomUUID(), sealed)).toThrow();
  });
});

describe('channel rules', () => {
  it('bad URL, unknown kind and bad filters get their own codes naming field and rule', () => {
    const ok = { kind: 'webhook', url: 'https://example.com/hook' };
    expect(checkNewChannel(ok)).toMatchObject({ kind: 'webhook', url: 'https://example.com/hook', codes: null, severities: null, deploymentId: null });
    expect(checkNewChannel({ ...ok, url: 'http://127.0.0.1:9/x' }).url).toBe('http://127.0.0.1:9/x');
    expect(codeOf(() => checkNewChannel({ ...ok, url: 'not a url' }))).toEqual(['CHANNEL_URL_INVALID', 'url', 'format:url']);
    expect(codeOf(() => checkNewChannel({ ...ok, url: 'ftp://example.com/x' }))).toEqual(['CHANNEL_URL_INVALID', 'url', 'scheme:https']);
    expect(codeOf(() => checkNewChannel({ ...ok, url: 'http://example.com/x' }))).toEqual(['CHANNEL_URL_INVALID', 'url', 'scheme:https']);
    expect(codeOf(() => checkNewChannel({ ...ok, url: 'https://u:p@example.com/x' }))).toEqual(['CHANNEL_URL_INVALID', 'url', 'no-credentials']);
    expect(codeOf(() => checkNewChannel({ ...ok, kind: 'email' }))).toEqual(['CHANNEL_KIND_UNKNOWN', 'kind', 'enum:webhook,slack']);
    expect(codeOf(() => checkNewChannel({ ...ok, codes: ['QUOTA_EXCEEDED', 'NOPE'] })).slice(0, 2)).toEqual(['CHANNEL_FILTER_INVALID', 'codes.1']);
    expect(codeOf(() => checkNewChannel({ ...ok, severities: ['fatal'] })).slice(0, 2)).toEqual(['CHANNEL_FILTER_INVALID', 'severities.0']);
    expect(codeOf(() => checkNewChannel({ ...ok, codes: [] })).slice(0, 2)).toEqual(['CHANNEL_FILTER_INVALID', 'codes']);
    expect(codeOf(() => checkNewChannel({ ...ok, deployment_id: 'x' }))).toEqual(['CHANNEL_FILTER_INVALID', 'deployment_id', 'format:uuid']);
  });

  it("a Slack URL's token is not listed", () => {
    expect(displayUrl('slack', 'https://hooks.slack.com/services/T0/B0/secret')).toBe('https://hooks.slack.com/services/…');
    expect(displayUrl('webhook', 'https://example.com/a/b')).toBe('https://example.com/a/b');
  });

  it('backoff doubles up to its cap', () => {
    const o = { backoffBaseMs: 1000, backoffMaxMs: 300_000 };
    expect([1, 2, 3, 4, 10, 50].map((n) => backoffMs(n, o))).toEqual([1000, 2000, 4000, 8000, 300_000, 300_000]);
  });
});

describe('Slack messages', () => {
  it('text plus blocks, with figures formatted for people', () => {
    const b = JSON.parse(slackBody(decision));
    expectSlackShape(b);
    expect(b.text).toBe(`[KACHING BUDGET_EXCEEDED] ${decision.message}`);
    const blocks = JSON.stringify(b.blocks);
    expect(blocks).toContain('*Used*\\n$1.23');
    expect(blocks).toContain('*Limit*\\n$1.00');
    expect(blocks).not.toContain('1.234567');
    expectSlackShape(JSON.parse(slackBody(testPayload(randomUUID()))));
  });
});
