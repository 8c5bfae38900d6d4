import uPlot from '../vendor/uplot.js';
import { api } from '../http.js';
import { esc, qs } from '../dom.js';
import { group, usdMicro } from '../format.js';

/** GET /v1/costs (integer micro-USD). */
interface CostGroup { key: string | null; provider?: string; cost_micro_usd: number; requests: number; average_micro_usd_per_request: number | null }
interface CostReport {
  from: string; to: string; timezone: string;
  cost_micro_usd: number; requests: number; unpriced_requests: number;
  groups: CostGroup[];
  series: { bucket: string; key: string | null; cost_micro_usd: number }[];
}
/** GET /v1/costs/tags. */
interface TagCost { tag: string; value: string; cost_micro_usd: number; requests: number }

const PALETTE = ['#3156d3', '#2f9e6e', '#d98a1c', '#8e44ad', '#d64545', '#1b9aaa'];
const OTHER_COLOR = '#b0b6c3';
/** Models beyond these many are stacked together as "other". */
const MAX_SERIES = PALETTE.length;
const DAY_S = 86_400;

/** Local days from `from` (inclusive) to `to` (exclusive), as YYYY-MM-DD. */
function days(from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t < Date.parse(`${to}T00:00:00Z`); t += DAY_S * 1000) out.push(new Date(t).toISOString().slice(0, 10));
  return out;
}

const label = (key: string | null) => key ?? '(none)';

/**
 * Cost per local day, one stacked bar segment per model. uPlot does not stack: each series holds the running
 * sum up to its model and the series are drawn tallest first, so every segment shows its model's share.
 */
function stacked(r: CostReport): { keys: string[]; colors: string[]; data: uPlot.AlignedData } {
  const top = r.groups.slice(0, MAX_SERIES).map((g) => label(g.key));
  const folded = r.groups.length > MAX_SERIES;
  const keys = folded ? [...top, 'other'] : top;
  const colors = keys.map((k, i) => (folded && i === keys.length - 1 ? OTHER_COLOR : PALETTE[i]!));
  const ds = days(r.from, r.to);
  const index = new Map(ds.map((d, i) => [d, i]));
  const values = keys.map(() => new Array<number>(ds.length).fill(0));
  for (const s of r.series) {
    const d = index.get(s.bucket);
    if (d === undefined) continue;
    const k = top.indexOf(label(s.key));
    values[k >= 0 ? k : keys.length - 1]![d]! += s.cost_micro_usd / 1e6;
  }
  for (let k = 1; k < values.length; k++) for (let d = 0; d < ds.length; d++) values[k]![d]! += values[k - 1]![d]!;
  const xs = ds.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
  return { keys, colors, data: [xs, ...values.reverse()] };
}

function drawChart(el: HTMLElement, r: CostReport): void {
  const { keys, colors, data } = stacked(r);
  el.replaceChildren();
  if (keys.length === 0) {
    el.innerHTML = '<div class="empty">No LLM cost in this window.</div>';
    return;
  }
  const bars = uPlot.paths.bars!({ size: [0.72, 48] });
  const opts: uPlot.Options = {
    width: Math.max(320, el.clientWidth),
    height: 280,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    // the buckets are local days: show them as dates, not in the browser's time zone
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'),
    scales: { x: { time: true, range: (_u, min, max) => [min - DAY_S / 2, max + DAY_S / 2] }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.08 : 1] } },
    axes: [
      { stroke: '#66758a', grid: { show: false } },
      { stroke: '#66758a', size: 64, grid: { stroke: '#e3e8ef' }, values: (_u, splits) => splits.map((v) => '$' + group(v, 2)) },
    ],
    // tallest (all models) first: data is reversed, so series i is keys[keys.length - 1 - i]
    series: [{}, ...keys.map((_k, i) => {
      const c = colors[keys.length - 1 - i]!;
      return { label: keys[keys.length - 1 - i]!, stroke: c, fill: c, width: 0, paths: bars, points: { show: false } };
    })],
  };
  new uPlot(opts, data, el);
}

function list(testid: string, rows: { key: string; sub: string; cost: number; color?: string }[], total: number, empty: string): string {
  if (rows.length === 0) return `<div class="empty" data-testid="${testid}">${empty}</div>`;
  return (
    `<ol class="costlist" data-testid="${testid}">` +
    rows
      .map((r) => {
        const share = total > 0 ? (r.cost / total) * 100 : 0;
        return (
          `<li data-testid="${testid}-row" data-key="${esc(r.key)}">` +
          `<span class="sw"${r.color ? ` style="background:${r.color}"` : ''}></span>` +
          `<span class="name" data-testid="${testid}-name">${esc(r.key)}</span><span class="sub">${esc(r.sub)}</span>` +
          `<span class="amt" data-testid="${testid}-cost">${esc(usdMicro(r.cost))}</span><span class="share">${share.toFixed(1)}%</span>` +
          `<span class="sharebar"><i style="width:${Math.min(100, share).toFixed(1)}%"></i></span></li>`
        );
      })
      .join('') +
    '</ol>'
  );
}

