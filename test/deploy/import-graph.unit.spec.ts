import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The package layering, checked on the sources: the API and the contracts library never reach a service
// (ingest, enforcer, projector, hq, or the deploy tooling), and the agent SDK reaches no server package at all.
// A service import would make the API load that service's runtime (Fastify plugins, sodium-native, ...).

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SERVICES = ['@kaching/ingest', '@kaching/enforcer', '@kaching/projector', '@kaching/hq', 'deploy'];

interface Pkg {
  name: string;
  dir: string;
  /** Source roots walked for imports. */
  src: string[];
  /** Declared dependencies (package.json). */
  deps: string[];
}

function readJson(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
}

function loadPackages(): Map<string, Pkg> {
  const pkgs = new Map<string, Pkg>();
  for (const ws of readJson(path.join(ROOT, 'package.json')).workspaces as string[]) {
    const dir = path.join(ROOT, ws);
    const pj = readJson(path.join(dir, 'package.json'));
    const src = [path.join(dir, 'src')];
    if (ws === 'api') src.push(path.join(dir, 'web', 'src')); // the dashboard ships with the API
    pkgs.set(pj.name as string, { name: pj.name as string, dir, src, deps: Object.keys((pj.dependencies as object) ?? {}) });
  }
  pkgs.set('deploy', { name: 'deploy', dir: path.join(ROOT, 'deploy'), src: [path.join(ROOT, 'deploy', 'src')], deps: [] });
  return pkgs;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(ts|tsx|mts|js|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Every module specifier a file names: static imports and re-exports, side-effect imports, import(), require(). */
function specifiers(code: string): string[] {
  const res = [
    /\b(?:import|export)\s[^;'"`]*?\sfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  const out = new Set<string>();
  for (const re of res) for (const m of code.matchAll(re)) out.add(m[1]!);
  return [...out];
}

/** Which workspace package a specifier (from `file`) lands in; null for third-party and node: modules. */
function owner(spec: string, file: string, pkgs: Map<string, Pkg>): string | null {
  if (spec.startsWith('.')) {
    const target = path.resolve(path.dirname(file), spec);
    // the deepest package dir wins (ingest/sdk is inside ingest)
    let best: Pkg | null = null;
    for (const p of pkgs.values()) if (target.startsWith(p.dir + path.sep) && (!best || p.dir.length > best.dir.length)) best = p;
    return best?.name ?? null;
  }
  const m = /^(@kaching\/[^/]+)/.exec(spec);
  return m ? m[1]! : null;
}

interface Graph {
  /** package → workspace packages its sources import */
  edges: Map<string, Set<string>>;
  /** package → third-party modules its sources import */
  external: Map<string, Set<string>>;
  /** package → its cross-package imports (file, specifier, package reached), for failure messages */
  where: Map<string, { file: string; spec: string; to: string }[]>;
}

function buildGraph(pkgs: Map<string, Pkg>): Graph {
  const g: Graph = { edges: new Map(), external: new Map(), where: new Map() };
  for (const p of pkgs.values()) {
    const edges = new Set<string>();
    const external = new Set<string>();
    const where: { file: string; spec: string; to: string }[] = [];
    for (const root of p.src) {
      for (const file of sourceFiles(root)) {
        // ingest's sources are walked from ingest/src, which does not contain ingest/sdk
        for (const spec of specifiers(readFileSync(file, 'utf8'))) {
          const o = owner(spec, file, pkgs);
          if (o === null) {
            if (!spec.startsWith('.') && !spec.startsWith('node:')) external.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
          } else if (o !== p.name) {
            edges.add(o);
            where.push({ file: path.relative(ROOT, file), spec, to: o });
          }
        }
      }
    }
    g.edges.set(p.name, edges);
    g.external.set(p.name, external);
    g.where.set(p.name, where);
  }
  return g;
}

/** The packages `from` reaches through imports, itself excluded, each with the path that reaches it. */
function reach(g: Graph, from: string): Map<string, string[]> {
  const seen = new Map<string, string[]>([[from, [from]]]);
  const queue = [from];
  while (queue.length) {
    const cur = queue.shift()!;
    for (const next of g.edges.get(cur) ?? []) {
      if (seen.has(next)) continue;
      seen.set(next, [...seen.get(cur)!, next]);
      queue.push(next);
    }
  }
  seen.delete(from);
  return seen;
}

const pkgs = loadPackages();
const graph = buildGraph(pkgs);

function servicesReached(from: string): string[] {
  const r = reach(graph, from);
  return SERVICES.filter((s) => r.has(s)).map((s) => {
    const chain = r.get(s)!;
    const via = graph.where.get(chain.at(-2)!)!.filter((w) => w.to === s).map((w) => `${w.file} imports '${w.spec}'`);
    return `${chain.join(' → ')}: ${via.join('; ')}`;
  });
}

describe('import graph', () => {
  it('finds every kind of import (so the checks below cannot pass vacuously)', () => {
    const code = [
      "import { a,\n  b } from '@kaching/one';",
      "import type { T } from '../two.js';",
      "export * from './three.js';",
      "import './four.js';",
      "const m = await import('@kaching/five');",
      "const n = require('six');",
    ].join('\n');
    expect(specifiers(code).sort()).toEqual(['../two.js', './four.js', './three.js', '@kaching/five', '@kaching/one', 'six'].sort());
    expect(graph.edges.get('@kaching/api')).toContain('@kaching/contracts');
    expect(graph.edges.get('@kaching/ingest')).toContain('@kaching/contracts');
    expect(graph.edges.get('deploy')).toContain('@kaching/ingest');
  });

  it('the API (src and web) reaches no service package, directly or through a library', () => {
    expect(servicesReached('@kaching/api')).toEqual([]);
  });

  it('the API does not declare a service dependency or a tsconfig reference to one', () => {
    const api = pkgs.get('@kaching/api')!;
    expect(api.deps.filter((d) => SERVICES.includes(d))).toEqual([]);
    const refs = ((readJson(path.join(api.dir, 'tsconfig.json')).references as { path: string }[]) ?? []).map((r) => path.resolve(api.dir, r.path));
    const serviceDirs = SERVICES.map((s) => pkgs.get(s)!.dir);
    expect(refs.filter((r) => serviceDirs.includes(r))).toEqual([]);
  });

  it("nothing the API reaches loads ingest's native crypto (sodium-native)", () => {
    const within = ['@kaching/api', ...reach(graph, '@kaching/api').keys()];
    expect(within.filter((p) => graph.external.get(p)?.has('sodium-native') || pkgs.get(p)?.deps.includes('sodium-native'))).toEqual([]);
  });

  it('contracts, the shared library, reaches no service package', () => {
    expect(servicesReached('@kaching/contracts')).toEqual([]);
    expect(pkgs.get('@kaching/contracts')!.deps.filter((d) => SERVICES.includes(d))).toEqual([]);
  });

  it('the agent SDK imports no other KACHING package and nothing beyond Node.js and its peer NATS client', () => {
    expect([...graph.edges.get('@kaching/sdk')!]).toEqual([]);
    expect(graph.where.get('@kaching/sdk')).toEqual([]);
    expect([...graph.external.get('@kaching/sdk')!].filter((m) => m !== '@nats-io/transport-node')).toEqual([]);
    expect(pkgs.get('@kaching/sdk')!.deps).toEqual([]);
  });
});
