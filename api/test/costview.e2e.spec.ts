import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { addUser, createDeployment, createOrg, loadConfig, start, type ApiHandle } from '@kaching/api';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { requireTool } from '../../test/support/tools.js';

// The dashboard's cost view in a real Chromium: signed in by session, chart drawn by uPlot (served by the API
// from node_modules), top models / agent types / tags with formatted costs, no request leaving the API's origin.

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** The API's "now": the cost view's default window is the 30 local days up to the end of this day. */
const AT = new Date('2026-11-20T15:00:00Z');
const TZ = 'Europe/Berlin';

let env: IsolatedEnv;
let api: ApiHandle;
let dep: string;
let dir: string;
let browser: BrowserContext;
let page: Page;
const requested: string[] = [];

/**
 * Per-model daily rows as the projector writes them (micro-USD):
 *   2026-11-14 .. 2026-11-20  gpt-4o (openai, coder) $4.00 and 10 requests a day; claude-sonnet-4 (anthropic, reviewer) $2.50 and 5 a day
 *   2026-11-18                gemini-2.5-pro (google, planner) $0.0125, 1 request
 *   2026-11-05                gpt-4o $10.00, 8 requests (in the 30-day window, not in the 7-day one)
 *   2026-09-01                gpt-4o $100.00 (outside every window)
 * 30 days: $55.5125 (gpt-4o $38.00, sonnet $17.50); 7 days: $45.5125.
 * Tagged raw samples on 2026-11-19: team=ml $3.00 (2 requests), team=web $1.50 (1).
 */
async function seed(orgId: string): Promise<void> {
  const q = (sql: string, p: unknown[]) => env.pool.query(sql, p);
  const row = `insert into usage_rollup_model_daily (deployment_id, day, provider, model_name, agent_type, org_id, requests, tokens_in, tokens_out, cost_micro_usd) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`;
  for (let d = 14; d <= 20; d++) {
    await q(row, [dep, `2026-11-${d}`, 'openai', 'gpt-4o', 'coder', orgId, 10, 1_000_000, 100_000, 4_000_000]);
    await q(row, [dep, `2026-11-${d}`, 'anthropic', 'claude-sonnet-4', 'reviewer', orgId, 5, 500_000, 50_000, 2_500_000]);
  }
  await q(row, [dep, '2026-11-18', 'google', 'gemini-2.5-pro', 'planner', orgId, 1, 5_000, 0, 12_500]);
  await q(row, [dep, '2026-11-05', 'openai', 'gpt-4o', 'coder', orgId, 8, 2_000_000, 500_000, 10_000_000]);
  await q(row, [dep, '2026-09-01', 'openai', 'gpt-4o', 'coder', orgId, 50, 20_000_000, 5_000_000, 100_000_000]);
  await q(`select ensure_usage_partitions('2026-11-18'::date, 3)`, []);
  const samples: [string, number][] = [['ml', 1_500_000], ['ml', 1_500_000], ['web', 1_500_000]];
  for (const [i, [team, cost]] of samples.entries()) {
    await q(
      `insert into usage_sample (deployment_id, correlation_id, started_at, ended_at, org_id, job_id, agent_id, node_id, agent_type, status,
         model_name, provider, model_tokens_in, cost_micro_usd, tags, revision, stream_seq)
       values ($1, $2, '2026-11-19T10:00:00Z', '2026-11-19T10:05:00Z', $3, gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'coder', 'succeeded',
         'gpt-4o', 'openai', 1000, $4, $5, 'r', $6)`,
      [dep, `tagged-${i}`, orgId, cost, JSON.stringify({ team }), i + 1],
    );
  }
}

beforeAll(async () => {
  const CHROMIUM = requireTool('chromium', 'chromium');
  env = await isolatedEnv();
  const org = await createOrg(env.pool, { name: 'acme' });
  dep = String((await createDeployment(env.pool, org.org_id, { name: 'Acme research fleet', timezone: TZ })).deployment_id);
  await seed(org.org_id);
  await addUser(env.pool, { orgId: org.org_id, login: 'finance@acme.example', role: 'viewer', password: 'a-long-cost-view-password' });
  api = await start({ ...loadConfig(env.env), port: 0 }, { pool: env.pool, nc: await env.nats(), clock: () => AT.getTime() });
  dir = mkdtempSync(join(tmpdir(), 'kaching-costview-'));
  browser = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1440, height: 1000 }, deviceScaleFactor: 1,
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.on('request', (r) => requested.push(r.url()));
});

