import type { FastifyInstance } from 'fastify';
import { anyObject, date, ok, uuid } from '../schemas.js';
import type { ApiContext } from '../context.js';
import { hqInstallations, hqSyncState, hqUsageDaily } from '../../routines/hq.js';

const OP = { auth: 'operator' } as const;

export function hqRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/v1/hq/installations', { config: OP, schema: { summary: 'HQ: registered installations and what they pushed', tags: ['hq'], response: ok({ type: 'object', properties: { items: { type: 'array' } } }) } }, async () => ({
    items: await hqInstallations(ctx.pool),
  }));

  app.get<{ Querystring: { from?: string; to?: string; installation_id?: string } }>(
    '/v1/hq/usage/daily',
    {
      config: OP,
      schema: {
        summary: 'HQ: daily usage summed across installations (redacted rollups), with window totals', tags: ['hq'],
        querystring: { type: 'object', properties: { from: date, to: date, installation_id: uuid }, additionalProperties: false },
        response: ok({ type: 'object', properties: { items: { type: 'array' }, totals: anyObject } }),
      },
    },
    async (req) => hqUsageDaily(ctx.pool, req.query),
  );

  app.get('/v1/hq/sync', { config: OP, schema: { summary: 'This installation’s HQ sync: outbox and last pushes', tags: ['hq'], response: ok(anyObject) } }, async () => hqSyncState(ctx.pool));
}
