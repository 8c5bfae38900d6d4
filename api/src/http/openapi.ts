import type { FastifyInstance, RouteOptions } from 'fastify';
import { ERROR_CATALOGUE } from '@kaching/contracts';

export interface RouteSchema {
  summary?: string;
  description?: string;
  tags?: string[];
  querystring?: JsonSchema;
  params?: JsonSchema;
  body?: JsonSchema;
  response?: Record<string, JsonSchema>;
  /** Media type of the 200 answer when not JSON (text/csv, text/html, text/plain). */
  produces?: string;
  hide?: boolean;
}
type JsonSchema = Record<string, unknown>;

export interface CollectedRoute {
  method: string;
  url: string;
  auth: string;
  schema: RouteSchema;
}

/** Records every route as Fastify registers it; the OpenAPI document is built from this list. */
export function collectRoutes(app: FastifyInstance): CollectedRoute[] {
  const routes: CollectedRoute[] = [];
  app.addHook('onRoute', (r: RouteOptions) => {
    const methods = Array.isArray(r.method) ? r.method : [r.method];
    const schema = (r.schema ?? {}) as RouteSchema;
    const auth = String((r.config as { auth?: string } | undefined)?.auth ?? 'none');
    for (const m of methods) {
      if (m === 'HEAD' || schema.hide) continue;
      routes.push({ method: m, url: r.url, auth, schema });
    }
  });
  return routes;
}

const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', enum: Object.keys(ERROR_CATALOGUE) },
        message: { type: 'string' },
        field: { type: 'string' },
        rule: { type: 'string' },
        retry_after_s: { type: 'number' },
      },
    },
  },
};

function opId(method: string, url: string): string {
  const words = url
    .replace(/^\/v1\//, '')
    .split(/[/.-]/)
    .filter(Boolean)
    .map((w) => (w.startsWith(':') ? `by_${w.slice(1)}` : w));
  return [method.toLowerCase(), ...words].join('_').replace(/[^A-Za-z0-9_]/g, '_');
}

function parametersOf(schema: JsonSchema | undefined, where: 'query' | 'path'): unknown[] {
  if (!schema) return [];
  const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((schema.required as string[] | undefined) ?? []);
  return Object.entries(props).map(([name, s]) => {
    const { description, ...rest } = s;
    return { name, in: where, required: where === 'path' ? true : required.has(name), ...(description ? { description } : {}), schema: rest };
  });
}

export function buildOpenApi(routes: CollectedRoute[], info: { title: string; version: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const tags = new Set<string>();
  for (const r of routes) {
    const path = r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const s = r.schema;
    for (const t of s.tags ?? []) tags.add(t);
    const responses: Record<string, unknown> = {};
    const ok = s.response ?? {};
    for (const [status, schema] of Object.entries(ok)) {
      responses[status] = { description: String((schema as JsonSchema).description ?? 'OK'), content: { [s.produces ?? 'application/json']: { schema } } };
    }
    if (Object.keys(responses).length === 0) {
      responses['200'] = { description: 'OK', content: { [s.produces ?? 'application/json']: { schema: s.produces ? { type: 'string' } : { type: 'object' } } } };
    }
    if (r.method === 'GET' && r.auth !== 'none') responses['304'] = { description: 'Not modified (If-None-Match matched the ETag)' };
    responses['4XX'] = { description: 'Error from the catalogue', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    responses['5XX'] = { description: 'Error from the catalogue', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    const op: Record<string, unknown> = {
      operationId: opId(r.method, r.url),
      summary: s.summary ?? `${r.method} ${r.url}`,
      ...(s.description ? { description: s.description } : {}),
      tags: s.tags ?? ['meta'],
      parameters: [...parametersOf(s.params, 'path'), ...parametersOf(s.querystring, 'query')],
      responses,
      security: r.auth === 'none' ? [] : r.auth === 'page' ? [{ session: [] }] : [{ apiKey: [] }, { jwt: [] }, { session: [] }],
      'x-kaching-scope': r.auth,
    };
    if (s.body) op.requestBody = { required: true, content: { 'application/json': { schema: s.body } } };
    (paths[path] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      ...info,
      description:
        'KACHING read and admin API. Machines authenticate with `Authorization: Bearer ka_<key_id>_<secret>` (API key) or a bearer JWT from ' +
        '`POST /v1/auth/token`; people sign in at `/signin` (session cookie; writes carry the `X-CSRF-Token` header).',
    },
    servers: [{ url: '/' }],
    tags: [...tags].sort().map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'API key ka_<key_id>_<secret>' },
        jwt: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'EdDSA JWT from POST /v1/auth/token, revoked with its session' },
        session: { type: 'apiKey', in: 'cookie', name: 'kaching_session', description: 'Session cookie from /signin (__Host-kaching_session over TLS); writes need X-CSRF-Token' },
      },
      schemas: { Error: errorSchema },
    },
  };
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** A plain HTML page listing every operation of the document. */
export function docsPage(doc: Record<string, unknown>): string {
  const paths = doc.paths as Record<string, Record<string, { summary: string; tags: string[]; parameters: { name: string; in: string; required: boolean }[]; 'x-kaching-scope': string }>>;
  const rows: string[] = [];
  for (const [path, ops] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const params = op.parameters.map((p) => `<code>${esc(p.name)}</code>${p.required ? '*' : ''}`).join(' ');
      rows.push(
        `<tr><td><span class="m m-${method}">${method.toUpperCase()}</span></td><td><code>${esc(path)}</code></td><td>${esc(op.summary)}</td><td>${esc(op['x-kaching-scope'])}</td><td>${params}</td></tr>`,
      );
    }
  }
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>KACHING API</title>
<style>body{font:14px/1.5 system-ui,sans-serif;margin:2rem;color:#1f2933}table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #e4e7eb;vertical-align:top}
.m{font:600 11px monospace;padding:2px 6px;border-radius:4px;color:#fff;background:#52606d}.m-get{background:#2680c2}.m-post{background:#3f9142}.m-patch{background:#c99a2e}.m-put{background:#8d6e63}.m-delete{background:#ba2525}code{font-size:13px}</style></head>
<body><h1>KACHING API</h1><p>Machine-readable document: <a href="/openapi.json">/openapi.json</a>. Authenticate with <code>Authorization: Bearer ka_…</code>. Scope: the API key scope an operation needs.</p>
<table><thead><tr><th>Method</th><th>Path</th><th>Summary</th><th>Scope</th><th>Parameters (* required)</th></tr></thead><tbody>${rows.join('')}</tbody></table></body></html>`;
}
