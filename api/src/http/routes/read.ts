import type { FastifyInstance } from 'fastify';
import { KachingError, UnavailableError, type AdmissionRequest, type AdmissionResponse, type PolicyDecision } from '@kaching/contracts';
import { callerOf, withOrg, type ApiContext } from '../context.js';
import { anyObject, date, dateTime, idParams, ok, page, pageQuery, uuid } from '../schemas.js';
import * as reads from '../../routines/reads.js';
import { bottlenecks, storedLimits, utilisation } from '../../routines/limits.js';
import { effectiveLimits } from '../../routines/enforcer.js';

const R = { auth: 'read', cache: true } as const;
const depParams = { type: 'object', required: ['id'], properties: { id: uuid }, additionalProperties: false } as const;
const windowQuery = { type: 'object', properties: { from: dateTime, to: dateTime }, additionalProperties: false } as const;

export function readRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: { deployment_id?: string; from?: string; to?: string; limit: number; cursor?: string } }>(
    '/v1/usage/daily',
    {
      config: R,
      schema: {
        summary: 'Daily usage rollups', tags: ['usage'],
        querystring: { type: 'object', properties: { deployment_id: uuid, from: date, to: date, ...pageQuery }, additionalProperties: false },
        response: ok(page()),
      },
    },
    (req) => withOrg(ctx, req, (c) => reads.usageDaily(c, req.query)),
  );

  app.get<{ Querystring: { deployment_id?: string; from?: string; to?: string; agent_type?: string; limit: number; cursor?: string } }>(
    '/v1/usage/hourly',
    {
      config: R,
      schema: {
        summary: 'Hourly usage rollups per agent type', tags: ['usage'],
        querystring: {
          type: 'object',
          properties: { deployment_id: uuid, from: dateTime, to: dateTime, agent_type: { type: 'string', maxLength: 200 }, ...pageQuery },
          additionalProperties: false,
        },
        response: ok(page()),
      },
    },
    (req) => withOrg(ctx, req, (c) => reads.usageHourly(c, req.query)),
  );

  app.get<{ Querystring: { deployment_id: string; from?: string; to?: string; limit: number; cursor?: string } }>(
    '/v1/concurrency',
    {
      config: R,
      schema: {
        summary: 'Jobs running per minute, with the peak and daily peaks', tags: ['usage'],
        querystring: {
          type: 'object', required: ['deployment_id'],
          properties: { deployment_id: uuid, from: dateTime, to: dateTime, ...pageQuery, limit: { ...pageQuery.limit, maximum: 10_000, default: 1440 } },
          additionalProperties: false,
        },
        response: ok(page(anyObject, { deployment_id: uuid, from: dateTime, to: dateTime, peak: { type: ['object', 'null'] }, daily_peaks: { type: 'array' } })),
      },
    },
    (req) => withOrg(ctx, req, (c) => reads.concurrency(c, { ...req.query, now: ctx.now() })),
  );

  app.get<{ Querystring: { deployment_id: string } }>(
    '/v1/limits/effective',
    {
      config: R,
      schema: {
        summary: 'Effective limits of a deployment (license + quotas + budgets)', tags: ['limits'],
        querystring: { type: 'object', required: ['deployment_id'], properties: { deployment_id: uuid }, additionalProperties: false },
        response: ok(anyObject),
      },
    },
    async (req) => {
      const stored = await withOrg(ctx, req, (c) => storedLimits(c, req.query.deployment_id, ctx.now()));
      // only after RLS confirmed the deployment is the caller's do we ask the enforcer's view
      const effective = await effectiveLimits(ctx.pool, req.query.deployment_id, new Date());
      return { ...stored, effective };
    },
  );

  app.get<{ Querystring: { deployment_id?: string; acknowledged?: boolean; limit: number; cursor?: string } }>(
    '/v1/alerts',
    {
      config: R,
      schema: {
        summary: 'Alerts, newest first', tags: ['alerts'],
        querystring: { type: 'object', properties: { deployment_id: uuid, acknowledged: { type: 'boolean' }, ...pageQuery }, additionalProperties: false },
        response: ok(page()),
      },
    },
    (req) => withOrg(ctx, req, (c) => reads.listAlerts(c, req.query)),
  );

  app.post<{ Params: { id: string } }>(
    '/v1/alerts/:id/ack',
    { config: { auth: 'read' }, schema: { summary: 'Acknowledge an alert', tags: ['alerts'], params: idParams, response: ok(anyObject) } },
    (req) => withOrg(ctx, req, (c) => reads.ackAlert(c, req.params.id)),
  );

  app.get<{ Querystring: { deployment_id?: string; status?: string; limit: number; cursor?: string } }>(
    '/v1/suggestions',
    {
      config: R,
      schema: {
        summary: 'Upgrade and tuning suggestions, newest first', tags: ['suggestions'],
        querystring: {
          type: 'object',
          properties: { deployment_id: uuid, status: { type: 'string', enum: ['new', 'shown', 'accepted', 'dismissed'] }, ...pageQuery },
          additionalProperties: false,
        },
        response: ok(page()),
      },
    },
    (req) => withOrg(ctx, req, (c) => reads.listSuggestions(c, req.query)),
  );

  app.post<{ Params: { id: string }; Body: { status: 'shown' | 'accepted' | 'dismissed' } }>(
    '/v1/suggestions/:id',
    {
      config: { auth: 'read' },
      schema: {
        summary: 'Mark a suggestion shown, accepted or dismissed', tags: ['suggestions'], params: idParams,
        body: { type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['shown', 'accepted', 'dismissed'] } }, additionalProperties: false },
        response: ok(anyObject),
      },
    },
    (req) => withOrg(ctx, req, (c) => reads.setSuggestionStatus(c, req.params.id, req.body.status)),
  );

  app.get<{ Querystring: { deployment_id?: string; state?: 'active' | 'cleared' } }>(
    '/v1/decisions',
    {
      config: R,
      schema: {
        summary: 'Current decision per (deployment, scope), from the KV bucket', tags: ['decisions'],
        querystring: { type: 'object', properties: { deployment_id: uuid, state: { type: 'string', enum: ['active', 'cleared'] } }, additionalProperties: false },
        response: ok({ type: 'object', required: ['items'], properties: { items: { type: 'array', items: anyObject } } }),
      },
    },
    async (req) => {
      const orgId = callerOf(req).orgId;
      const deployments = await withOrg(ctx, req, async (c) => {
        if (req.query.deployment_id) return [String((await reads.requireDeployment(c, req.query.deployment_id)).deployment_id)];
        return (await c.query<{ deployment_id: string }>('select deployment_id from deployment order by deployment_id')).rows.map((r) => r.deployment_id);
      });
      const kv = await ctx.decisions();
      const items: PolicyDecision[] = [];
      for (const dep of deployments) {
        const keys: string[] = [];
        for await (const k of await kv.keys(`${dep}.>`)) keys.push(k);
        keys.sort();
        for (const k of keys) {
          const e = await kv.get(k);
          if (!e || e.operation !== 'PUT') continue;
          const d = e.json<PolicyDecision>();
          // the key prefix already selects the caller's deployments; the org check is belt and braces
          if (d.org_id !== orgId || d.deployment_id !== dep) continue;
          if (req.query.state && d.state !== req.query.state) continue;
          items.push(d);
        }
      }
      return { items };
    },
  );

  app.get('/v1/org', { config: R, schema: { summary: "The caller's organisation", tags: ['org'], response: ok(anyObject) } }, (req) =>
    withOrg(ctx, req, (c) => reads.getOrg(c)),
  );

  app.get<{ Querystring: { limit: number; cursor?: string } }>(
    '/v1/deployments',
    {
      config: R,
      schema: {
        summary: "The organisation's deployments", tags: ['drill-down'],
        querystring: { type: 'object', properties: { ...pageQuery }, additionalProperties: false },
        response: ok(page()),
      },
    },
    (req) => withOrg(ctx, req, (c) => reads.listDeployments(c, req.query)),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/deployments/:id',
    { config: R, schema: { summary: 'One deployment', tags: ['drill-down'], params: depParams, response: ok(anyObject) } },
    (req) => withOrg(ctx, req, (c) => reads.requireDeployment(c, req.params.id)),
  );

  app.get<{ Params: { id: string }; Querystring: { from?: string; to?: string; limit: number; cursor?: string } }>(
    '/v1/deployments/:id/nodes',
    {
      config: R,
      schema: {
        summary: 'Nodes of a deployment with their usage in the window (default: last 7 days)', tags: ['drill-down'], params: depParams,
        querystring: { type: 'object', properties: { from: dateTime, to: dateTime, ...pageQuery }, additionalProperties: false },
        response: ok(page()),
      },
    },
    (req) => withOrg(ctx, req, (c) => reads.listNodes(c, req.params.id, { ...req.query, now: ctx.now() })),
  );

  app.get<{ Params: { id: string }; Querystring: { from?: string; to?: string } }>(
    '/v1/deployments/:id/agent-types',
    {
      config: R,
      schema: { summary: 'Agent types of a deployment with their usage in the window', tags: ['drill-down'], params: depParams, querystring: windowQuery, response: ok(anyObject) },
    },
    (req) => withOrg(ctx, req, (c) => reads.listAgentTypes(c, req.params.id, { ...req.query, now: ctx.now() })),
  );

  app.get<{ Params: { id: string; agent_type: string }; Querystring: { from?: string; to?: string } }>(
    '/v1/deployments/:id/agent-types/:agent_type',
    {
      config: R,
      schema: {
        summary: 'One agent type: hourly series, agents and their nodes', tags: ['drill-down'],
        params: { type: 'object', required: ['id', 'agent_type'], properties: { id: uuid, agent_type: { type: 'string', minLength: 1, maxLength: 200 } }, additionalProperties: false },
        querystring: windowQuery,
        response: ok(anyObject),
      },
    },
    (req) => withOrg(ctx, req, (c) => reads.agentTypeDetail(c, req.params.id, req.params.agent_type, { ...req.query, now: ctx.now() })),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/deployments/:id/utilisation',
    {
      config: R,
      schema: { summary: 'Tier utilisation cards (seats, nodes, context, tokens, cost) with % of cap and 14-day series', tags: ['dashboard'], params: depParams, response: ok(anyObject) },
    },
    (req) => withOrg(ctx, req, (c) => utilisation(c, req.params.id, ctx.now())),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/deployments/:id/bottlenecks',
    {
      config: R,
      schema: { summary: 'How often each limit fired in the last 7 days', tags: ['dashboard'], params: depParams, response: ok({ type: 'object', properties: { items: { type: 'array' } } }) },
    },
    async (req) => ({ items: await withOrg(ctx, req, (c) => bottlenecks(c, req.params.id, ctx.now())) }),
  );

  app.post<{ Body: AdmissionRequest }>(
    '/v1/budget/check',
    {
      config: { auth: 'read' },
      schema: {
        summary: 'May this job run? Forwards to the enforcer; 402 on deny', tags: ['limits'],
        body: {
          type: 'object', required: ['deployment_id', 'scope'],
          properties: {
            deployment_id: uuid,
            scope: { type: 'string', minLength: 1, maxLength: 200 },
            estimate_units: { type: 'number', minimum: 0 },
            estimate_cost_micro_usd: { type: 'number', minimum: 0 },
            reserve_ttl_s: { type: 'integer', minimum: 0, maximum: 86_400 },
            correlation_id: { type: 'string', maxLength: 200 },
          },
          additionalProperties: false,
        },
        response: { 200: { description: 'Allowed; remaining budget', ...anyObject }, 402: { description: 'Denied (BUDGET_DENIED) with the admission answer', ...anyObject } },
      },
    },
    async (req, reply) => {
      await withOrg(ctx, req, (c) => reads.requireDeployment(c, req.body.deployment_id));
      let answer: AdmissionResponse;
      try {
        const msg = await ctx.nc.request(ctx.names.checkSubject(req.body.deployment_id), JSON.stringify(req.body), { timeout: ctx.config.admissionTimeoutMs });
        answer = msg.json<AdmissionResponse>();
      } catch (err) {
        throw new UnavailableError('STREAM_UNAVAILABLE', { message: 'The enforcer did not answer the admission check in time; retry', retryAfterS: 1, cause: err });
      }
      if (answer.allow) return answer;
      const denied = new KachingError('BUDGET_DENIED', { message: answer.reason ?? 'The job would exceed the remaining budget' });
      return reply.code(402).send({ ...denied.toBody(), admission: answer });
    },
  );
}
