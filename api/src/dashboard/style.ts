export const DASHBOARD_CSS = `
:root{--bg:#f4f6f9;--card:#fff;--ink:#1b2430;--muted:#66758a;--line:#e3e8ef;--brand:#3156d3;--ok:#2f9e6e;--warn:#d98a1c;--bad:#d64545;--shadow:0 1px 2px rgba(16,24,40,.06),0 1px 3px rgba(16,24,40,.08)}
*{box-sizing:border-box}html,body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 Inter,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{display:flex;align-items:center;gap:18px;padding:14px 28px;background:#111a2e;color:#fff}
.brand{font-weight:800;letter-spacing:.08em;font-size:17px}.brand span{color:#8fb0ff}
header .sub{color:#aab6cc;font-size:12px}
header .spacer{flex:1}
header select,header input{background:#1d2942;color:#fff;border:1px solid #33415f;border-radius:6px;padding:6px 10px;font:inherit}
header .live{font-size:12px;color:#aab6cc;display:flex;align-items:center;gap:6px}
.dot{width:8px;height:8px;border-radius:50%;background:var(--ok);box-shadow:0 0 0 3px rgba(47,158,110,.25)}
.dot.stale{background:var(--warn)}
main{padding:22px 28px 40px;max-width:1320px;margin:0 auto}
h2{font-size:13px;text-transform:uppercase;letter-spacing:.07em;color:var(--muted);margin:26px 0 10px;font-weight:700}
.title{display:flex;align-items:baseline;gap:12px}.title h1{font-size:22px;margin:0}.pill{font-size:11px;font-weight:700;padding:2px 8px;border-radius:999px;background:#e8edfb;color:var(--brand);text-transform:uppercase;letter-spacing:.05em}
.pill.hard{background:#fde8e8;color:var(--bad)}
.cards{display:grid;grid-template-columns:repeat(5,minmax(0,1fr));gap:14px}
.card{background:var(--card);border-radius:10px;box-shadow:var(--shadow);padding:14px 16px 12px;border:1px solid var(--line)}
.card .label{font-size:12px;color:var(--muted);font-weight:600;display:flex;justify-content:space-between}
.card .value{font-size:26px;font-weight:750;margin-top:4px;font-variant-numeric:tabular-nums}
.card .cap{font-size:12px;color:var(--muted)}
.bar{height:6px;background:#edf0f5;border-radius:4px;margin:10px 0 6px;overflow:hidden}.bar i{display:block;height:100%;border-radius:4px;background:var(--ok)}
.pct{font-weight:700;font-size:12px}.lvl-warn .bar i{background:var(--warn)}.lvl-bad .bar i{background:var(--bad)}.lvl-warn .pct{color:var(--warn)}.lvl-bad .pct{color:var(--bad)}.lvl-ok .pct{color:var(--ok)}
.spark{display:block;width:100%;height:34px;margin-top:6px}.hint{font-size:10px;color:#9aa5b5;text-align:right;margin-top:2px}
.row{display:grid;grid-template-columns:1.15fr 1fr;gap:14px}
.panel{background:var(--card);border-radius:10px;box-shadow:var(--shadow);border:1px solid var(--line);padding:14px 16px}
.callouts{display:flex;flex-wrap:wrap;gap:10px}
.callout{flex:1 1 220px;border-left:4px solid var(--warn);background:#fff8ec;border-radius:8px;padding:10px 12px}
.callout.block{border-color:var(--bad);background:#fdf0f0}.callout b{display:block;font-size:15px}.callout small{color:var(--muted)}
.cta{background:linear-gradient(135deg,#2443b3,#3a6df0);color:#fff;border-radius:10px;padding:16px 18px;box-shadow:var(--shadow)}
.cta h3{margin:0 0 6px;font-size:16px}.cta p{margin:0 0 10px;color:#dfe7ff}
.cta .deltas{display:flex;flex-wrap:wrap;gap:8px;margin-bottom:12px}.cta .delta{background:rgba(255,255,255,.14);border-radius:6px;padding:4px 9px;font-size:12px}
.cta button{background:#fff;color:#2443b3;border:0;border-radius:6px;padding:7px 14px;font-weight:700;cursor:pointer;margin-right:8px}.cta button.ghost{background:transparent;color:#fff;border:1px solid rgba(255,255,255,.5)}
.empty{color:var(--muted);font-style:italic;padding:6px 0}
table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:7px 8px;border-bottom:1px solid var(--line);font-variant-numeric:tabular-nums}th{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
td.num,th.num{text-align:right}tr.click{cursor:pointer}tr.click:hover td{background:#f3f6fd}tr.sel td{background:#e8edfb}
.alerts li{list-style:none;display:flex;gap:10px;align-items:flex-start;padding:8px 0;border-bottom:1px solid var(--line)}.alerts ul{margin:0;padding:0}
.sev{font-size:10px;font-weight:800;padding:2px 6px;border-radius:4px;text-transform:uppercase}.sev-error{background:#fde8e8;color:var(--bad)}.sev-warn{background:#fff1dc;color:#a7670c}.sev-info{background:#e8edfb;color:var(--brand)}
.alerts .msg{flex:1}.alerts time{color:var(--muted);font-size:12px;white-space:nowrap}.alerts button{font-size:11px;border:1px solid var(--line);background:#fff;border-radius:4px;cursor:pointer}
.tabs{display:flex;gap:6px;margin-bottom:10px}.tabs button{border:1px solid var(--line);background:#fff;border-radius:6px;padding:5px 12px;cursor:pointer;font:inherit}.tabs button.on{background:var(--ink);color:#fff;border-color:var(--ink)}
.detail{margin-top:14px;border-top:2px solid var(--brand);padding-top:12px}.detail h3{margin:0 0 8px;font-size:15px}
.kv{display:flex;gap:22px;flex-wrap:wrap;margin-bottom:8px}.kv div{font-size:12px;color:var(--muted)}.kv b{display:block;color:var(--ink);font-size:17px}
header .signout{background:transparent;color:#aab6cc;border:1px solid #33415f;border-radius:6px;padding:5px 10px;font:inherit;font-size:12px;cursor:pointer}
@media (max-width:1100px){.cards{grid-template-columns:repeat(2,minmax(0,1fr))}.row{grid-template-columns:1fr}}
`;
