import { describe, expect, it } from 'vitest';
import { toMicro, windowForDay, type DeploymentLimits } from '@kaching/contracts';
import { evaluateLimits } from '../src/evaluate.js';
import { usageKey, usageNeeds } from '../src/ledger.js';

/** The evaluation of limits is pure: the same limits and figures give the same candidates, no database needed. */
const lim = (over: Partial<DeploymentLimits> = {}): DeploymentLimits => ({
  deployment_id: 'dep-1', org_id: 'org-1', timezone: 'Asia/Kolkata', enforcement: 'hard', features: {},
  license: { license_id: 'lic-1', plan_id: 'team', seats_limit: 3, nodes_limit: null, features: {}, valid_from: '2026-01-01T00:00:00Z', valid_to: '2026-12-31T00:00:00Z' },
  quotas: [{ quota_id: 'q1', name: 'cpu', metric: 'cpu_seconds', period: 'daily', hard_limit: '100', soft_threshold: '80' }],
  budgets: [
    { budget_id: 'b1', scope: 'llm', metric: 'cost_usd', period: 'monthly', limit_units: '50', action: 'fallback_model', action_params: { model: 'small' } },
    { budget_id: 'b2', scope: 'tag:team=search', metric: 'cost_usd', period: 'monthly', limit_units: '5', action: 'block', action_params: {} },
  ],
  ...over,
});
const DAY = '2026-12-04';
const AT = Date.parse('2026-12-04T10:00:00Z');

function figures(l: DeploymentLimits, v: Record<string, string>): Map<string, bigint> {
  const m = new Map<string, bigint>();
  for (const n of usageNeeds(l, DAY)) m.set(n.key, toMicro(v[n.budgetScope ?? n.metric] ?? '0'));
  return m;
}

describe('evaluateLimits', () => {
  it('names every figure it reads (usageNeeds): quota, budget, tag-scoped budget apart, license caps that are set', () => {
    const keys = usageNeeds(lim(), DAY).map((n) => n.key);
    const month = windowForDay('monthly', DAY, 'Asia/Kolkata');
    expect(keys).toEqual([
      usageKey('cpu_seconds', windowForDay('daily', DAY, 'Asia/Kolkata')),
      usageKey('cost_usd', month),
      usageKey('cost_usd', month, 'tag:team=search'),
      usageKey('seats_active', windowForDay('daily', DAY, 'Asia/Kolkata')),
    ]);
  });

  it('soft then hard quota thresholds, the budget action with its params, the tag budget on its own figure', () => {
    const l = lim();
    const ev = evaluateLimits(l, DAY, figures(l, { cpu_seconds: '2502.867177', cost_usd: '49.99', 'tag:team=search': '5', seats_active: '3' }), AT, []);
    expect([...ev.byScope.keys()]).toEqual(['cpu', 'tag:team=search']);
    expect(ev.byScope.get('cpu')!.map((c) => [c.code, c.action, c.observed])).toEqual([
      ['QUOTA_NEARING', 'warn', toMicro('2502.867177')],
      ['QUOTA_EXCEEDED', 'block', toMicro('2502.867177')],
    ]);
    expect(ev.byScope.get('cpu')![1]!.message).toContain('2,502.9 CPU-s');
    expect(ev.byScope.get('tag:team=search')).toMatchObject([{ code: 'BUDGET_EXCEEDED', action: 'block', observed: toMicro('5') }]);
    expect(ev.windowOf.get('llm')).toBe(windowForDay('monthly', DAY, 'Asia/Kolkata').windowStart);

    const over = evaluateLimits(l, DAY, figures(l, { cost_usd: '50' }), AT, []);
    expect(over.byScope.get('llm')).toMatchObject([{ code: 'BUDGET_EXCEEDED', action: 'fallback_model', params: { model: 'small' } }]);
  });

  it('soft enforcement only warns; an expired license, a seat cap and an unpriced model each decide', () => {
    const l = lim({ enforcement: 'soft' });
    const ev = evaluateLimits(l, DAY, figures(l, { cpu_seconds: '101', seats_active: '4' }), Date.parse('2027-01-02T00:00:00Z'), ['mystery-model']);
    expect(ev.byScope.get('cpu')!.at(-1)).toMatchObject({ code: 'QUOTA_EXCEEDED', action: 'warn' });
    expect(ev.byScope.get('license')).toMatchObject([{ code: 'LICENSE_EXPIRED', action: 'warn' }]);
    expect(ev.byScope.get('seats')).toMatchObject([{ code: 'SEATS_LIMIT_EXCEEDED', observed: toMicro('4'), limit: toMicro('3') }]);
    expect(ev.byScope.get('model:mystery-model')).toMatchObject([{ code: 'PRICE_UNKNOWN', action: 'warn' }]);
    // the same input, the same answer
    expect(evaluateLimits(l, DAY, figures(l, { cpu_seconds: '101', seats_active: '4' }), Date.parse('2027-01-02T00:00:00Z'), ['mystery-model'])).toEqual(ev);
  });
});
