import { UsageError, requireString, withCommandPool, type Command, type CommandContext } from '../cli/command.js';
import { isUuid } from './channel.js';
import { channelKey } from './secrets.js';
import { createChannel, deleteChannel, listChannels, listDeliveries, sendTestMessage } from './store.js';

const str = (ctx: CommandContext, k: string) => (typeof ctx.args[k] === 'string' ? (ctx.args[k] as string) : undefined);
const csv = (v: string | undefined) => (v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean));
function uuidArg(ctx: CommandContext, k: string): string {
  const v = requireString(ctx, k);
  if (!isUuid(v)) throw new UsageError(`--${k} must be a uuid`);
  return v;
}

export const channelCommands: Command[] = [
  {
    name: 'channel add',
    summary: 'Add an alert channel (Standard Webhooks-signed webhook or Slack incoming webhook); prints its id and, once, its signing secret',
    options: {
      org: { type: 'string', description: 'Organisation id', required: true },
      kind: { type: 'string', description: 'webhook or slack', required: true },
      url: { type: 'string', description: 'Receiver URL (https; plain http only to localhost)', required: true },
      name: { type: 'string', description: 'Free-text name' },
      deployment: { type: 'string', description: "Only this deployment's alerts (default: every deployment of the org)" },
      codes: { type: 'string', description: 'Only these alert codes, comma-separated (e.g. QUOTA_EXCEEDED,BUDGET_EXCEEDED)' },
      severities: { type: 'string', description: 'Only these severities, comma-separated (info, warn, error)' },
    },
    details: `Webhook deliveries carry webhook-id, webhook-timestamp and webhook-signature headers (Standard Webhooks):
verify them with the printed whsec_ secret, e.g. new Webhook(secret).verify(body, headers) from the
"standardwebhooks" npm package. The secret is stored encrypted and never shown again.`,
    async run(ctx) {
      const orgId = uuidArg(ctx, 'org');
      const c = await withCommandPool(ctx, async (pool) =>
        createChannel(pool, await channelKey(pool), orgId, {
          kind: requireString(ctx, 'kind'), url: requireString(ctx, 'url'), name: str(ctx, 'name'),
          deployment_id: str(ctx, 'deployment') ?? null, codes: csv(str(ctx, 'codes')) ?? null, severities: csv(str(ctx, 'severities')) ?? null,
        }),
      );
      return { data: c, text: `${c.channel_id}\nsigning secret (shown once): ${c.secret}` };
    },
  },
  {
    name: 'channel list',
    summary: 'List alert channels, optionally those that receive a deployment, an alert code or a severity',
    options: {
      org: { type: 'string', description: 'Organisation id' },
      deployment: { type: 'string', description: "Channels receiving this deployment's alerts" },
      code: { type: 'string', description: 'Channels receiving this alert code' },
      severity: { type: 'string', description: 'Channels receiving this severity' },
    },
    async run(ctx) {
      const org = str(ctx, 'org');
      if (org !== undefined && !isUuid(org)) throw new UsageError('--org must be a uuid');
      const items = await withCommandPool(ctx, (pool) =>
        listChannels(pool, { orgId: org, deploymentId: str(ctx, 'deployment'), code: str(ctx, 'code'), severity: str(ctx, 'severity') }),
      );
      const text = items.length
        ? items.map((c) => `${c.channel_id}  ${c.kind.padEnd(7)} ${c.url}  deployment=${c.deployment_id ?? '*'} codes=${c.codes?.join(',') ?? '*'} severities=${c.severities?.join(',') ?? '*'}${c.name ? `  (${c.name})` : ''}`).join('\n')
        : 'no channels';
      return { data: { items }, text };
    },
  },
  {
    name: 'channel remove',
    summary: 'Remove an alert channel and its delivery log',
    options: { id: { type: 'string', description: 'Channel id', required: true } },
    async run(ctx) {
      const id = uuidArg(ctx, 'id');
      await withCommandPool(ctx, (pool) => deleteChannel(pool, id));
      return { data: { channel_id: id, removed: true }, text: `removed ${id}` };
    },
  },
  {
    name: 'channel test',
    summary: 'Send a test message to a channel now; prints the delivery (a failure stays queued and is retried)',
    options: { id: { type: 'string', description: 'Channel id', required: true } },
    async run(ctx) {
      const id = uuidArg(ctx, 'id');
      const d = await withCommandPool(ctx, async (pool) => sendTestMessage(pool, await channelKey(pool), id));
      return {
        data: d,
        text: d.status === 'delivered' ? `delivered (HTTP ${d.last_status})` : `not delivered: ${d.last_error}; retrying at ${d.next_attempt_at}`,
        exitCode: d.status === 'delivered' ? 0 : 1,
      };
    },
  },
  {
    name: 'channel deliveries',
    summary: "A channel's delivery log: attempts, status, next retry (newest first)",
    options: { id: { type: 'string', description: 'Channel id', required: true }, limit: { type: 'string', description: 'How many', default: '20' } },
    async run(ctx) {
      const id = uuidArg(ctx, 'id');
      const limit = Number(ctx.args.limit ?? 20);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError('--limit must be an integer in 1..1000');
      const items = await withCommandPool(ctx, (pool) => listDeliveries(pool, id, limit));
      const text = items.map((d) => `${d.delivery_id}  ${d.status.padEnd(9)} attempts=${d.attempts} last=${d.last_status ?? d.last_error ?? '-'} next=${d.next_attempt_at ?? '-'}  ${d.decision_id}`).join('\n') || 'no deliveries';
      return { data: { items }, text };
    },
  },
];
