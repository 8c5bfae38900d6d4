import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { featuresBucket, type CommandContext, type EffectiveFeatures } from '@kaching/contracts';
import { commands } from '@kaching/enforcer';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { seedDeployment, seedOrg } from './helpers.js';

const cmd = (name: string) => commands.find((c) => c.name === name)!;

describe('license CLI commands', () => {
  let env: IsolatedEnv;
  let dir: string;
  const ctx = (args: CommandContext['args']): CommandContext => ({
    args, positionals: [], json: true, progress: () => undefined, signal: new AbortController().signal,
    config: { databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'error' },
  });

  beforeAll(async () => {
    env = await isolatedEnv();
    dir = await mkdtemp(join(tmpdir(), 'kaching-lic-'));
    await env.pool.query(`insert into pricing_plan (plan_id, name, rank) values ('team', 'Team', 1)`);
  });
  afterAll(async () => env?.cleanup());

  it('keygen → issue → verify → activate; a tampered blob is refused', async () => {
    const org = await seedOrg(env.pool);
    const dep = await seedDeployment(env.pool, org);
    const kg = (await cmd('license keygen').run(ctx({ out: join(dir, 'vendor') }))).data as { public_key: string };
    const issued = await cmd('license issue').run(ctx({
      org, plan: 'team', seats: '5', nodes: '2', 'valid-from': '2020-01-01', 'valid-to': '2099-01-01', features: '{"sso":true}',
      'private-key': join(dir, 'vendor.key'), out: join(dir, 'lic.txt'),
    }));
    expect((issued.data as { blob: string }).blob.length).toBeGreaterThan(100);
    const pub = join(dir, 'vendor.pub');
    const v = await cmd('license verify').run(ctx({ blob: join(dir, 'lic.txt'), 'public-key': pub }));
    expect(v.exitCode).toBe(0);
    expect(v.data).toMatchObject({ status: 'valid', payload: { org_id: org, plan_id: 'team', seats_limit: 5, nodes_limit: 2 } });
    const a = await cmd('license activate').run(ctx({ blob: join(dir, 'lic.txt'), deployment: dep, 'public-key': kg.public_key }));
    expect(a.data).toMatchObject({ deployment_id: dep, plan_id: 'team', status: 'valid' });
    expect((await env.pool.query('select seats_limit, nodes_limit from license where deployment_id = $1', [dep])).rows[0]).toEqual({ seats_limit: 5, nodes_limit: 2 });
    // the license's features reach the features KV bucket for orchestrators
    const kv = await featuresBucket(await env.nats(), env.names);
    expect((await kv.get(env.names.featuresKey(dep)))?.json<EffectiveFeatures>()).toMatchObject({ deployment_id: dep, features: { sso: true } });

    const doc = JSON.parse(Buffer.from((await readFile(join(dir, 'lic.txt'), 'utf8')).trim(), 'base64').toString());
    doc.payload.valid_to = '2199-01-01T00:00:00.000Z';
    await writeFile(join(dir, 'bad.txt'), Buffer.from(JSON.stringify(doc)).toString('base64'));
    await expect(cmd('license verify').run(ctx({ blob: join(dir, 'bad.txt'), 'public-key': pub }))).rejects.toMatchObject({ code: 'LICENSE_INVALID' });
    await expect(cmd('license activate').run(ctx({ blob: join(dir, 'bad.txt'), 'public-key': pub }))).rejects.toMatchObject({ code: 'LICENSE_INVALID' });
  });
});
