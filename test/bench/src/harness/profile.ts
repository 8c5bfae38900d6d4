import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/** A V8 .cpuprofile (what `node --cpu-prof` writes at exit). */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  /** Sampled CPU time (ms). */
  totalMs: number;
  /** Self time by function, highest first. */
  functions: { name: string; where: string; ms: number; share: number }[];
  /** Self time by where the code lives: a package under node_modules, a KACHING package, node internals, GC. */
  areas: { area: string; ms: number; share: number }[];
}

/**
 * Self time per function and per area from a .cpuprofile: each sample's time delta is charged to the node it
 * landed in. Idle samples ("(idle)", "(program)") are left out of the total: the figure is CPU, not wall.
 * `window` keeps only samples taken in it: V8 stamps samples with the monotonic clock (CLOCK_MONOTONIC on
 * Linux), the one process.hrtime reads in any process, so the load generator's start and end cut the profile
 * to the steady run, without the service's start-up.
 */
export async function summariseProfile(file: string, window?: { fromUs: number; toUs: number }, top = 25): Promise<ProfileSummary> {
  const p = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (window && (t < window.fromUs || t > window.toUs)) continue;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const fns = new Map<string, { name: string; where: string; us: number }>();
  const areas = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    if (cf.functionName === '(idle)' || cf.functionName === '(program)') continue;
    total += us;
    const where = cf.url ? `${shortUrl(cf.url)}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName}@${where}`;
    const f = fns.get(key) ?? { name: cf.functionName || '(anonymous)', where, us: 0 };
    f.us += us;
    fns.set(key, f);
    const area = areaOf(cf.url, cf.functionName);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const ms = (us: number) => Math.round(us / 100) / 10;
  return {
    file,
    totalMs: ms(total),
    functions: [...fns.values()].sort((a, b) => b.us - a.us).slice(0, top).map((f) => ({ name: f.name, where: f.where, ms: ms(f.us), share: f.us / total })),
    areas: [...areas.entries()].sort((a, b) => b[1] - a[1]).map(([area, us]) => ({ area, ms: ms(us), share: us / total })),
  };
}

export async function profilesIn(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(dir, f));
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const m = /\/(contracts|ingest|projector|enforcer|archiver|api|deploy|hq)\/(dist|src)\/(.*)$/.exec(url);
  return m ? `${m[1]}/${m[3]}` : url.replace(/^file:\/\//, '');
}

function areaOf(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (!url) return `native: ${fn || '?'}`;
  if (url.startsWith('node:')) return `node: ${url.slice(5).split('/')[0]}`;
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const m = /\/(contracts|ingest|projector|enforcer|archiver|api|deploy|hq)\/(dist|src)\/([^/]+)/.exec(url);
  return m ? `kaching ${m[1]}/${m[3]!.replace(/\.js$/, '')}` : url;
}

export function profileText(s: ProfileSummary, events: number): string {
  const us = (ms: number) => ((ms * 1000) / events).toFixed(1);
  const lines = [`${path.basename(s.file)}: ${s.totalMs} ms CPU sampled, ${us(s.totalMs)} µs/event`, '  by area:'];
  for (const a of s.areas.slice(0, 15)) lines.push(`    ${(a.share * 100).toFixed(1).padStart(5)}%  ${us(a.ms).padStart(7)} µs/event  ${a.area}`);
  lines.push('  by function (self):');
  for (const f of s.functions) lines.push(`    ${(f.share * 100).toFixed(1).padStart(5)}%  ${us(f.ms).padStart(7)} µs/event  ${f.name}  ${f.where}`);
  return lines.join('\n');
}
