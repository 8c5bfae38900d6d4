// The dashboard's script, served as /dashboard.js. Plain ES2020, no framework, no build step.
// (Kept free of backquotes and dollar-brace so it can live in this template string verbatim.)
export const DASHBOARD_JS = String.raw`
(function () {
  'use strict';
  var REFRESH_MS = 5000;
  var state = { csrf: null, deployment: null, deployments: [], tab: 'types', agentType: null, shownMarked: {}, timer: null };

  function qs(sel) { return document.querySelector(sel); }
  function esc(s) { return String(s == null ? '' : s).replace(/[&<>"']/g, function (c) { return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]; }); }
  function num(s) { var n = Number(s); return isFinite(n) ? n : 0; }
  function group(n, digits) { return n.toLocaleString('en-US', { maximumFractionDigits: digits == null ? 0 : digits }); }
  function compact(n) {
    var a = Math.abs(n);
    if (a >= 1e9) return group(n / 1e9, 2) + 'B';
    if (a >= 1e6) return group(n / 1e6, 2) + 'M';
    if (a >= 1e4) return group(n / 1e3, 1) + 'k';
    return group(n, 2);
  }
  function bytes(n) {
    var u = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'], i = 0;
    while (Math.abs(n) >= 1000 && i < u.length - 1) { n /= 1000; i++; }
    return group(n, i ? 2 : 0) + ' ' + u[i];
  }
  function usd(v) { return '$' + v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 }); }
  function fmt(unit, s) {
    var n = num(s);
    if (unit === 'bytes') return bytes(n);
    if (unit === 'usd') return usd(n);
    if (unit === 'tokens') return compact(n);
    return group(n);
  }
  function ago(t) {
    var s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
    if (s < 90) return Math.round(s) + 's ago';
    if (s < 5400) return Math.round(s / 60) + 'm ago';
    if (s < 129600) return Math.round(s / 3600) + 'h ago';
    return Math.round(s / 86400) + 'd ago';
  }

  // The session cookie authenticates (HttpOnly, sent by the browser); writes carry the session's CSRF token.
  function api(path, opts) {
    opts = opts || {};
    var method = opts.method || 'GET';
    var headers = {};
    if (opts.body) headers['content-type'] = 'application/json';
    if (method !== 'GET') headers['x-csrf-token'] = state.csrf;
    // no-cache: always revalidate; the API answers 304 on an unchanged ETag
    return fetch(path, { method: method, headers: headers, body: opts.body ? JSON.stringify(opts.body) : undefined, cache: 'no-cache', credentials: 'same-origin' })
      .then(function (r) {
        return r.json().then(function (j) {
          if (!r.ok) { var e = new Error((j.error && j.error.message) || r.statusText); e.code = j.error && j.error.code; e.status = r.status; throw e; }
          return j;
        });
      });
  }

  function sparkline(values, opts) {
    opts = opts || {};
    var w = 160, h = 34, p = 2;
    var max = Math.max.apply(null, values.concat([opts.cap || 0, 1]));
    var step = values.length > 1 ? (w - 2 * p) / (values.length - 1) : 0;
    var pts = values.map(function (v, i) { return [p + i * step, h - p - (v / max) * (h - 2 * p)]; });
    var line = pts.map(function (q) { return q[0].toFixed(1) + ',' + q[1].toFixed(1); }).join(' ');
    var area = 'M' + p + ',' + (h - p) + ' L' + line.split(' ').join(' L') + ' L' + (p + (values.length - 1) * step).toFixed(1) + ',' + (h - p) + ' Z';
    var color = opts.color || '#3156d3';
    var capLine = opts.cap ? '<line x1="0" x2="' + w + '" y1="' + (h - p - (opts.cap / max) * (h - 2 * p)).toFixed(1) + '" y2="' + (h - p - (opts.cap / max) * (h - 2 * p)).toFixed(1) + '" stroke="#d64545" stroke-dasharray="3 3" stroke-width="1"/>' : '';
    return '<svg class="spark" viewBox="0 0 ' + w + ' ' + h + '" preserveAspectRatio="none" aria-hidden="true"' + (opts.testid ? ' data-testid="' + opts.testid + '"' : '') + '>' +
      '<path d="' + area + '" fill="' + color + '" fill-opacity=".10"/>' + capLine +
      '<polyline points="' + line + '" fill="none" stroke="' + color + '" stroke-width="1.8" stroke-linejoin="round" stroke-linecap="round"/></svg>';
  }

  function level(pct) { return pct == null ? 'lvl-none' : pct >= 90 ? 'lvl-bad' : pct >= 70 ? 'lvl-warn' : 'lvl-ok'; }

  // Period-bound metrics are drawn as a running total so the line climbs toward the dashed cap.
  var CUMULATIVE = { context: true, tokens: true, cost: true };
  var PERIOD = { today: 'today', daily: 'today', weekly: 'this week', monthly: 'this month', rolling_30d: 'last 30 days', '14d': 'last 14 days' };
  function seriesOf(c) {
    var acc = 0;
    return c.series.map(function (s) { var v = num(s.value); if (!CUMULATIVE[c.key]) return v; acc += v; return acc; });
  }

  function renderCards(u) {
    qs('#cards').innerHTML = u.cards.map(function (c) {
      var pct = c.pct;
      var color = pct == null ? '#3156d3' : pct >= 90 ? '#d64545' : pct >= 70 ? '#d98a1c' : '#2f9e6e';
      return '<div class="card ' + level(pct) + '" data-testid="card-' + c.key + '" data-used="' + esc(c.used) + '" data-cap="' + esc(c.cap == null ? '' : c.cap) + '">' +
        '<div class="label"><span>' + esc(c.label) + '</span><span>' + esc(PERIOD[c.period] || c.period) + '</span></div>' +
        '<div class="value" data-testid="card-' + c.key + '-value">' + esc(fmt(c.unit, c.used)) + '</div>' +
        '<div class="cap" data-testid="card-' + c.key + '-cap">' + (c.cap == null ? 'no cap configured' : 'of ' + esc(fmt(c.unit, c.cap)) + (c.source ? ' · ' + esc(c.source) : '')) + '</div>' +
        '<div class="bar"><i style="width:' + Math.min(100, pct || 0) + '%"></i></div>' +
        '<span class="pct" data-testid="card-' + c.key + '-pct">' + (pct == null ? '—' : pct.toFixed(1) + '% of cap') + '</span>' +
        sparkline(seriesOf(c), { color: color, cap: c.cap == null ? 0 : num(c.cap), testid: 'card-' + c.key + '-spark' }) +
        '<div class="hint">' + (CUMULATIVE[c.key] ? 'cumulative, 14 days' : 'daily, 14 days') + '</div>' +
        '</div>';
    }).join('');
  }

  var CODE_TEXT = {
    QUOTA_EXCEEDED: 'Quota exceeded', QUOTA_NEARING: 'Quota nearly used', BUDGET_EXCEEDED: 'Budget exceeded',
    NODES_LIMIT_EXCEEDED: 'Node cap reached', SEATS_LIMIT_EXCEEDED: 'Seat cap reached', LICENSE_EXPIRED: 'License expired', PRICE_UNKNOWN: 'Unpriced model'
  };

  function renderBottlenecks(items, decisions) {
    var active = decisions.filter(function (d) { return d.state === 'active'; });
    var html = items.map(function (b) {
      var verb = b.action === 'block' ? 'blocked' : b.action === 'throttle' ? 'throttled' : b.action === 'fallback_model' ? 'fell back' : 'warned';
      return '<div class="callout ' + (b.action === 'block' ? 'block' : '') + '" data-testid="bottleneck-' + esc(b.code) + '"><b>' + esc(CODE_TEXT[b.code] || b.code) + ': ' + verb + ' ' + b.times + '× this week</b>' +
        '<small>' + esc(b.last_message || '') + ' · last ' + esc(ago(b.last_at)) + '</small></div>';
    }).join('');
    var act = active.map(function (d) {
      return '<div class="callout ' + (d.action === 'block' ? 'block' : '') + '" data-testid="decision-' + esc(d.scope) + '"><b>Now: ' + esc(d.action) + ' on ' + esc(d.scope) + '</b><small>' + esc(d.message) + '</small></div>';
    }).join('');
    qs('#bottlenecks').innerHTML = (act + html) || '<div class="empty">No limit fired in the last 7 days.</div>';
  }

  function renderCta(items) {
    var s = items.filter(function (x) { return x.status === 'new' || x.status === 'shown'; })[0];
    var el = qs('#cta');
    if (!s) { el.innerHTML = ''; el.style.display = 'none'; return; }
    el.style.display = '';
    var diffs = s.diffs || {};
    var deltas = Object.keys(diffs).map(function (k) {
      var v = diffs[k];
      var text = typeof v === 'object' && v !== null ? Object.keys(v).map(function (kk) { return kk + ' ' + v[kk]; }).join(', ') : String(v);
      return '<span class="delta">' + esc(k.replace(/_/g, ' ')) + ': ' + esc(text) + '</span>';
    }).join('');
    el.innerHTML = '<div class="cta" data-testid="upgrade-cta"><h3>' + (s.target_plan ? 'Upgrade to ' + esc(s.target_plan) : 'Recommendation') + '</h3>' +
      '<p data-testid="upgrade-rationale">' + esc(s.rationale) + '</p><div class="deltas" data-testid="upgrade-deltas">' + deltas + '</div>' +
      '<button data-act="accepted">Request upgrade</button><button class="ghost" data-act="dismissed">Dismiss</button></div>';
    el.querySelectorAll('button').forEach(function (b) {
      b.onclick = function () { api('/v1/suggestions/' + s.suggestion_id, { method: 'POST', body: { status: b.getAttribute('data-act') } }).then(refresh); };
    });
    if (s.status === 'new' && !state.shownMarked[s.suggestion_id]) {
      state.shownMarked[s.suggestion_id] = true;
      api('/v1/suggestions/' + s.suggestion_id, { method: 'POST', body: { status: 'shown' } }).catch(function () {});
    }
  }

  function renderAlerts(items) {
    qs('#alerts').innerHTML = items.length ? '<ul>' + items.map(function (a) {
      return '<li data-testid="alert"><span class="sev sev-' + esc(a.severity) + '">' + esc(a.severity) + '</span><span class="msg"><b>' + esc(CODE_TEXT[a.code] || a.code) + '</b><br>' + esc(a.message) + '</span>' +
        '<time title="' + esc(a.created_at) + '">' + esc(ago(a.created_at)) + '</time>' + (a.acknowledged ? '<small>ack</small>' : '<button data-ack="' + esc(a.alert_id) + '">Ack</button>') + '</li>';
    }).join('') + '</ul>' : '<div class="empty">No alerts.</div>';
    qs('#alerts').querySelectorAll('button[data-ack]').forEach(function (b) {
      b.onclick = function () { api('/v1/alerts/' + b.getAttribute('data-ack') + '/ack', { method: 'POST' }).then(refresh); };
    });
  }

  function renderTypes(t) {
    var rows = t.items.map(function (r) {
      return '<tr class="click' + (state.agentType === r.agent_type ? ' sel' : '') + '" data-testid="agent-type-row" data-type="' + esc(r.agent_type) + '"><td><b>' + esc(r.agent_type) + '</b></td><td class="num">' + group(num(r.agents)) + '</td><td class="num">' + group(num(r.jobs)) +
        '</td><td class="num">' + group(num(r.jobs_failed)) + '</td><td class="num">' + compact(num(r.model_tokens_in) + num(r.model_tokens_out)) + '</td><td class="num">' + bytes(num(r.context_bytes_written)) + '</td><td class="num">' + group(num(r.cpu_seconds), 1) + '</td></tr>';
    }).join('');
    return '<table data-testid="agent-types"><thead><tr><th>Agent type</th><th class="num">Agents</th><th class="num">Jobs</th><th class="num">Failed</th><th class="num">Tokens</th><th class="num">Context written</th><th class="num">CPU s</th></tr></thead><tbody>' +
      (rows || '<tr><td colspan="7" class="empty">No agent types yet.</td></tr>') + '</tbody></table>';
  }

  function renderNodes(t) {
    var rows = t.items.map(function (r) {
      return '<tr data-testid="node-row"><td><b>' + esc(r.hostname) + '</b><br><small>' + esc(r.node_id) + '</small></td><td>' + esc(r.hw_class || '') + '</td><td>' + esc((r.agent_types || []).join(', ')) + '</td><td class="num">' + group(num(r.jobs)) +
        '</td><td class="num">' + compact(num(r.model_tokens)) + '</td><td class="num">' + bytes(num(r.context_bytes_written)) + '</td><td>' + esc(ago(r.last_seen_at)) + '</td></tr>';
    }).join('');
    return '<table data-testid="nodes"><thead><tr><th>Node</th><th>HW class</th><th>Agent types</th><th class="num">Jobs</th><th class="num">Tokens</th><th class="num">Context written</th><th>Last seen</th></tr></thead><tbody>' +
      (rows || '<tr><td colspan="7" class="empty">No nodes yet.</td></tr>') + '</tbody></table>';
  }

  function renderDetail(d) {
    var jobs = d.series.map(function (s) { return num(s.jobs); });
    var tokens = d.series.map(function (s) { return num(s.model_tokens_in) + num(s.model_tokens_out); });
    var sum = function (a) { return a.reduce(function (x, y) { return x + y; }, 0); };
    return '<div class="detail" data-testid="agent-type-detail"><h3>Agent type: <span data-testid="agent-type-name">' + esc(d.agent_type) + '</span></h3>' +
      '<div class="kv"><div>Jobs (7d)<b data-testid="agent-type-jobs">' + group(sum(jobs)) + '</b></div><div>Tokens (7d)<b data-testid="agent-type-tokens">' + compact(sum(tokens)) + '</b></div><div>Agents<b data-testid="agent-type-agents">' + d.agents.length + '</b></div></div>' +
      '<div class="row"><div>Jobs per hour' + sparkline(jobs, { color: '#3156d3' }) + '</div><div>Tokens per hour' + sparkline(tokens, { color: '#7b4ddb' }) + '</div></div>' +
      '<table><thead><tr><th>Agent</th><th>Version</th><th>Node</th><th>Last seen</th></tr></thead><tbody>' + d.agents.map(function (a) {
        return '<tr><td><small>' + esc(a.agent_id) + '</small></td><td>' + esc(a.version || '') + '</td><td>' + esc(a.hostname || a.node_id || '') + '</td><td>' + esc(ago(a.last_seen_at)) + '</td></tr>';
      }).join('') + '</tbody></table></div>';
  }

  function loadDrill() {
    var dep = state.deployment;
    var main = state.tab === 'nodes' ? api('/v1/deployments/' + dep + '/nodes?limit=200').then(renderNodes) : api('/v1/deployments/' + dep + '/agent-types').then(renderTypes);
    var detail = state.tab === 'types' && state.agentType ? api('/v1/deployments/' + dep + '/agent-types/' + encodeURIComponent(state.agentType)).then(renderDetail).catch(function () { return ''; }) : Promise.resolve('');
    return Promise.all([main, detail]).then(function (h) {
      qs('#drill-body').innerHTML = h[0] + h[1];
      qs('#drill-body').querySelectorAll('tr[data-type]').forEach(function (tr) {
        tr.onclick = function () { state.agentType = tr.getAttribute('data-type'); loadDrill(); };
      });
    });
  }

  function refresh() {
    var dep = state.deployment;
    if (!dep) return Promise.resolve();
    var d = state.deployments.filter(function (x) { return x.deployment_id === dep; })[0] || {};
    qs('#dep-name').textContent = d.name || dep;
    qs('#dep-mode').textContent = (d.enforcement || 'soft') + ' enforcement';
    qs('#dep-mode').className = 'pill' + (d.enforcement === 'hard' ? ' hard' : '');
    return Promise.all([
      api('/v1/deployments/' + dep + '/utilisation').then(renderCards),
      Promise.all([api('/v1/deployments/' + dep + '/bottlenecks'), api('/v1/decisions?deployment_id=' + dep).catch(function () { return { items: [] }; })])
        .then(function (r) { renderBottlenecks(r[0].items, r[1].items); }),
      api('/v1/suggestions?deployment_id=' + dep + '&limit=5').then(function (r) { renderCta(r.items); }),
      api('/v1/alerts?deployment_id=' + dep + '&limit=6').then(function (r) { renderAlerts(r.items); }),
      loadDrill()
    ]).then(function () {
      qs('#live').textContent = 'updated ' + new Date().toLocaleTimeString();
      qs('#dot').className = 'dot';
      document.body.setAttribute('data-loaded', String(Date.now()));
    }, function (e) {
      qs('#dot').className = 'dot stale';
      qs('#live').textContent = 'refresh failed: ' + e.message;
      if (e.status === 401) toSignin();
    });
  }

  function toSignin() {
    clearInterval(state.timer);
    location.replace('/signin');
  }

  function signOut() {
    api('/v1/auth/signout', { method: 'POST' }).then(toSignin, toSignin);
  }

  function readHash() {
    var out = {};
    location.hash.replace(/^#/, '').split('&').forEach(function (kv) {
      var i = kv.indexOf('=');
      if (i > 0) out[decodeURIComponent(kv.slice(0, i))] = decodeURIComponent(kv.slice(i + 1));
    });
    return out;
  }

  function boot() {
    var h = readHash();
    if (h.refresh) REFRESH_MS = Math.max(1000, Number(h.refresh) || REFRESH_MS);
    api('/v1/auth/session').then(function (s) {
      state.csrf = s.csrf_token;
      qs('#who').textContent = (s.user && s.user.login ? s.user.login : '') + ' · ' + (s.user && s.user.role ? s.user.role : '');
      qs('#signout').onclick = signOut;
      qs('#app').style.display = '';
      return api('/v1/deployments?limit=1000');
    }).then(function (r) {
      state.deployments = r.items;
      var sel = qs('#picker');
      sel.innerHTML = r.items.map(function (d) { return '<option value="' + esc(d.deployment_id) + '">' + esc(d.name) + '</option>'; }).join('');
      state.deployment = h.deployment || localStorage.getItem('kaching.deployment') || (r.items[0] && r.items[0].deployment_id) || null;
      if (state.deployment) sel.value = state.deployment;
      sel.onchange = function () { state.deployment = sel.value; state.agentType = null; localStorage.setItem('kaching.deployment', sel.value); refresh(); };
      document.querySelectorAll('.tabs button').forEach(function (b) {
        b.onclick = function () {
          state.tab = b.getAttribute('data-tab');
          document.querySelectorAll('.tabs button').forEach(function (x) { x.classList.toggle('on', x === b); });
          loadDrill();
        };
      });
      refresh();
      clearInterval(state.timer);
      state.timer = setInterval(refresh, REFRESH_MS);
    }, function (e) {
      if (e.status === 401) toSignin();
      else qs('#live').textContent = e.message;
    });
  }

  boot();
})();
`;
