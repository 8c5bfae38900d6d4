import { parseExpiry, requireString, UsageError, withCommandPool as withPool, type Command, type CommandContext } from '@kaching/contracts';
import { loadConfig } from '../config.js';
import { start } from '../server.js';
import { issueApiKey, revokeApiKey } from '../routines/apikeys.js';
import { createDeployment, createOrg, setDeploymentTimezone } from '../routines/orgs.js';
import { userCommands } from './users.js';
import { reportCommands } from './report.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
function requireUuid(ctx: CommandContext, key: string): string {
  const v = requireString(ctx, key);
  if (!UUID.test(v)) throw new UsageError(`--${key} must be a uuid`);
  return v;
}

export const commands: Command[] = [
  {
    name: 'org create',
    summary: 'Create an organisation; prints its id',
    options: { name: { type: 'string', description: 'Organisation name', required: true } },
    async run(ctx) {
      const org = await withPool(ctx, (p) => createOrg(p, { name: requireString(ctx, 'name') }));
      return { data: org, text: org.org_id };
    },
  },
  {
    name: 'deployment create',
    summary: 'Create a deployment in an organisation; prints its id',
    options: {
      org: { type: 'string', description: 'Organisation id', required: true },
      name: { type: 'string', description: 'Deployment name', required: true },
      timezone: { type: 'string', description: 'IANA time zone for daily/monthly periods', default: 'UTC' },
      enforcement: { type: 'string', description: 'soft (warn + suggest) or hard (binding actions)', default: 'soft' },
    },
    async run(ctx) {
      const enforcement = (ctx.args.enforcement as string | undefined) ?? 'soft';
      if (enforcement !== 'soft' && enforcement !== 'hard') throw new UsageError('--enforcement must be soft or hard');
      const d = await withPool(ctx, (p) =>
        createDeployment(p, requireUuid(ctx, 'org'), {
          name: requireString(ctx, 'name'),
          timezone: (ctx.args.timezone as string | undefined) ?? 'UTC',
          enforcement,
        }),
      );
      return { data: d, text: String(d.deployment_id) };
    },
  },
  {
    name: 'deployment set-timezone',
    summary: "Change a deployment's time zone; its daily rollups and the enforcer's daily usage are rebuilt in the new zone",
    options: {
      deployment: { type: 'string', description: 'Deployment id', required: true },
      timezone: { type: 'string', description: 'IANA time zone, e.g. Europe/Berlin', required: true },
    },
    details:
      "A deployment's day is its local day. The change and the rebuild of every day-keyed row (daily rollups,\n" +
      'seats/nodes and peak concurrency per day, quota/budget usage) happen in one transaction; running services\n' +
      'pick the new zone up within their limits cache (30 s) and never commit a day in the old zone after it.',
    async run(ctx) {
      const r = await withPool(ctx, (p) => setDeploymentTimezone(p, requireUuid(ctx, 'deployment'), requireString(ctx, 'timezone')));
      return { data: r, text: r.rebuilt ? `${r.deployment_id}: ${r.previous} -> ${r.timezone}; daily rows rebuilt` : `${r.deployment_id}: already ${r.timezone}` };
    },
  },
  {
    name: 'apikey issue',
    summary: 'Issue an API key for an organisation; prints it once (only its hash is stored)',
    options: {
      org: { type: 'string', description: 'Organisation id', required: true },
      scopes: { type: 'string', description: 'Comma-separated: read, admin, operator', default: 'read' },
      expires: { type: 'string', description: 'Lifetime (30d, 12h) or timestamp; default: no expiry' },
      label: { type: 'string', description: 'Free-text label' },
    },
    async run(ctx) {
      const expires = typeof ctx.args.expires === 'string' ? parseExpiry(ctx.args.expires) : null;
      const k = await withPool(ctx, (p) =>
        issueApiKey(p, {
          orgId: requireUuid(ctx, 'org'),
          scopes: (ctx.args.scopes as string | undefined) ?? 'read',
          expiresAt: expires,
          ...(typeof ctx.args.label === 'string' ? { label: ctx.args.label } : {}),
        }),
      );
      return { data: { key_id: k.keyId, org_id: k.orgId, scopes: k.scopes, expires_at: k.expiresAt, api_key: k.apiKey }, text: k.apiKey };
    },
  },
  {
    name: 'apikey revoke',
    summary: 'Revoke an API key by its key id',
    options: { 'key-id': { type: 'string', description: 'The key id (the part after ka_)', required: true } },
    async run(ctx) {
      const r = await withPool(ctx, (p) => revokeApiKey(p, requireString(ctx, 'key-id')));
      return { data: { key_id: r.keyId, revoked: true }, text: `revoked ${r.keyId}` };
    },
  },
  {
    name: 'api',
    summary: 'Run the API and dashboard alone (until interrupted)',
    async run(ctx) {
      const handle = await start({ ...loadConfig(), ...ctx.config });
      ctx.progress(`api listening on ${handle.url} (dashboard at ${handle.url}/)`);
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await handle.close();
      return { data: { url: handle.url, stopped: true }, text: 'api stopped' };
    },
  },
  ...userCommands,
  ...reportCommands,
];
