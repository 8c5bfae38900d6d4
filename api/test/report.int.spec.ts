import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { ensureEventsStream, setModelPrice, type StreamRecord, type UsageEvent } from '@kaching/contracts';
import { renderUsagePdf } from '../src/report/pdf.js';
import type { UsageReport } from '../src/routines/report.js';
import { commands, createDeployment, createOrg, issueApiKey, loadConfig, start, type ApiHandle } from '@kaching/api';
import { loadConfig as projectorConfig, start as startProjector, type ProjectorHandle } from '@kaching/projector';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { requireTool } from '../../test/support/tools.js';
import { publish, usageRecord } from '../../enforcer/test/helpers.js';
import { waitCaughtUp } from '../../projector/test/helpers.js';

// GET /v1/reports/usage.pdf and `kaching report` from projections a real projector wrote: the PDF's text read
// back with pdftotext carries the exact totals; page 1 rendered with pdftoppm is a real, non-blank page.

const TZ = 'America/New_York';
const NOW = new Date('2026-11-21T15:00:00Z');

let env: IsolatedEnv;
let nc: NatsConnection;
let api: ApiHandle;
let projector: ProjectorHandle;
let orgId: string;
let dep: string;
let readKey: string;
let otherKey: string;
let dir: string;
let PDFTOTEXT: string;
let PDFTOPPM: string;

function job(at: string, o: { provider: string; model: string; tin: number; tout: number; cached?: number; reasoning?: number; agentType: string; team?: string; cpu?: number; gpu?: number }): StreamRecord {
  const llm: UsageEvent['llm'] = { provider: o.provider, model_name: o.model, tokens_in: o.tin, tokens_out: o.tout, ...(o.cached ? { tokens_cached_in: o.cached } : {}), ...(o.reasoning ? { tokens_reasoning: o.reasoning } : {}) };
  const r = usageRecord(dep, orgId, new Date(at), { llm, cpu: o.cpu ?? 0 });
  if (r.kind !== 'usage') throw new Error('usage');
  r.usage.agent.agent_type = o.agentType;
  r.usage.metrics.gpu_seconds = o.gpu ?? 0;
  if (o.team) r.usage.tags = { team: o.team };
  return r;
}

// Prices: gpt-4o $2.50 in / $1.25 cached / $10 out per 1M; claude-sonnet-4 $3 in / $15 out. By hand:
// a 2026-11-20 14:10Z (day 20 in NY) gpt-4o  1,000,000 in (200,000 cached) + 100,000 out = 2.00 + 0.25 + 1.00 = $3.25  coder    ml   cpu 3600 s, gpu 1800 s
// b 2026-11-20 14:40Z (day 20)       sonnet    400,000 in + 100,000 out (20,000 reasoning) = 1.20 + 1.50   = $2.70  reviewer web  cpu 125.4 s
// c 2026-11-21 03:30Z (22:30, day 20) gpt-4o    100,000 in + 10,000 out                   = 0.25 + 0.10   = $0.35  coder    ml
// d 2026-11-21 14:20Z (day 21)       sonnet    200,000 in                                               = $0.60  coder    -
// e 2026-11-19 14:00Z (day 19: outside the report) gpt-4o 1,000,000 in                                  = $2.50  coder    ml
// Report 2026-11-20 .. 2026-11-22 (exclusive): $6.90; gpt-4o $3.60 (52.2%), sonnet $3.30; coder $4.20, reviewer $2.70.