export interface CostView {
  /** The deployment picker changed. */
  deploymentChanged(): void;
}

/**
 * The cost view: header buttons switch between the overview (#app) and this view (#costs-view); `#view=costs`
 * opens it directly. It loads when opened and when the deployment or the window changes.
 */
export function setupCostView(deployment: () => string | null, openNow: boolean): CostView {
  const view = qs('#costs-view');
  const range = qs<HTMLSelectElement>('#cost-range');
  const navs = [...document.querySelectorAll<HTMLButtonElement>('[data-view]')];
  let open = false;
  let seq = 0;

  async function load(): Promise<void> {
    const dep = deployment();
    if (!dep || !open) return;
    const mine = ++seq;
    const q = `deployment_id=${encodeURIComponent(dep)}`;
    // the API's "today" decides the window: ask for the default 30 days, then narrow or widen from its end
    const base = await api<CostReport>(`/v1/costs?${q}&group_by=model&interval=day`);
    const n = Number(range.value) || 30;
    const from = new Date(Date.parse(`${base.to}T00:00:00Z`) - n * DAY_S * 1000).toISOString().slice(0, 10);
    const w = `${q}&from=${from}&to=${base.to}`;
    const [models, types, tags] = await Promise.all([
      n === 30 ? Promise.resolve(base) : api<CostReport>(`/v1/costs?${w}&group_by=model&interval=day`),
      api<CostReport>(`/v1/costs?${w}&group_by=agent_type&interval=day`),
      api<{ items: TagCost[] }>(`/v1/costs/tags?${w}&limit=8`),
    ]);
    if (mine !== seq) return; // a newer load started meanwhile
    const last = days(models.from, models.to).at(-1) ?? models.from;
    qs('#cost-dep').textContent = document.querySelector<HTMLSelectElement>('#picker')?.selectedOptions[0]?.text ?? dep;
    qs('#cost-window').textContent = `${models.from} – ${last} · ${models.timezone}`;
    qs('#cost-total').textContent = usdMicro(models.cost_micro_usd);
    qs('#cost-requests').textContent =
      `${group(models.requests)} requests` + (models.unpriced_requests ? ` · ${group(models.unpriced_requests)} without a price yet` : '');
    qs<HTMLAnchorElement>('#cost-pdf').href = `/v1/reports/usage.pdf?${q}&from=${models.from}&to=${models.to}`;
    const total = models.cost_micro_usd;
    const { keys, colors } = stacked(models);
    qs('#cost-models').innerHTML = list(
      'top-models',
      models.groups.slice(0, 10).map((g) => {
        const i = keys.indexOf(label(g.key));
        return { key: label(g.key), sub: `${g.provider ?? ''} · ${group(g.requests)} req`, cost: g.cost_micro_usd, color: colors[i >= 0 ? i : keys.length - 1]! };
      }),
      total, 'No LLM requests in this window.',
    );
    qs('#cost-types').innerHTML = list('top-agent-types', types.groups.slice(0, 10).map((g) => ({ key: label(g.key), sub: `${group(g.requests)} req`, cost: g.cost_micro_usd })), total, 'No LLM requests in this window.');
    qs('#cost-tags').innerHTML = list('top-tags', tags.items.map((t) => ({ key: `${t.tag}=${t.value}`, sub: `${group(t.requests)} req`, cost: t.cost_micro_usd })), total, 'No tagged requests in this window.');
    drawChart(qs('#cost-chart'), models);
    view.setAttribute('data-loaded', String(Date.now()));
  }

  const reload = () => void load().catch((e: Error) => (qs('#cost-chart').textContent = 'could not load costs: ' + e.message));

  function show(costs: boolean): void {
    open = costs;
    qs('#app').style.display = costs ? 'none' : '';
    view.style.display = costs ? '' : 'none';
    for (const b of navs) b.classList.toggle('on', (b.dataset.view === 'costs') === costs);
    if (costs) reload();
  }

  for (const b of navs) b.onclick = () => show(b.dataset.view === 'costs');
  range.onchange = reload;
  show(openNow);
  return { deploymentChanged: reload };
}
