import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { asOrg, effectiveFeatures, KachingError, publishFeatures, removeFlag, setFlag, upsellReport, FLAG_NAME_RULE } from '@kaching/contracts';
import { callerOf, configChanged, withOrg, type ApiContext } from '../context.js';
import { anyObject, ok, uuid } from '../schemas.js';
import { requireDeployment } from '../../routines/reads.js';
import { hasScope } from '../../routines/apikeys.js';

const flagParams = {
  type: 'object', required: ['id', 'flag'], additionalProperties: false,
  properties: { id: uuid, flag: { type: 'string', pattern: FLAG_NAME_RULE.source } },
} as const;

/**
 * Puts the deployments' effective features into the KV bucket (after the write committed) and tells the
 * enforcer. A NATS failure does not undo the write: the answer says published: false.
 */
export async function republishFeatures(ctx: ApiContext, log: FastifyBaseLogger, orgId: string, deploymentIds: string[], kind: 'feature_flag' | 'license'): Promise<boolean> {
  try {
    const kv = await ctx.featuresKv();
    for (const d of deploymentIds) {
      await asOrg(ctx.pool, orgId, (c) => publishFeatures(c, kv, ctx.names, d, ctx.now()));
      // the license route announces its own change
      if (kind === 'feature_flag') configChanged(ctx, { deployment_id: d, kind });
    }
    return true;
  } catch (e) {
    log.warn({ err: (e as Error).message }, 'effective features not published');
    return false;
  }
}

export function featureRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: { deployment_id: string } }>(
    '/v1/features',
    {
      config: { auth: 'read' },
      schema: {
        summary: "A deployment's effective features: the license in force merged with its flags (also in KV <ns>_features, key = deployment id)", tags: ['features'],
        querystring: { type: 'object', required: ['deployment_id'], properties: { deployment_id: uuid }, additionalProperties: false },
        response: ok(anyObject),
      },
    },
    async (req) => {
      const doc = await withOrg(ctx, req, (c) => effectiveFeatures(c, req.query.deployment_id, ctx.now()));
      if (!doc) throw new KachingError('NOT_FOUND', { field: 'deployment_id', message: `No deployment ${req.query.deployment_id} in this organisation` });
      return doc;
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/deployments/:id/flags',
    {
      config: { auth: 'read' },
      schema: {
        summary: "A deployment's feature flags (effective: false when an \"on\" flag lacks the license grant and an override)", tags: ['features'],
        params: { type: 'object', required: ['id'], properties: { id: uuid }, additionalProperties: false },
        response: ok({ type: 'object', properties: { deployment_id: uuid, items: { type: 'array' } } }),
      },
    },
    async (req) => {
      const doc = await withOrg(ctx, req, async (c) => {
        await requireDeployment(c, req.params.id);
        return effectiveFeatures(c, req.params.id, ctx.now());
      });
      return { deployment_id: req.params.id, items: doc?.flags ?? [] };
    },
  );

  app.put<{ Params: { id: string; flag: string }; Body: { enabled: boolean; override?: boolean } }>(
    '/v1/deployments/:id/flags/:flag',
    {
      config: { auth: 'admin' },
      schema: {
        summary: 'Set a feature flag; switching on a feature the license does not grant needs override: true and the operator scope', tags: ['features'],
        params: flagParams,
        body: { type: 'object', required: ['enabled'], additionalProperties: false, properties: { enabled: { type: 'boolean' }, override: { type: 'boolean' } } },
        response: ok(anyObject),
      },
    },
    async (req) => {
      const caller = callerOf(req);
      const f = await withOrg(ctx, req, async (c) => {
        await requireDeployment(c, req.params.id);
        return setFlag(c, {
          deploymentId: req.params.id, flag: req.params.flag, enabled: req.body.enabled, override: req.body.override === true,
          operator: hasScope(caller, 'operator'), by: caller.keyId ? `api_key:${caller.keyId}` : `user:${caller.userId ?? 'unknown'}`, now: ctx.now(),
        });
      });
      const published = await republishFeatures(ctx, req.log, caller.orgId, [req.params.id], 'feature_flag');
      return { deployment_id: req.params.id, ...f, published };
    },
  );

  app.delete<{ Params: { id: string; flag: string } }>(
    '/v1/deployments/:id/flags/:flag',
    { config: { auth: 'admin' }, schema: { summary: "Remove a feature flag (the license's value applies again)", tags: ['features'], params: flagParams, response: ok(anyObject) } },
    async (req) => {
      const caller = callerOf(req);
      await withOrg(ctx, req, async (c) => {
        await requireDeployment(c, req.params.id);
        await removeFlag(c, req.params.id, req.params.flag);
      });
      const published = await republishFeatures(ctx, req.log, caller.orgId, [req.params.id], 'feature_flag');
      return { deleted: true, deployment_id: req.params.id, flag: req.params.flag, published };
    },
  );

  app.get<{ Querystring: { days: number; limit: number } }>(
    '/v1/upsell',
    {
      config: { auth: 'operator' },
      schema: {
        summary: 'Who to upsell this week: deployments of every org ranked by near-limit alerts in the last days, with the suggested upgrade (operator scope)', tags: ['features'],
        querystring: {
          type: 'object', additionalProperties: false,
          properties: { days: { type: 'integer', minimum: 1, maximum: 90, default: 7 }, limit: { type: 'integer', minimum: 1, maximum: 100, default: 25 } },
        },
        response: ok({ type: 'object', properties: { window: anyObject, items: { type: 'array' } } }),
      },
    },
    async (req) => upsellReport(ctx.pool, ctx.now(), { days: req.query.days, limit: req.query.limit }),
  );
}
