import { ApiError, api, useCsrfToken } from './http.js';
import { qs } from './dom.js';
import { renderCards } from './views/cards.js';
import { renderAlerts, renderBottlenecks, renderCta } from './views/alerts.js';
import { loadDrill, type DrillState } from './views/drill.js';
import { setupCostView } from './views/costs.js';
import type { Alert, Bottleneck, Decision, Deployment, Page, Session, Suggestion, Utilisation } from './types.js';

/** The dashboard: signed in by the session cookie, refreshed every few seconds (`#refresh=ms` to change it). */
const state: { deployments: Deployment[]; drill: DrillState | null; timer?: ReturnType<typeof setInterval> } = { deployments: [], drill: null };

function readHash(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of location.hash.replace(/^#/, '').split('&')) {
    const i = kv.indexOf('=');
    if (i > 0) out[decodeURIComponent(kv.slice(0, i))] = decodeURIComponent(kv.slice(i + 1));
  }
  return out;
}

function toSignin(): void {
  clearInterval(state.timer);
  location.replace('/signin');
}

const drill = (): Promise<void> => (state.drill ? loadDrill(state.drill, selectAgentType) : Promise.resolve());

function selectAgentType(agentType: string): void {
  if (!state.drill) return;
  state.drill.agentType = agentType;
  void drill();
}

async function refresh(): Promise<void> {
  const s = state.drill;
  if (!s) return;
  const dep = s.deployment;
  const d = state.deployments.find((x) => x.deployment_id === dep);
  qs('#dep-name').textContent = d?.name ?? dep;
  qs('#dep-mode').textContent = `${d?.enforcement ?? 'soft'} enforcement`;
  qs('#dep-mode').className = 'pill' + (d?.enforcement === 'hard' ? ' hard' : '');
  const q = encodeURIComponent(dep);
  const again = () => void refresh();
  try {
    await Promise.all([
      api<Utilisation>(`/v1/deployments/${q}/utilisation`).then(renderCards),
      Promise.all([
        api<Page<Bottleneck>>(`/v1/deployments/${q}/bottlenecks`),
        api<Page<Decision>>(`/v1/decisions?deployment_id=${q}`).catch(() => ({ items: [] as Decision[] })),
      ]).then(([b, dec]) => renderBottlenecks(b.items, dec.items)),
      api<Page<Suggestion>>(`/v1/suggestions?deployment_id=${q}&limit=5`).then((r) => renderCta(r.items, again)),
      api<Page<Alert>>(`/v1/alerts?deployment_id=${q}&limit=6`).then((r) => renderAlerts(r.items, again)),
      drill(),
    ]);
    qs('#live').textContent = 'updated ' + new Date().toLocaleTimeString();
    qs('#dot').className = 'dot';
    document.body.setAttribute('data-loaded', String(Date.now()));
  } catch (e) {
    qs('#dot').className = 'dot stale';
    qs('#live').textContent = 'refresh failed: ' + (e as Error).message;
    if (e instanceof ApiError && e.status === 401) toSignin();
  }
}

async function boot(): Promise<void> {
  const hash = readHash();
  const every = hash.refresh ? Math.max(1000, Number(hash.refresh) || 5000) : 5000;
  try {
    const session = await api<Session>('/v1/auth/session');
    useCsrfToken(session.csrf_token);
    qs('#who').textContent = `${session.user?.login ?? ''} · ${session.user?.role ?? ''}`;
    qs('#signout').onclick = () => void api('/v1/auth/signout', { method: 'POST' }).then(toSignin, toSignin);
    qs('#app').style.display = '';
    const r = await api<Page<Deployment>>('/v1/deployments?limit=1000');
    state.deployments = r.items;
    const picker = qs<HTMLSelectElement>('#picker');
    picker.replaceChildren(...r.items.map((d) => new Option(d.name, d.deployment_id)));
    const chosen = hash.deployment ?? localStorage.getItem('kaching.deployment') ?? r.items[0]?.deployment_id ?? null;
    if (!chosen) return;
    picker.value = chosen;
    state.drill = { deployment: chosen, tab: 'types', agentType: null };
    const costs = setupCostView(() => state.drill?.deployment ?? null, hash.view === 'costs');
    picker.onchange = () => {
      state.drill = { deployment: picker.value, tab: state.drill?.tab ?? 'types', agentType: null };
      localStorage.setItem('kaching.deployment', picker.value);
      void refresh();
      costs.deploymentChanged();
    };
    const tabs = [...document.querySelectorAll<HTMLButtonElement>('.tabs button')];
    for (const b of tabs) {
      b.onclick = () => {
        if (!state.drill) return;
        state.drill.tab = b.dataset.tab === 'nodes' ? 'nodes' : 'types';
        for (const x of tabs) x.classList.toggle('on', x === b);
        void drill();
      };
    }
    void refresh();
    clearInterval(state.timer);
    state.timer = setInterval(() => void refresh(), every);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) toSignin();
    else qs('#live').textContent = (e as Error).message;
  }
}

void boot();