beforeAll(async () => {
  PDFTOTEXT = requireTool('pdftotext', 'poppler-utils');
  PDFTOPPM = requireTool('pdftoppm', 'poppler-utils');
  dir = mkdtempSync(join(tmpdir(), 'kaching-report-'));
  env = await isolatedEnv();
  nc = await env.nats();
  await ensureEventsStream(nc, env.names);
  const org = await createOrg(env.pool, { name: 'Acme Research' });
  orgId = org.org_id;
  dep = String((await createDeployment(env.pool, orgId, { name: 'Acme research fleet', timezone: TZ })).deployment_id);
  const other = await createOrg(env.pool, { name: 'other' });
  await createDeployment(env.pool, other.org_id, { name: 'other-prod' });
  readKey = (await issueApiKey(env.pool, { orgId, scopes: 'read' })).apiKey;
  otherKey = (await issueApiKey(env.pool, { orgId: other.org_id, scopes: 'read' })).apiKey;
  await setModelPrice(env.pool, { provider: 'openai', model_name: 'gpt-4o', effective_from: '2026-01-01T00:00:00Z', input_per_1m_micro_usd: 2_500_000, cached_input_per_1m_micro_usd: 1_250_000, output_per_1m_micro_usd: 10_000_000 });
  await setModelPrice(env.pool, { provider: 'anthropic', model_name: 'claude-sonnet-4', effective_from: '2026-01-01T00:00:00Z', input_per_1m_micro_usd: 3_000_000, output_per_1m_micro_usd: 15_000_000 });
  const last = await publish(nc, env.names, [
    job('2026-11-20T14:10:00Z', { provider: 'openai', model: 'gpt-4o', tin: 1_000_000, tout: 100_000, cached: 200_000, agentType: 'coder', team: 'ml', cpu: 3600, gpu: 1800 }),
    job('2026-11-20T14:40:00Z', { provider: 'anthropic', model: 'claude-sonnet-4', tin: 400_000, tout: 100_000, reasoning: 20_000, agentType: 'reviewer', team: 'web', cpu: 125.4 }),
    job('2026-11-21T03:30:00Z', { provider: 'openai', model: 'gpt-4o', tin: 100_000, tout: 10_000, agentType: 'coder', team: 'ml' }),
    job('2026-11-21T14:20:00Z', { provider: 'anthropic', model: 'claude-sonnet-4', tin: 200_000, tout: 0, agentType: 'coder' }),
    job('2026-11-19T14:00:00Z', { provider: 'openai', model: 'gpt-4o', tin: 1_000_000, tout: 0, agentType: 'coder', team: 'ml' }),
  ]);
  // alerts as the enforcer writes them: one in the period (11:00 in New York), one the day before
  await env.pool.query(
    `insert into alert (alert_id, deployment_id, org_id, decision_id, created_at, severity, code, message) values
       (gen_random_uuid(), $1, $2, 'd-in', '2026-11-20T16:00:00Z', 'warn', 'QUOTA_NEARING', 'Context volume at 70% of the 30-day quota'),
       (gen_random_uuid(), $1, $2, 'd-out', '2026-11-19T12:00:00Z', 'error', 'BUDGET_EXCEEDED', 'An alert from before the period')`,
    [dep, orgId],
  );
  projector = await startProjector({ ...projectorConfig(env.env), port: 0, host: '127.0.0.1' });
  await waitCaughtUp(env.pool, last);
  api = await start({ ...loadConfig(env.env), port: 0 }, { pool: env.pool, nc, clock: () => NOW.getTime() });
});