afterAll(async () => {
  await browser?.close();
  await api?.close();
  await env?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const texts = (testid: string) => page.getByTestId(testid).allInnerTexts();

/** Pixels of the chart canvas close to a colour (the bars are filled with the palette's solid colours). */
function pixelsOf(hex: string): Promise<number> {
  return page.evaluate((h) => {
    const canvas = document.querySelector<HTMLCanvasElement>('[data-testid="cost-chart"] canvas')!;
    const px = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
    let n = 0;
    for (let i = 0; i < px.length; i += 4) if (Math.abs(px[i]! - r!) < 8 && Math.abs(px[i + 1]! - g!) < 8 && Math.abs(px[i + 2]! - b!) < 8 && px[i + 3]! > 200) n++;
    return n;
  }, hex);
}

describe('cost view in a real browser', () => {
  it('signs in, opens the cost view and draws cost per day stacked by model with the top lists', async () => {
    await page.goto(`${api.url}/signin`);
    await page.getByTestId('signin-login').fill('finance@acme.example');
    await page.getByTestId('signin-password').fill('a-long-cost-view-password');
    await page.getByTestId('signin-submit').click();
    await page.waitForURL(`${api.url}/`);
    await page.goto(`${api.url}/#deployment=${dep}`);
    await page.getByTestId('nav-costs').click();
    await page.waitForSelector('[data-testid="cost-view"][data-loaded]');
    expect(await page.getByTestId('cost-view').isVisible()).toBe(true);

    expect(await page.getByTestId('cost-total').innerText()).toBe('$55.51');
    expect(await page.getByTestId('cost-requests').innerText()).toBe('114 requests');
    expect(await page.getByTestId('cost-window').innerText()).toBe('2026-10-22 – 2026-11-20 · Europe/Berlin');
    expect(await texts('top-models-name')).toEqual(['gpt-4o', 'claude-sonnet-4', 'gemini-2.5-pro']);
    expect(await texts('top-models-cost')).toEqual(['$38.00', '$17.50', '$0.0125']);
    expect(await texts('top-agent-types-name')).toEqual(['coder', 'reviewer', 'planner']);
    expect(await texts('top-agent-types-cost')).toEqual(['$38.00', '$17.50', '$0.0125']);
    expect(await texts('top-tags-name')).toEqual(['team=ml', 'team=web']);
    expect(await texts('top-tags-cost')).toEqual(['$3.00', '$1.50']);

    // uPlot drew into its canvas: the two big models' segments in their palette colours
    expect(await page.locator('[data-testid="cost-chart"] canvas').count()).toBe(1);
    expect(await pixelsOf('#3156d3')).toBeGreaterThan(500); // gpt-4o
    expect(await pixelsOf('#2f9e6e')).toBeGreaterThan(300); // claude-sonnet-4

    const shot = join(dir, 'cost-view.png');
    await page.screenshot({ path: shot, fullPage: true });
    const png = readFileSync(shot);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.length).toBeGreaterThan(20_000);
  });

  it('narrows to 7 days, and its PDF link downloads the report with the session', async () => {
    const before = await page.getByTestId('cost-view').getAttribute('data-loaded');
    await page.getByTestId('cost-range').selectOption('7');
    await page.waitForFunction((b) => document.querySelector('[data-testid="cost-view"]')?.getAttribute('data-loaded') !== b, before);
    expect(await page.getByTestId('cost-total').innerText()).toBe('$45.51');
    expect(await texts('top-models-cost')).toEqual(['$28.00', '$17.50', '$0.0125']);
    const href = await page.getByTestId('cost-pdf').getAttribute('href');
    expect(href).toBe(`/v1/reports/usage.pdf?deployment_id=${dep}&from=2026-11-14&to=2026-11-21`);
    const pdf = await page.evaluate(async (u) => {
      const r = await fetch(u, { credentials: 'same-origin' });
      return { status: r.status, type: r.headers.get('content-type'), head: new TextDecoder().decode((await r.arrayBuffer()).slice(0, 5)) };
    }, href!);
    expect(pdf).toEqual({ status: 200, type: 'application/pdf', head: '%PDF-' });
  });

  it('loaded nothing from any other origin (uPlot and its stylesheet come from /ui/vendor/)', async () => {
    const origin = new URL(api.url).origin;
    expect(requested.length).toBeGreaterThan(5);
    expect(requested.filter((u) => !u.startsWith(`${origin}/`) && !u.startsWith('data:'))).toEqual([]);
    expect(requested).toContain(`${origin}/ui/vendor/uplot.js`);
    expect(requested).toContain(`${origin}/ui/vendor/uplot.css`);
  });
});
