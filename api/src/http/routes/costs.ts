import type { FastifyInstance } from 'fastify';
import { withOrg, type ApiContext } from '../context.js';
import { anyObject, ok, uuid } from '../schemas.js';
import { costs, type CostQuery } from '../../routines/costs.js';
import { costTags } from '../../routines/report.js';

const dateOrTime = { type: 'string', anyOf: [{ format: 'date' }, { format: 'date-time' }], description: 'a date (the deployment\'s local day) or an RFC 3339 time' } as const;

export function costRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: CostQuery }>(
    '/v1/costs',
    {
      config: { auth: 'read', cache: true },
      schema: {
        summary: 'LLM cost of a deployment: total, requests, average per request, per group and as a series (integer micro-USD)', tags: ['usage'],
        querystring: {
          type: 'object', required: ['deployment_id'], additionalProperties: false,
          properties: {
            deployment_id: uuid, from: dateOrTime, to: dateOrTime,
            group_by: { type: 'string', pattern: '^(model|provider|agent_type|tag:[a-z][a-z0-9_.-]{0,63})$', default: 'model' },
            interval: { type: 'string', enum: ['day', 'hour'], default: 'day' },
          },
        },
        response: ok(anyObject),
      },
    },
    (req) => withOrg(ctx, req, (c) => costs(c, req.query, ctx.now().getTime())),
  );

  app.get<{ Querystring: { deployment_id: string; from?: string; to?: string; limit: number } }>(
    '/v1/costs/tags',
    {
      config: { auth: 'read', cache: true },
      schema: {
        summary: 'The tag values (across every tag key) that cost most in a window, from the raw samples (integer micro-USD)', tags: ['usage'],
        querystring: {
          type: 'object', required: ['deployment_id'], additionalProperties: false,
          properties: { deployment_id: uuid, from: dateOrTime, to: dateOrTime, limit: { type: 'integer', minimum: 1, maximum: 100, default: 10 } },
        },
        response: ok(anyObject),
      },
    },
    (req) => withOrg(ctx, req, (c) => costTags(c, req.query, ctx.now().getTime())),
  );
}