afterAll(async () => {
  await api?.close();
  await projector?.close();
  await env?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const get = (key: string, path: string) => fetch(`${api.url}${path}`, { headers: { authorization: `Bearer ${key}` } });
const REPORT = () => `/v1/reports/usage.pdf?deployment_id=${dep}&from=2026-11-20&to=2026-11-22`;

/** The text pdftotext reads from the PDF, columns kept on their lines. */
function textOf(file: string): string {
  return execFileSync(PDFTOTEXT, ['-layout', file, '-'], { encoding: 'utf8' });
}

function expectReportText(t: string): void {
  expect(t).toContain('Usage and cost report');
  expect(t).toContain('Acme research fleet · Acme Research');
  expect(t).toContain(`Deployment ${dep}`);
  expect(t).toContain('Period 20 Nov 2026 – 21 Nov 2026 (2 local days, America/New_York)');
  expect(t).toMatch(/Total LLM cost[\s\S]*\$6\.90/);
  expect(t).toContain('4 priced requests, $1.73 per request');
  // utilisation
  expect(t).toMatch(/Jobs\s+4 \(4 succeeded, 0 failed\)/);
  expect(t).toMatch(/CPU time\s+1 h 2 min 5 s/);
  expect(t).toMatch(/GPU time\s+30 min 0 s/);
  expect(t).toMatch(/Input tokens\s+1,700,000/);
  expect(t).toMatch(/Output tokens\s+210,000/);
  expect(t).toMatch(/Cached input tokens\s+200,000/);
  expect(t).toMatch(/Reasoning tokens\s+20,000/);
  // cost tables
  expect(t).toMatch(/gpt-4o\s+openai\s+2\s+\$3\.60\s+\$1\.80\s+52\.2%/);
  expect(t).toMatch(/claude-sonnet-4\s+anthropic\s+2\s+\$3\.30\s+\$1\.65\s+47\.8%/);
  expect(t).toMatch(/coder\s+3\s+\$4\.20\s+\$1\.40\s+60\.9%/);
  expect(t).toMatch(/reviewer\s+1\s+\$2\.70\s+\$2\.70\s+39\.1%/);
  expect(t).toMatch(/team\s+ml\s+2\s+\$3\.60\s+52\.2%/);
  expect(t).toMatch(/team\s+web\s+1\s+\$2\.70\s+39\.1%/);
  // alerts of the period only, in local time
  expect(t).toContain('Alerts in the period (1)');
  expect(t).toMatch(/20 Nov 2026 11:00\s+warn\s+QUOTA_NEARING\s+Context volume at 70% of the 30-day quota/);
  expect(t).not.toContain('before the period');
  expect(t).not.toContain('$2.50'); // day 19's request is outside
}

/** Page 1 as PNG (signature, A4 proportions, more than a blank page compresses to) and as grey pixels: ink on paper. */
function expectRenderedPage(file: string): void {
  const base = join(dir, 'page');
  execFileSync(PDFTOPPM, ['-png', '-r', '72', '-f', '1', '-l', '1', '-singlefile', file, base]);
  const png = readFileSync(`${base}.png`);
  expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  const [w, h] = [png.readUInt32BE(16), png.readUInt32BE(20)];
  // A4 (595.28 × 841.89 pt) at 72 dpi
  expect(w).toBeGreaterThanOrEqual(595);
  expect(w).toBeLessThanOrEqual(596);
  expect(h).toBe(842);
  expect(statSync(`${base}.png`).size).toBeGreaterThan(15_000);
  execFileSync(PDFTOPPM, ['-gray', '-r', '36', '-f', '1', '-l', '1', '-singlefile', file, base]);
  const pgm = readFileSync(`${base}.pgm`);
  const header = /^P5\s+(\d+)\s+(\d+)\s+255\s/.exec(pgm.subarray(0, 30).toString('latin1'))!;
  const pixels = pgm.subarray(header[0].length);
  expect(pixels.length).toBe(Number(header[1]) * Number(header[2]));
  const dark = pixels.filter((p) => p < 160).length / pixels.length;
  expect(dark).toBeGreaterThan(0.01);
  expect(dark).toBeLessThan(0.4);
}

describe('GET /v1/reports/usage.pdf', () => {
  it('is a PDF whose text carries the exact totals, costs by model, agent type and tag, and the alerts', async () => {
    const r = await get(readKey, REPORT());
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/pdf');
    expect(r.headers.get('content-disposition')).toContain(`kaching-usage-${dep.slice(0, 8)}-2026-11-20-2026-11-21.pdf`);
    const pdf = Buffer.from(await r.arrayBuffer());
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
    const file = join(dir, 'api.pdf');
    writeFileSync(file, pdf);
    expectReportText(textOf(file));
    expectRenderedPage(file);
  });

  it('another org gets 404; bad periods name the field and the rule', async () => {
    const other = await get(otherKey, REPORT());
    expect([other.status, ((await other.json()) as { error: { code: string } }).error.code]).toEqual([404, 'NOT_FOUND']);
    const cases: [string, number, string, string][] = [
      [`deployment_id=${dep}&to=2026-11-22`, 400, 'FIELD_REQUIRED', 'from'],
      [`deployment_id=${dep}&from=2026-11-20&to=2026-13-01`, 400, 'FIELD_FORMAT', 'to'],
      [`deployment_id=${dep}&from=2026-11-22&to=2026-11-20`, 400, 'FIELD_RANGE', 'from'],
      [`deployment_id=${dep}&from=2024-01-01&to=2026-01-01`, 400, 'FIELD_RANGE', 'to'],
    ];
    for (const [q, status, code, field] of cases) {
      const r = await get(readKey, `/v1/reports/usage.pdf?${q}`);
      const body = (await r.json()) as { error: { code: string; field: string; rule?: string } };
      expect([r.status, body.error.code, body.error.field], q).toEqual([status, code, field]);
      expect(body.error.rule, q).toBeTruthy();
    }
  });
});

describe('long reports', () => {
  it('break onto further pages, repeat the table header, number the pages and say how many alerts were left out', async () => {
    const amount = (m: number, n: number) => ({ cost_micro_usd: m, cost_usd: '', requests: n, average_micro_usd_per_request: Math.round(m / n), unpriced_requests: 0 });
    const report: UsageReport = {
      deployment: { deployment_id: dep, name: 'Big fleet 東京', timezone: 'UTC', org_name: 'Acme' },
      period: { from: '2026-11-01', to: '2026-12-01', last_day: '2026-11-30', days: 30, timezone: 'UTC' },
      totals: { jobs: 0, jobs_succeeded: 0, jobs_failed: 0, cpu_seconds: '0', gpu_seconds: '0', tokens_in: 0, tokens_out: 0, tokens_cache_read: 0, tokens_cache_write: 0,
        tokens_reasoning: 0, context_bytes_read: 0, context_bytes_written: 0, disk_io_mb: '0', net_in_mb: '0', net_out_mb: '0', peak_seats: 0, peak_nodes: 0, peak_concurrency: 0 },
      cost: { currency: 'USD', ...amount(40_000_000, 40), unpriced_requests: 3 },
      by_model: Array.from({ length: 40 }, (_, i) => ({ key: `model-${i}`, provider: 'p', ...amount(1_000_000, 1) })),
      by_agent_type: [],
      top_tags: [],
      alerts: { total: 60, items: Array.from({ length: 50 }, (_, i) => ({ created_at: `2026-11-${String(1 + (i % 28)).padStart(2, '0')}T08:00:00Z`, severity: 'warn', code: 'QUOTA_NEARING', message: `alert number ${i + 1}` })) },
    };
    const file = join(dir, 'long.pdf');
    writeFileSync(file, await renderUsagePdf(report, NOW));
    const pages = textOf(file).split('\f').filter((p) => p.trim());
    expect(pages.length).toBeGreaterThanOrEqual(2);
    pages.forEach((p, i) => expect(p).toContain(`Page ${i + 1} of ${pages.length}`));
    const all = pages.join('\n');
    expect(all).toContain('Big fleet ?? · Acme');
    expect(all).toContain('3 requests without a price yet (not in the total)');
    for (const m of ['model-0 ', 'model-39 ', 'alert number 1\n', 'alert number 50']) expect(all).toContain(m);
    expect(all).toContain('and 10 more (GET /v1/alerts lists them all)');
    expect(all).toContain('No LLM requests in this period.');
    expect(all).toContain('No tagged requests in this period.');
    // a table continued on a new page starts with its header again
    expect(pages.slice(1).some((p) => /Local time\s+Severity\s+Code\s+Message/.test(p) || /Model\s+Provider\s+Requests/.test(p))).toBe(true);
  });
});

describe('kaching report', () => {
  it('writes the same report to --out, built under the deployment org\'s row-level security', async () => {
    const out = join(dir, 'cli.pdf');
    const report = commands.find((c) => c.name === 'report')!;
    const ctx = (args: Record<string, string>) => ({ args, positionals: [], config: { ...loadConfig(env.env) }, json: true, progress: () => undefined, signal: new AbortController().signal });
    const done = await report.run(ctx({ deployment: dep, from: '2026-11-20', to: '2026-11-22', out }));
    expect(done.data).toMatchObject({ file: out, cost_micro_usd: 6_900_000, cost_usd: '6.900000', requests: 4 });
    expectReportText(textOf(out));
    await expect(report.run(ctx({ deployment: dep, from: '2026-11-22', to: '2026-11-20', out }))).rejects.toThrow(/--from/);
  });
});

describe('GET /v1/costs/tags', () => {
  it('lists the costliest tag values across keys', async () => {
    const r = await get(readKey, `/v1/costs/tags?deployment_id=${dep}&from=2026-11-20&to=2026-11-22`);
    expect(r.status).toBe(200);
    const j = (await r.json()) as { items: unknown[] };
    expect(j.items).toEqual([
      { tag: 'team', value: 'ml', cost_micro_usd: 3_600_000, cost_usd: '3.600000', requests: 2 },
      { tag: 'team', value: 'web', cost_micro_usd: 2_700_000, cost_usd: '2.700000', requests: 1 },
    ]);
    expect((await get(otherKey, `/v1/costs/tags?deployment_id=${dep}`)).status).toBe(404);
  });
});
