import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig as apiConfig, start as startApi } from '@kaching/api';
import { loadConfig as enforcerConfig, start as startEnforcer } from '@kaching/enforcer';
import { loadConfig as ingestConfig, signedUsage, start as startIngest } from '@kaching/ingest';
import { loadConfig as projectorConfig, start as startProjector } from '@kaching/projector';
import { seedDeployment } from '../../ingest/test/support.js';
import { isolatedEnv, type IsolatedEnv } from '../support/isolation.js';
import { requireTool } from '../support/tools.js';

/**
 * Every service's /metrics passes Prometheus's own linter (`promtool check metrics`, Debian's prometheus
 * package): before, the projector and the enforcer exported prom-client's `nodejs_active_handles_total` (and
 * two more) as gauges, which Prometheus rejects because `_total` is reserved for counters. (The HQ receiver
 * serves no /metrics.)
 */
describe('/metrics of every service passes promtool check metrics', () => {
  let env: IsolatedEnv;
  const urls: Record<string, string> = {};
  const closers: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    env = await isolatedEnv();
    const local = { port: 0, host: '127.0.0.1', logLevel: 'error' };
    const ingest = await startIngest({ ...ingestConfig(env.env), ...local, verifyWorkers: 0 });
    closers.push(() => ingest.close());
    const projector = await startProjector({ ...projectorConfig(env.env), ...local });
    closers.push(() => projector.close());
    const enforcer = await startEnforcer({ ...enforcerConfig(env.env), ...local });
    closers.push(() => enforcer.close());
    const api = await startApi({ ...apiConfig(env.env), ...local });
    closers.push(() => api.close());
    Object.assign(urls, { ingest: ingest.url, projector: projector.url, enforcer: enforcer.url, api: api.url });
    // some traffic, so labelled series and histogram buckets exist, not only their headers
    const D = await seedDeployment(env.pool);
    const r = await fetch(`${ingest.url}/v1/ingest/usage`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${D.token}` },
      body: JSON.stringify(signedUsage(D.deploymentId, D.keyId, D.secretKey)),
    });
    expect(r.status).toBe(202);
    await fetch(`${api.url}/healthz`);
  });

  afterAll(async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    await env?.cleanup();
  });

  for (const service of ['ingest', 'projector', 'enforcer', 'api']) {
    it(service, async () => {
      const promtool = requireTool('promtool', 'prometheus');
      const text = await (await fetch(`${urls[service]}/metrics`)).text();
      expect(text).toMatch(/^# TYPE kaching_/m);
      // Prometheus's naming rule, checked here too so the failure names every offender at once
      const wrong = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].filter(([, name, type]) => type !== 'counter' && name!.endsWith('_total')).map(([, n, t]) => `${n} (${t})`);
      expect(wrong).toEqual([]);
      const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect({ status: r.status, problems: `${r.stdout}${r.stderr}`.trim() }).toEqual({ status: 0, problems: '' });
    });
  }
});
