import { api } from '../http.js';
import { esc, qs } from '../dom.js';
import { ago, bytes, compact, group, num } from '../format.js';
import { sparkline } from '../sparkline.js';
import type { AgentTypeDetail, AgentTypeRow, NodeRow, Page } from '../types.js';

export interface DrillState {
  deployment: string;
  tab: 'types' | 'nodes';
  agentType: string | null;
}

function typesTable(t: Page<AgentTypeRow>, selected: string | null): string {
  const rows = t.items
    .map(
      (r) =>
        `<tr class="click${selected === r.agent_type ? ' sel' : ''}" data-testid="agent-type-row" data-type="${esc(r.agent_type)}"><td><b>${esc(r.agent_type)}</b></td>` +
        `<td class="num">${group(num(r.agents))}</td><td class="num">${group(num(r.jobs))}</td><td class="num">${group(num(r.jobs_failed))}</td>` +
        `<td class="num">${compact(num(r.model_tokens_in) + num(r.model_tokens_out))}</td><td class="num">${bytes(num(r.context_bytes_written))}</td><td class="num">${group(num(r.cpu_seconds), 1)}</td></tr>`,
    )
    .join('');
  return (
    '<table data-testid="agent-types"><thead><tr><th>Agent type</th><th class="num">Agents</th><th class="num">Jobs</th><th class="num">Failed</th><th class="num">Tokens</th><th class="num">Context written</th><th class="num">CPU s</th></tr></thead><tbody>' +
    (rows || '<tr><td colspan="7" class="empty">No agent types yet.</td></tr>') +
    '</tbody></table>'
  );
}

function nodesTable(t: Page<NodeRow>): string {
  const rows = t.items
    .map(
      (r) =>
        `<tr data-testid="node-row"><td><b>${esc(r.hostname)}</b><br><small>${esc(r.node_id)}</small></td><td>${esc(r.hw_class ?? '')}</td><td>${esc((r.agent_types ?? []).join(', '))}</td>` +
        `<td class="num">${group(num(r.jobs))}</td><td class="num">${compact(num(r.model_tokens))}</td><td class="num">${bytes(num(r.context_bytes_written))}</td><td>${esc(ago(r.last_seen_at))}</td></tr>`,
    )
    .join('');
  return (
    '<table data-testid="nodes"><thead><tr><th>Node</th><th>HW class</th><th>Agent types</th><th class="num">Jobs</th><th class="num">Tokens</th><th class="num">Context written</th><th>Last seen</th></tr></thead><tbody>' +
    (rows || '<tr><td colspan="7" class="empty">No nodes yet.</td></tr>') +
    '</tbody></table>'
  );
}

function detail(d: AgentTypeDetail): string {
  const jobs = d.series.map((s) => num(s.jobs));
  const tokens = d.series.map((s) => num(s.model_tokens_in) + num(s.model_tokens_out));
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
  const agents = d.agents
    .map((a) => `<tr><td><small>${esc(a.agent_id)}</small></td><td>${esc(a.version ?? '')}</td><td>${esc(a.hostname ?? a.node_id ?? '')}</td><td>${esc(ago(a.last_seen_at))}</td></tr>`)
    .join('');
  return (
    `<div class="detail" data-testid="agent-type-detail"><h3>Agent type: <span data-testid="agent-type-name">${esc(d.agent_type)}</span></h3>` +
    `<div class="kv"><div>Jobs (7d)<b data-testid="agent-type-jobs">${group(sum(jobs))}</b></div><div>Tokens (7d)<b data-testid="agent-type-tokens">${compact(sum(tokens))}</b></div><div>Agents<b data-testid="agent-type-agents">${d.agents.length}</b></div></div>` +
    `<div class="row"><div>Jobs per hour${sparkline(jobs, { color: '#3156d3' })}</div><div>Tokens per hour${sparkline(tokens, { color: '#7b4ddb' })}</div></div>` +
    `<table><thead><tr><th>Agent</th><th>Version</th><th>Node</th><th>Last seen</th></tr></thead><tbody>${agents}</tbody></table></div>`
  );
}

/** The drill-down panel: agent types (click one for its detail) or nodes. */
export async function loadDrill(s: DrillState, onSelect: (agentType: string) => void): Promise<void> {
  const dep = encodeURIComponent(s.deployment);
  const main =
    s.tab === 'nodes'
      ? api<Page<NodeRow>>(`/v1/deployments/${dep}/nodes?limit=200`).then(nodesTable)
      : api<Page<AgentTypeRow>>(`/v1/deployments/${dep}/agent-types`).then((t) => typesTable(t, s.agentType));
  const more =
    s.tab === 'types' && s.agentType
      ? api<AgentTypeDetail>(`/v1/deployments/${dep}/agent-types/${encodeURIComponent(s.agentType)}`).then(detail, () => '')
      : Promise.resolve('');
  const [a, b] = await Promise.all([main, more]);
  const body = qs('#drill-body');
  body.innerHTML = a + b;
  body.querySelectorAll<HTMLTableRowElement>('tr[data-type]').forEach((tr) => {
    tr.onclick = () => onSelect(tr.dataset.type!);
  });
}
