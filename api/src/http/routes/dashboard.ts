import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

/** api/web: the dashboard's TypeScript modules, compiled by `tsc -b` into web/dist, and its static page. */
const WEB = fileURLToPath(new URL('../../../web/', import.meta.url));

const TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

/** uPlot (MIT, leeoniya/uPlot): the cost chart. Its ES module build; the web code imports ./vendor/uplot.js. */
const UPLOT = path.join(path.dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');
const VENDOR: [string, string][] = [
  ['vendor/uplot.js', path.join(UPLOT, 'uPlot.esm.js')],
  ['vendor/uplot.css', path.join(UPLOT, 'uPlot.min.css')],
];

/** Every file the dashboard may load, read once at start: /ui/<path> → body and type. Nothing else is served. */
function loadAssets(): Map<string, { body: Buffer; type: string }> {
  const assets = new Map<string, { body: Buffer; type: string }>();
  const add = (dir: string, base = '') => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const rel = base ? `${base}/${e.name}` : e.name;
      if (e.isDirectory()) add(path.join(dir, e.name), rel);
      else if (TYPES[path.extname(e.name)]) assets.set(rel, { body: readFileSync(path.join(dir, e.name)), type: TYPES[path.extname(e.name)]! });
    }
  };
  add(path.join(WEB, 'dist'));
  add(path.join(WEB, 'static'));
  // third-party code the dashboard loads, served from this origin out of node_modules (never a CDN)
  for (const [rel, file] of VENDOR) assets.set(rel, { body: readFileSync(file), type: TYPES[path.extname(file)]! });
  return assets;
}

/** Scripts only from this origin; inline style attributes are used for bars and toggles. */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

export function registerDashboard(app: FastifyInstance): void {
  const page = readFileSync(path.join(WEB, 'static', 'index.html'));
  const assets = loadAssets();
  const text = (produces: string) => ({ produces, response: { 200: { description: 'OK', type: 'string' } } });
  app.get('/', { config: { auth: 'page' }, schema: { summary: 'Dashboard (HTML); without a session it redirects to /signin', tags: ['dashboard'], ...text('text/html') } }, async (_req, reply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').header('content-security-policy', CSP).send(page),
  );
  // The dashboard's code holds no data: it is public, like any static asset (the API it calls is not).
  app.get<{ Params: { '*': string } }>(
    '/ui/*',
    { config: { auth: 'none' }, schema: { summary: "The dashboard's ES modules and stylesheet", tags: ['dashboard'], ...text('text/javascript') } },
    async (req, reply) => {
      const a = assets.get(req.params['*']);
      if (!a) return reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no dashboard asset ${req.params['*']}` } });
      return reply.type(a.type).header('cache-control', 'no-cache').send(a.body);
    },
  );
}
