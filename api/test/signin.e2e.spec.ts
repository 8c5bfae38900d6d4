import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { addUser, loadConfig, start, type ApiHandle } from '@kaching/api';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { requireTool } from '../../test/support/tools.js';
import { seedOrg, type SeededOrg } from './support/seed.js';

// People sign in to the dashboard in a real Chromium: the session cookie carries them, they see
// their own org only, and after signing out the dashboard refuses them.

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let env: IsolatedEnv;
let api: ApiHandle;
let A: SeededOrg;
let B: SeededOrg;
let userDataDir: string;
let browser: BrowserContext;
let page: Page;
const alice = { login: 'alice@acme.example', password: 'alice-has-a-long-password' };
const bob = { login: 'bob@globex.example', password: 'bob-has-a-long-password' };

beforeAll(async () => {
  // installed by the setup script (node deploy/services.mjs ensure), never by a test
  const CHROMIUM = requireTool('chromium', 'chromium');
  env = await isolatedEnv();
  A = await seedOrg(env.pool, 'acme');
  B = await seedOrg(env.pool, 'globex');
  await env.pool.query(`update deployment set name = 'Acme research fleet' where deployment_id = $1`, [A.deploymentId]);
  await env.pool.query(`update deployment set name = 'Globex batch fleet' where deployment_id = $1`, [B.deploymentId]);
  await addUser(env.pool, { orgId: A.orgId, login: alice.login, role: 'viewer', password: alice.password });
  await addUser(env.pool, { orgId: B.orgId, login: bob.login, role: 'admin', password: bob.password });
  api = await start({ ...loadConfig(env.env), port: 0 }, { pool: env.pool, nc: await env.nats() });
  userDataDir = mkdtempSync(join(tmpdir(), 'kaching-chromium-'));
  browser = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 900 } });
  page = browser.pages()[0] ?? (await browser.newPage());
});

afterAll(async () => {
  await browser?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  await api?.close();
  await env?.cleanup();
});

async function signInThroughThePage(who: { login: string; password: string }): Promise<void> {
  await page.getByTestId('signin-login').fill(who.login);
  await page.getByTestId('signin-password').fill(who.password);
  await page.getByTestId('signin-submit').click();
}

const inPage = (path: string) => page.evaluate(async (p) => (await fetch(p, { cache: 'no-store' })).status, path);

describe('signing in to the dashboard in Chromium', () => {
  it('sends a browser without a session to the sign-in page; a wrong password shows an error and no session', async () => {
    await page.goto(`${api.url}/`);
    await page.waitForURL(`${api.url}/signin`);
    await signInThroughThePage({ login: alice.login, password: 'wrong password, twice over' });
    await page.getByTestId('signin-error').waitFor();
    expect(await page.getByTestId('signin-error').innerText()).toBe('The login or the password is wrong');
    expect(await page.getByTestId('signin-error').getAttribute('data-code')).toBe('SIGNIN_FAILED');
    expect((await browser.cookies()).map((c) => c.name)).not.toContain('kaching_session');
  });

  it("signs in and shows only the user's own org: its deployment, nothing of the other org", async () => {
    await page.goto(`${api.url}/signin`);
    await signInThroughThePage(alice);
    await page.waitForURL(`${api.url}/`);
    await page.getByTestId('card-seats-value').waitFor();
    expect(await page.getByTestId('deployment-name').innerText()).toBe('Acme research fleet');
    expect(await page.getByTestId('signed-in-as').innerText()).toContain(alice.login);
    const options = await page.getByTestId('deployment-picker').locator('option').allInnerTexts();
    expect(options).toEqual(['Acme research fleet']);
    expect(await page.content()).not.toContain('Globex');
    // the session cookie is HttpOnly and SameSite=Lax: no script can read it
    const session = (await browser.cookies()).find((c) => c.name === 'kaching_session')!;
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Lax', secure: false, path: '/' });
    expect(await page.evaluate(() => document.cookie)).not.toContain('kaching_session');
    // no credential lands in storage or in the address bar
    expect(await page.evaluate(() => JSON.stringify(localStorage))).not.toMatch(/ka_|ks_/);
    expect(page.url()).toBe(`${api.url}/`);
    // the other org's deployment does not exist for this session
    expect(await inPage(`/v1/deployments/${B.deploymentId}/utilisation`)).toBe(404);
    expect(await inPage(`/v1/deployments/${A.deploymentId}/utilisation`)).toBe(200);
  });

  it('signs out: back on the sign-in page, and the dashboard and the API refuse the old session', async () => {
    const before = (await browser.cookies()).find((c) => c.name === 'kaching_session')!.value;
    await page.getByTestId('sign-out').click();
    await page.waitForURL(`${api.url}/signin`);
    expect((await browser.cookies()).map((c) => c.name)).not.toContain('kaching_session');
    await page.goto(`${api.url}/`);
    await page.waitForURL(`${api.url}/signin`);
    // (the sign-in page's CSP allows no fetch at all; ask from a plain page of the same origin)
    await page.goto(`${api.url}/healthz`);
    expect(await inPage('/v1/deployments')).toBe(401);
    await page.goto(`${api.url}/signin`);
    // the cookie's old value is dead on the server too, not merely forgotten by the browser
    const replay = await fetch(`${api.url}/v1/deployments`, { headers: { cookie: `kaching_session=${before}` } });
    expect([replay.status, ((await replay.json()) as { error: { code: string } }).error.code]).toEqual([401, 'SESSION_INVALID']);
    const page2 = await fetch(`${api.url}/`, { headers: { cookie: `kaching_session=${before}` }, redirect: 'manual' });
    expect([page2.status, page2.headers.get('location')]).toEqual([303, '/signin']);
  });

  it('the next user in the same browser sees their own org only', async () => {
    await signInThroughThePage(bob);
    await page.waitForURL(`${api.url}/`);
    await page.getByTestId('card-seats-value').waitFor();
    expect(await page.getByTestId('deployment-name').innerText()).toBe('Globex batch fleet');
    expect(await page.getByTestId('deployment-picker').locator('option').allInnerTexts()).toEqual(['Globex batch fleet']);
    expect(await inPage(`/v1/deployments/${A.deploymentId}/utilisation`)).toBe(404);
  });
});
