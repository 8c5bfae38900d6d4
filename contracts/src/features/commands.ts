import type pg from 'pg';
import { requireString, UsageError, withCommandPool, type Command, type CommandContext } from '../cli/command.js';
import { connectNats } from '../nats/connect.js';
import { publishConfigChange } from '../nats/messages.js';
import { names } from '../names/names.js';
import { inTransaction } from '../db/pool.js';
import { effectiveFeatures, featuresBucket, publishFeatures, removeFlag, setFlag } from './features.js';
import { upsellReport } from './upsell.js';

/**
 * Puts the deployments' effective features into KV and tells the enforcer. A missing NATS does not undo the
 * database change: the answer says published: false and `kaching features publish` catches up.
 */
export async function republishFromCli(ctx: CommandContext, pool: pg.Pool, deploymentIds: string[], kind: 'feature_flag' | 'license'): Promise<boolean> {
  const n = names(ctx.config.namespace);
  let nc;
  try {
    nc = await connectNats(ctx.config.natsUrl, { name: 'kaching-cli', timeout: 2000 });
  } catch {
    return false;
  }
  try {
    const kv = await featuresBucket(nc, n);
    for (const d of deploymentIds) {
      await inTransaction(pool, (c) => publishFeatures(c, kv, n, d, new Date()));
      if (kind === 'feature_flag') publishConfigChange(nc, n, { deployment_id: d, kind });
    }
    await nc.flush();
    return true;
  } catch {
    return false;
  } finally {
    await nc.drain().catch(() => undefined);
  }
}

const deploymentOpt = { deployment: { type: 'string', description: 'Deployment id (uuid)', required: true } } as const;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function deploymentArg(ctx: CommandContext): string {
  const d = requireString(ctx, 'deployment');
  if (!UUID.test(d)) throw new UsageError('--deployment must be a deployment id (uuid)');
  return d;
}

function flagArg(ctx: CommandContext): string {
  const f = ctx.positionals[0];
  if (!f) throw new UsageError('missing flag');
  return f;
}

export const featureCommands: Command[] = [
  {
    name: 'flag set',
    summary: "Switch a deployment's feature flag on or off and publish its effective features",
    positionals: [{ name: 'flag', description: 'flag name, e.g. sso', required: true }],
    options: {
      ...deploymentOpt,
      off: { type: 'boolean', description: 'switch it off (default: on)' },
      override: { type: 'boolean', description: 'switch on a feature the license does not grant (the CLI is the operator)' },
    },
    details: `Without --override, switching on a feature the license in force does not grant is refused (FEATURE_NOT_LICENSED).
The effective features go to the NATS KV bucket <namespace>_features, key = deployment id.`,
    async run(ctx) {
      const deployment = deploymentArg(ctx);
      const flag = flagArg(ctx);
      return withCommandPool(ctx, async (pool) => {
        const f = await setFlag(pool, { deploymentId: deployment, flag, enabled: ctx.args.off !== true, override: ctx.args.override === true, operator: true, by: 'cli', now: new Date() });
        const published = await republishFromCli(ctx, pool, [deployment], 'feature_flag');
        return { data: { ...f, published }, text: `${flag} ${f.enabled ? 'on' : 'off'}${f.override ? ' (override)' : ''} for ${deployment}${published ? '' : ' (NATS unreachable: run `kaching features publish`)'}` };
      });
    },
  },
  {
    name: 'flag remove',
    summary: "Remove a deployment's feature flag (the license's value applies again)",
    positionals: [{ name: 'flag', description: 'flag name', required: true }],
    options: deploymentOpt,
    async run(ctx) {
      const deployment = deploymentArg(ctx);
      const flag = flagArg(ctx);
      return withCommandPool(ctx, async (pool) => {
        await removeFlag(pool, deployment, flag);
        const published = await republishFromCli(ctx, pool, [deployment], 'feature_flag');
        return { data: { deleted: true, flag, deployment_id: deployment, published }, text: `${flag} removed from ${deployment}` };
      });
    },
  },
  {
    name: 'flag list',
    summary: "A deployment's flags and effective features (license merged with flags)",
    options: deploymentOpt,
    async run(ctx) {
      const deployment = deploymentArg(ctx);
      return withCommandPool(ctx, async (pool) => {
        const doc = await effectiveFeatures(pool, deployment, new Date());
        if (!doc) throw new UsageError(`no deployment ${deployment}`);
        const lines = [
          `license: ${doc.license ? `${doc.license.license_id} (plan ${doc.license.plan_id})` : 'none in force'}`,
          ...doc.flags.map((f) => `flag ${f.flag}: ${f.enabled ? 'on' : 'off'}${f.override ? ' (override)' : ''}${f.effective ? '' : ' (not in effect: the license does not grant it)'}`),
          `effective: ${JSON.stringify(doc.features)}`,
        ];
        return { data: doc, text: lines.join('\n') };
      });
    },
  },
  {
    name: 'features publish',
    summary: 'Publish the effective features of every deployment (or one) to the NATS KV bucket',
    options: { deployment: { type: 'string', description: 'Only this deployment (uuid)' } },
    async run(ctx) {
      return withCommandPool(ctx, async (pool) => {
        const one = typeof ctx.args.deployment === 'string' && ctx.args.deployment ? deploymentArg(ctx) : undefined;
        const ids = one ? [one] : (await pool.query<{ deployment_id: string }>('select deployment_id from deployment order by deployment_id')).rows.map((r) => r.deployment_id);
        const published = await republishFromCli(ctx, pool, ids, 'feature_flag');
        if (!published) throw new Error('NATS is unreachable; nothing was published');
        return { data: { published: ids.length }, text: `published the effective features of ${ids.length} deployment(s)` };
      });
    },
  },
  {
    name: 'upsell',
    summary: 'Who to upsell this week: deployments ranked by near-limit alerts, with the suggested upgrade',
    options: {
      days: { type: 'string', description: 'window in days', default: '7' },
      limit: { type: 'string', description: 'how many deployments', default: '25' },
      at: { type: 'string', description: 'end of the window (RFC 3339; default: now)' },
    },
    async run(ctx) {
      const days = Number(ctx.args.days);
      const limit = Number(ctx.args.limit);
      if (!Number.isInteger(days) || days < 1 || days > 90) throw new UsageError('--days must be an integer in 1..90');
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new UsageError('--limit must be an integer in 1..100');
      const at = typeof ctx.args.at === 'string' && ctx.args.at ? new Date(ctx.args.at) : new Date();
      if (Number.isNaN(at.getTime())) throw new UsageError('--at must be an RFC 3339 time');
      return withCommandPool(ctx, async (pool) => {
        const r = await upsellReport(pool, at, { days, limit });
        const lines = r.items.map((x) => `${String(x.rank).padStart(2)}. ${x.org_name} / ${x.deployment_name} (${x.deployment_id}): ${x.near_alerts} near-limit alert(s); ${x.suggestion?.rationale ?? 'no suggestion'}`);
        return { data: r, text: lines.length ? lines.join('\n') : `no near-limit alerts since ${r.window.from}` };
      });
    },
  },
];
