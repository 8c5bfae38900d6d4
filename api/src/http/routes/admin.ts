import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { InputError, isTagScope, LIMITABLE_METRICS, parseTagScope } from '@kaching/contracts';
import { callerOf, configChanged, withOrg, type ApiContext } from '../context.js';
import { anyObject, dateTime, idParams, ok, page, pageQuery, period, uuid } from '../schemas.js';
import * as admin from '../../routines/admin.js';
import { requireDeployment } from '../../routines/reads.js';
import { insertDeployment, type NewDeployment } from '../../routines/orgs.js';
import { activateLicense } from '../../routines/enforcer.js';
import { republishFeatures } from './features.js';

const A = { auth: 'admin' } as const;
const OP = { auth: 'operator' } as const;
const name = { type: 'string', minLength: 1, maxLength: 200 } as const;
const limitValue = { anyOf: [{ type: 'number', minimum: 0 }, { type: 'string', pattern: '^[0-9]{1,18}(\\.[0-9]{1,6})?$' }] } as const;
// only metrics the enforcer can measure: a typo would otherwise be a limit that never fires
const metric = { type: 'string', enum: [...LIMITABLE_METRICS] } as const;
const depQuery = { type: 'object', required: ['deployment_id'], properties: { deployment_id: uuid, ...pageQuery }, additionalProperties: false } as const;
const deploymentBody = {
  name,
  timezone: { type: 'string', minLength: 1, maxLength: 64 },
  enforcement: { type: 'string', enum: ['soft', 'hard'] },
  redact_segments: { type: 'array', maxItems: 50, items: { type: 'string', minLength: 1, maxLength: 100 } },
} as const;

