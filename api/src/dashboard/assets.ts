import { DASHBOARD_CSS } from './style.js';
export { DASHBOARD_JS } from './script.js';

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>KACHING · usage &amp; limits</title><style>${DASHBOARD_CSS}</style></head>
<body>
<header>
  <div class="brand">KA<span>CHING</span></div><div class="sub">usage · limits · budgets</div>
  <div class="spacer"></div>
  <label class="sub" for="picker">Deployment</label><select id="picker" data-testid="deployment-picker"></select>
  <div class="live"><span id="dot" class="dot"></span><span id="live" data-testid="last-refresh">loading…</span></div>
  <span id="who" class="sub" data-testid="signed-in-as"></span><button id="signout" class="signout" data-testid="sign-out">Sign out</button>
</header>
<main id="app" style="display:none">
  <div class="title"><h1 id="dep-name" data-testid="deployment-name"></h1><span id="dep-mode" class="pill"></span></div>
  <h2>Tier utilisation</h2>
  <section class="cards" id="cards" data-testid="cards"></section>
  <div class="row">
    <section><h2>Bottlenecks</h2><div class="callouts" id="bottlenecks" data-testid="bottlenecks"></div><div id="cta" style="margin-top:14px"></div></section>
    <section><h2>Recent alerts</h2><div class="panel alerts" id="alerts" data-testid="alerts"></div></section>
  </div>
  <h2>Drill-down</h2>
  <section class="panel"><div class="tabs"><button class="on" data-tab="types" data-testid="tab-types">Agent types</button><button data-tab="nodes" data-testid="tab-nodes">Nodes</button></div>
    <div id="drill-body" data-testid="drill-body"></div></section>
</main>
<script src="/dashboard.js"></script>
</body></html>`;
