import { esc, qs } from '../dom.js';
import { fmt, num } from '../format.js';
import { sparkline } from '../sparkline.js';
import type { Card, Utilisation } from '../types.js';

/** Period-bound metrics are drawn as a running total so the line climbs toward the dashed cap. */
const CUMULATIVE = new Set(['context', 'tokens', 'cost']);
const PERIOD: Record<string, string> = { today: 'today', daily: 'today', weekly: 'this week', monthly: 'this month', rolling_30d: 'last 30 days', '14d': 'last 14 days' };

function level(pct: number | null): string {
  return pct == null ? 'lvl-none' : pct >= 90 ? 'lvl-bad' : pct >= 70 ? 'lvl-warn' : 'lvl-ok';
}

function seriesOf(c: Card): number[] {
  let acc = 0;
  return c.series.map((s) => {
    const v = num(s.value);
    if (!CUMULATIVE.has(c.key)) return v;
    acc += v;
    return acc;
  });
}

export function renderCards(u: Utilisation): void {
  qs('#cards').innerHTML = u.cards
    .map((c) => {
      const pct = c.pct;
      const color = pct == null ? '#3156d3' : pct >= 90 ? '#d64545' : pct >= 70 ? '#d98a1c' : '#2f9e6e';
      const cap = c.cap == null ? 'no cap configured' : 'of ' + esc(c.cap_text ?? fmt(c.unit, c.cap)) + (c.source ? ' · ' + esc(c.source) : '');
      return (
        `<div class="card ${level(pct)}" data-testid="card-${esc(c.key)}" data-used="${esc(c.used)}" data-cap="${esc(c.cap ?? '')}">` +
        `<div class="label"><span>${esc(c.label)}</span><span>${esc(PERIOD[c.period] ?? c.period)}</span></div>` +
        `<div class="value" data-testid="card-${esc(c.key)}-value">${esc(c.used_text ?? fmt(c.unit, c.used))}</div>` +
        `<div class="cap" data-testid="card-${esc(c.key)}-cap">${cap}</div>` +
        `<div class="bar"><i style="width:${Math.min(100, pct ?? 0)}%"></i></div>` +
        `<span class="pct" data-testid="card-${esc(c.key)}-pct">${pct == null ? '—' : pct.toFixed(1) + '% of cap'}</span>` +
        sparkline(seriesOf(c), { color, cap: c.cap == null ? 0 : num(c.cap), testid: `card-${c.key}-spark` }) +
        `<div class="hint">${CUMULATIVE.has(c.key) ? 'cumulative, 14 days' : 'daily, 14 days'}</div>` +
        '</div>'
      );
    })
    .join('');
}