export function adminRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.post<{ Body: NewDeployment }>(
    '/v1/deployments',
    {
      config: A,
      schema: {
        summary: "Create a deployment in the caller's organisation", tags: ['admin'],
        body: { type: 'object', required: ['name'], properties: deploymentBody, additionalProperties: false },
        response: { 201: { description: 'Created', ...anyObject } },
      },
    },
    async (req, reply) => {
      const d = await withOrg(ctx, req, (c) => insertDeployment(c, callerOf(req).orgId, req.body));
      configChanged(ctx, { deployment_id: String(d.deployment_id), kind: 'deployment', id: String(d.deployment_id) });
      return reply.code(201).send(d);
    },
  );

  app.patch<{ Params: { id: string }; Body: Partial<NewDeployment> }>(
    '/v1/deployments/:id',
    {
      config: A,
      schema: {
        summary: 'Change a deployment (name, time zone, enforcement, redaction)', tags: ['admin'], params: idParams,
        body: { type: 'object', minProperties: 1, properties: deploymentBody, additionalProperties: false },
        response: ok(anyObject),
      },
    },
    async (req) => {
      const d = await withOrg(ctx, req, (c) => admin.patchDeployment(c, req.params.id, req.body));
      configChanged(ctx, { deployment_id: req.params.id, kind: 'deployment', id: req.params.id });
      return d;
    },
  );

  app.patch<{ Params: { id: string; node_id: string }; Body: { labels?: Record<string, string>; hw_class?: string } }>(
    '/v1/deployments/:id/nodes/:node_id',
    {
      config: A,
      schema: {
        summary: "Label a deployment's node", tags: ['admin'],
        params: { type: 'object', required: ['id', 'node_id'], properties: { id: uuid, node_id: uuid }, additionalProperties: false },
        body: {
          type: 'object', minProperties: 1, additionalProperties: false,
          properties: { labels: { type: 'object', maxProperties: 50, additionalProperties: { type: 'string', maxLength: 200 } }, hw_class: { type: 'string', maxLength: 100 } },
        },
        response: ok(anyObject),
      },
    },
    async (req) => {
      const n = await withOrg(ctx, req, (c) => admin.patchNode(c, req.params.id, req.params.node_id, req.body));
      configChanged(ctx, { deployment_id: req.params.id, kind: 'deployment', id: req.params.node_id });
      return n;
    },
  );

  app.post<{ Body: admin.QuotaInput }>(
    '/v1/quota',
    {
      config: A,
      schema: {
        summary: 'Create or replace a quota (by deployment and name)', tags: ['admin'],
        body: {
          type: 'object', required: ['deployment_id', 'name', 'metric', 'period'], additionalProperties: false,
          properties: { deployment_id: uuid, name, metric, period, hard_limit: limitValue, soft_threshold: limitValue },
        },
        response: ok(anyObject),
      },
    },
    async (req) => {
      const q = await withOrg(ctx, req, (c) => admin.upsertQuota(c, callerOf(req).orgId, req.body));
      configChanged(ctx, { deployment_id: req.body.deployment_id, kind: 'quota', id: String(q.quota_id) });
      return q;
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/quota/:id',
    { config: A, schema: { summary: 'Delete a quota', tags: ['admin'], params: idParams, response: ok(anyObject) } },
    async (req) => {
      const r = await withOrg(ctx, req, (c) => admin.deleteRow(c, 'quota', req.params.id));
      configChanged(ctx, { deployment_id: String(r.deployment_id), kind: 'quota', id: req.params.id });
      return { deleted: true, ...r };
    },
  );

  app.post<{ Body: admin.BudgetInput }>(
    '/v1/budget',
    {
      config: A,
      schema: {
        summary: 'Create or replace a budget (by deployment and scope)', tags: ['admin'],
        body: {
          type: 'object', required: ['deployment_id', 'scope', 'metric', 'period', 'limit_units', 'action'], additionalProperties: false,
          properties: {
            deployment_id: uuid, scope: name, metric, period, limit_units: limitValue,
            action: { type: 'string', enum: ['warn', 'throttle', 'block', 'fallback_model'] },
            action_params: {
              type: 'object', additionalProperties: false,
              properties: { max_concurrency: { type: 'integer', minimum: 0, maximum: 100_000 }, model: { type: 'string', minLength: 1, maxLength: 200 } },
            },
          },
        },
        response: ok(anyObject),
      },
    },
    async (req) => {
      if (isTagScope(req.body.scope) && !parseTagScope(req.body.scope)) {
        throw new InputError('FIELD_FORMAT', { field: 'scope', rule: 'tag:<key>=<value>', message: 'A tag-scoped budget is tag:<key>=<value>, the key as event tags have it (^[a-z][a-z0-9_.-]{0,63}$)' });
      }
      const b = await withOrg(ctx, req, (c) => admin.upsertBudget(c, callerOf(req).orgId, req.body));
      configChanged(ctx, { deployment_id: req.body.deployment_id, kind: 'budget', id: String(b.budget_id) });
      return b;
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/budget/:id',
    { config: A, schema: { summary: 'Delete a budget', tags: ['admin'], params: idParams, response: ok(anyObject) } },
    async (req) => {
      const r = await withOrg(ctx, req, (c) => admin.deleteRow(c, 'budget', req.params.id));
      configChanged(ctx, { deployment_id: String(r.deployment_id), kind: 'budget', id: req.params.id });
      return { deleted: true, ...r };
    },
  );

  app.post<{ Body: { license: string; deployment_id?: string } }>(
    '/v1/license/activate',
    {
      config: A,
      schema: {
        summary: 'Verify a vendor-signed license against the configured public key and activate it', tags: ['admin'],
        body: {
          type: 'object', required: ['license'], additionalProperties: false,
          properties: { license: { type: 'string', minLength: 1, maxLength: 65_536 }, deployment_id: uuid },
        },
        response: ok(anyObject),
      },
    },
    async (req) => {
      const orgId = callerOf(req).orgId;
      const r = await withOrg(ctx, req, async (c) => {
        if (req.body.deployment_id) await requireDeployment(c, req.body.deployment_id);
        return activateLicense({ query: c.query.bind(c) } as unknown as pg.Pool, orgId, req.body.license, ctx.config.licensePublicKey, req.body.deployment_id);
      });
      const targets = r.deployment_id
        ? [r.deployment_id]
        : await withOrg(ctx, req, async (c) => (await c.query<{ deployment_id: string }>('select deployment_id from deployment')).rows.map((x) => x.deployment_id));
      for (const d of targets) configChanged(ctx, { deployment_id: d, kind: 'license', id: r.license_id });
      const features_published = await republishFeatures(ctx, req.log, orgId, targets, 'license');
      return { activated: true, ...r, features_published };
    },
  );

  app.get<{ Querystring: { deployment_id: string; limit: number; cursor?: string } }>(
    '/v1/tokens',
    { config: A, schema: { summary: 'Ingest tokens of a deployment (never the secrets)', tags: ['admin'], querystring: depQuery, response: ok(page()) } },
    (req) => withOrg(ctx, req, (c) => admin.listTokens(c, req.query.deployment_id, req.query)),
  );

  app.post<{ Body: admin.TokenAction }>(
    '/v1/tokens',
    {
      config: A,
      schema: {
        summary: 'Issue, rotate or revoke an ingest token (the token is shown once)', tags: ['admin'],
        body: {
          type: 'object', required: ['action'], additionalProperties: false,
          properties: {
            action: { type: 'string', enum: ['issue', 'rotate', 'revoke'] },
            deployment_id: uuid, token_id: uuid,
            scopes: { type: 'array', minItems: 1, maxItems: 5, items: { type: 'string', maxLength: 50 } },
            expires_at: dateTime, label: { type: 'string', maxLength: 200 },
            grace_s: { type: 'integer', minimum: 0, maximum: 30 * 86_400 },
          },
        },
        response: ok(anyObject),
      },
    },
    async (req) => {
      const r = await withOrg(ctx, req, (c) => admin.tokenAction(c, req.body));
      configChanged(ctx, { deployment_id: r.deployment_id, kind: 'token', id: String(r.result.token_id) });
      return r.result;
    },
  );

  app.get<{ Querystring: { deployment_id: string } }>(
    '/v1/cert-bindings',
    {
      config: A,
      schema: {
        summary: "Client certificates bound to a deployment's ingest tokens (mTLS), removed ones included", tags: ['admin'],
        querystring: { type: 'object', required: ['deployment_id'], properties: { deployment_id: uuid }, additionalProperties: false },
        response: ok({ type: 'object', properties: { items: { type: 'array', items: anyObject } }, additionalProperties: true }),
      },
    },
    async (req) => ({ items: await withOrg(ctx, req, (c) => admin.listCertBindingsOf(c, req.query.deployment_id)) }),
  );

  app.post<{ Body: admin.CertBindingAction }>(
    '/v1/cert-bindings',
    {
      config: A,
      schema: {
        summary: "Bind a client certificate (SHA-256 fingerprint, PEM, or subject name) to a deployment's ingest tokens, or unbind it", tags: ['admin'],
        body: {
          type: 'object', required: ['action'], additionalProperties: false,
          properties: {
            action: { type: 'string', enum: ['bind', 'unbind'] }, deployment_id: uuid, binding_id: uuid,
            fingerprint: { type: 'string', maxLength: 120 }, cert_pem: { type: 'string', maxLength: 16_384 },
            subject: { type: 'string', minLength: 1, maxLength: 255 }, label: { type: 'string', maxLength: 200 },
          },
        },
        response: ok(anyObject),
      },
    },
    async (req) => {
      const r = await withOrg(ctx, req, (c) => admin.certBindingAction(c, req.body));
      configChanged(ctx, { deployment_id: r.deployment_id, kind: 'cert', id: String(r.result.binding_id) });
      return r.result;
    },
  );

  app.get<{ Querystring: { deployment_id: string; limit: number; cursor?: string } }>(
    '/v1/keys',
    { config: A, schema: { summary: 'Agent signing keys of a deployment', tags: ['admin'], querystring: depQuery, response: ok(page()) } },
    (req) => withOrg(ctx, req, (c) => admin.listKeys(c, req.query.deployment_id, req.query)),
  );

  app.post<{ Body: admin.KeyAction }>(
    '/v1/keys',
    {
      config: A,
      schema: {
        summary: 'Register or revoke an agent signing key (raw 32-byte Ed25519 public key, base64; valid_from defaults to now minus INGEST_MAX_AGE_MS)', tags: ['admin'],
        body: {
          type: 'object', required: ['action', 'deployment_id', 'key_id'], additionalProperties: false,
          properties: {
            action: { type: 'string', enum: ['register', 'revoke'] }, deployment_id: uuid,
            key_id: { type: 'string', minLength: 1, maxLength: 128 }, public_key: { type: 'string', maxLength: 100 },
            valid_from: dateTime, valid_to: dateTime,
            reason: { type: 'string', enum: ['compromise', 'superseded'], description: 'revoke only. compromise (default): refuse everything the key signed; superseded: keep accepting reports made before the revocation' },
          },
        },
        response: ok(anyObject),
      },
    },
    async (req) => {
      const r = await withOrg(ctx, req, (c) => admin.keyAction(c, req.body, ctx.config.keyInFlightMs));
      configChanged(ctx, { deployment_id: req.body.deployment_id, kind: 'key', id: req.body.key_id });
      return r;
    },
  );

  app.get('/v1/plans', { config: { auth: 'read', cache: true }, schema: { summary: 'The plan ladder', tags: ['plans'], response: ok({ type: 'object', properties: { items: { type: 'array' } } }) } }, async () => ({
    items: await admin.listPlans(ctx.pool),
  }));

  app.put<{ Params: { plan_id: string }; Body: { name: string; rank: number; meta?: Record<string, unknown> } }>(
    '/v1/plans/:plan_id',
    {
      config: OP,
      schema: {
        summary: 'Create or replace a plan of the ladder (installation-wide; operator scope)', tags: ['plans'],
        params: { type: 'object', required: ['plan_id'], properties: { plan_id: { type: 'string', pattern: '^[a-z0-9_-]{1,50}$' } }, additionalProperties: false },
        body: { type: 'object', required: ['name', 'rank'], additionalProperties: false, properties: { name, rank: { type: 'integer', minimum: 0, maximum: 1000 }, meta: anyObject } },
        response: ok(anyObject),
      },
    },
    async (req) => {
      const p = await admin.upsertPlan(ctx.pool, { plan_id: req.params.plan_id, ...req.body });
      for (const d of await admin.allDeploymentIds(ctx.pool)) configChanged(ctx, { deployment_id: d, kind: 'plan', id: req.params.plan_id });
      return p;
    },
  );
}
