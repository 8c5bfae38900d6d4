import type { FastifyInstance } from 'fastify';
import { channelKey, createChannel, deleteChannel, getChannel, listChannels, listDeliveries, sendTestMessage, type NewChannel } from '@kaching/contracts';
import { callerOf, withOrg, type ApiContext } from '../context.js';
import { anyObject, idParams, ok, uuid } from '../schemas.js';

const A = { auth: 'admin' } as const;
const R = { auth: 'read' } as const;
// kind, url and the filters are checked by contracts' channel rules (stable CHANNEL_* codes), not by enums here
const str = (max: number) => ({ type: 'string', maxLength: max }) as const;
const strings = { type: 'array', maxItems: 50, items: str(64) } as const;
const channel = {
  type: 'object',
  properties: {
    channel_id: uuid, org_id: uuid, name: { type: ['string', 'null'] }, kind: { type: 'string', enum: ['webhook', 'slack'] }, url: { type: 'string' },
    deployment_id: { type: ['string', 'null'] }, codes: { type: ['array', 'null'] }, severities: { type: ['array', 'null'] }, enabled: { type: 'boolean' },
    created_at: { type: 'string' },
  },
} as const;

export function channelRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.post<{ Body: NewChannel }>(
    '/v1/channels',
    {
      config: A,
      schema: {
        summary: 'Add an alert channel (webhook or Slack); the answer shows its signing secret once', tags: ['channels'],
        description: 'Webhook deliveries are signed per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature) with the returned whsec_ secret.',
        body: {
          type: 'object', required: ['kind', 'url'], additionalProperties: false,
          properties: {
            kind: str(32), url: str(4000), name: { type: 'string', minLength: 1, maxLength: 200 },
            deployment_id: { type: ['string', 'null'], maxLength: 64 }, codes: { anyOf: [strings, { type: 'null' }] }, severities: { anyOf: [strings, { type: 'null' }] },
          },
        },
        response: { 201: { description: 'Created (with `secret`, shown only now)', ...channel } },
      },
    },
    async (req, reply) => {
      const key = await channelKey(ctx.pool);
      const c = await withOrg(ctx, req, (db) => createChannel(db, key, callerOf(req).orgId, req.body));
      return reply.code(201).header('cache-control', 'no-store').send(c);
    },
  );

  app.get<{ Querystring: { deployment_id?: string; code?: string; severity?: string } }>(
    '/v1/channels',
    {
      config: R,
      schema: {
        summary: "The org's alert channels; filters: those receiving a deployment's, an alert code's or a severity's alerts", tags: ['channels'],
        querystring: { type: 'object', additionalProperties: false, properties: { deployment_id: str(64), code: str(64), severity: str(16) } },
        response: ok({ type: 'object', properties: { items: { type: 'array', items: channel } } }),
      },
    },
    async (req) => ({ items: await withOrg(ctx, req, (db) => listChannels(db, { deploymentId: req.query.deployment_id, code: req.query.code, severity: req.query.severity })) }),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/channels/:id',
    { config: R, schema: { summary: 'One alert channel', tags: ['channels'], params: idParams, response: ok(channel) } },
    async (req) => withOrg(ctx, req, (db) => getChannel(db, req.params.id)),
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/channels/:id',
    { config: A, schema: { summary: 'Remove an alert channel and its delivery log', tags: ['channels'], params: idParams, response: { 204: { description: 'Removed', type: 'null' } } } },
    async (req, reply) => {
      await withOrg(ctx, req, (db) => deleteChannel(db, req.params.id));
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/channels/:id/test',
    {
      config: A,
      schema: {
        summary: 'Send a test message now; answers with its delivery (a failed one stays queued and is retried with backoff)', tags: ['channels'],
        params: idParams, response: ok(anyObject),
      },
    },
    async (req) => {
      // visibility through RLS first; the delivery itself needs the channel key (service role)
      await withOrg(ctx, req, (db) => getChannel(db, req.params.id));
      return sendTestMessage(ctx.pool, await channelKey(ctx.pool), req.params.id);
    },
  );

  app.get<{ Params: { id: string }; Querystring: { limit: number } }>(
    '/v1/channels/:id/deliveries',
    {
      config: R,
      schema: {
        summary: "A channel's delivery log, newest first: status (delivered, retrying, failed), attempts, last answer, next retry", tags: ['channels'],
        params: idParams,
        querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } } },
        response: ok({ type: 'object', properties: { items: { type: 'array', items: anyObject } } }),
      },
    },
    async (req) => ({ items: await withOrg(ctx, req, (db) => listDeliveries(db, req.params.id, req.query.limit)) }),
  );
}
