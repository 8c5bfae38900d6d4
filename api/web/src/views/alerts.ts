import { api } from '../http.js';
import { esc, qs } from '../dom.js';
import { ago } from '../format.js';
import type { Alert, Bottleneck, Decision, Suggestion } from '../types.js';

export const CODE_TEXT: Record<string, string> = {
  QUOTA_EXCEEDED: 'Quota exceeded',
  QUOTA_NEARING: 'Quota nearly used',
  BUDGET_EXCEEDED: 'Budget exceeded',
  NODES_LIMIT_EXCEEDED: 'Node cap reached',
  SEATS_LIMIT_EXCEEDED: 'Seat cap reached',
  LICENSE_EXPIRED: 'License expired',
  PRICE_UNKNOWN: 'Unpriced model',
};

export function renderBottlenecks(items: Bottleneck[], decisions: Decision[]): void {
  const now = decisions
    .filter((d) => d.state === 'active')
    .map((d) => `<div class="callout ${d.action === 'block' ? 'block' : ''}" data-testid="decision-${esc(d.scope)}"><b>Now: ${esc(d.action)} on ${esc(d.scope)}</b><small>${esc(d.message)}</small></div>`)
    .join('');
  const week = items
    .map((b) => {
      const verb = b.action === 'block' ? 'blocked' : b.action === 'throttle' ? 'throttled' : b.action === 'fallback_model' ? 'fell back' : 'warned';
      return (
        `<div class="callout ${b.action === 'block' ? 'block' : ''}" data-testid="bottleneck-${esc(b.code)}"><b>${esc(CODE_TEXT[b.code] ?? b.code)}: ${verb} ${b.times}× this week</b>` +
        `<small>${esc(b.last_message ?? '')} · last ${esc(ago(b.last_at))}</small></div>`
      );
    })
    .join('');
  qs('#bottlenecks').innerHTML = now + week || '<div class="empty">No limit fired in the last 7 days.</div>';
}

const shownMarked = new Set<string>();

/** The newest open upgrade suggestion as a call to action; showing it marks it shown once. */
export function renderCta(items: Suggestion[], refresh: () => void): void {
  const s = items.find((x) => x.status === 'new' || x.status === 'shown');
  const el = qs('#cta');
  if (!s) {
    el.innerHTML = '';
    el.style.display = 'none';
    return;
  }
  el.style.display = '';
  const deltas = Object.entries(s.diffs ?? {})
    .map(([k, v]) => {
      const text = typeof v === 'object' && v !== null ? Object.entries(v).map(([kk, vv]) => `${kk} ${String(vv)}`).join(', ') : String(v);
      return `<span class="delta">${esc(k.replace(/_/g, ' '))}: ${esc(text)}</span>`;
    })
    .join('');
  el.innerHTML =
    `<div class="cta" data-testid="upgrade-cta"><h3>${s.target_plan ? 'Upgrade to ' + esc(s.target_plan) : 'Recommendation'}</h3>` +
    `<p data-testid="upgrade-rationale">${esc(s.rationale)}</p><div class="deltas" data-testid="upgrade-deltas">${deltas}</div>` +
    '<button data-act="accepted">Request upgrade</button><button class="ghost" data-act="dismissed">Dismiss</button></div>';
  el.querySelectorAll<HTMLButtonElement>('button').forEach((b) => {
    b.onclick = () => void api(`/v1/suggestions/${s.suggestion_id}`, { method: 'POST', body: { status: b.dataset.act } }).then(refresh);
  });
  if (s.status === 'new' && !shownMarked.has(s.suggestion_id)) {
    shownMarked.add(s.suggestion_id);
    api(`/v1/suggestions/${s.suggestion_id}`, { method: 'POST', body: { status: 'shown' } }).catch(() => undefined);
  }
}

export function renderAlerts(items: Alert[], refresh: () => void): void {
  const el = qs('#alerts');
  el.innerHTML = items.length
    ? '<ul>' +
      items
        .map(
          (a) =>
            `<li data-testid="alert"><span class="sev sev-${esc(a.severity)}">${esc(a.severity)}</span><span class="msg"><b>${esc(CODE_TEXT[a.code] ?? a.code)}</b><br>${esc(a.message)}</span>` +
            `<time title="${esc(a.created_at)}">${esc(ago(a.created_at))}</time>${a.acknowledged ? '<small>ack</small>' : `<button data-ack="${esc(a.alert_id)}">Ack</button>`}</li>`,
        )
        .join('') +
      '</ul>'
    : '<div class="empty">No alerts.</div>';
  el.querySelectorAll<HTMLButtonElement>('button[data-ack]').forEach((b) => {
    b.onclick = () => void api(`/v1/alerts/${b.dataset.ack}/ack`, { method: 'POST' }).then(refresh);
  });
}
