import type { Command } from '@kaching/contracts';
import { writeFile } from 'node:fs/promises';
import { withScratchDatabase } from './harness/scratchDb.js';
import { FULL, QUICK, RESULTS_DIR, runBench, toMarkdown, writeResults } from './run.js';
import { profileIngestPath, type ProfiledPath } from './profileRun.js';
import type { ServiceName } from './harness/stack.js';

export const commands: Command[] = [
  {
    name: 'bench',
    summary: 'Benchmark report: ceilings and pipeline side by side; writes test/bench/results/latest.{md,json}',
    options: {
      quick: { type: 'boolean', description: 'smaller run (under 2 minutes)', default: false },
      profile: { type: 'string', description: 'instead of the report: CPU profiles (node --cpu-prof) of every service while wrk sends single|batch|signed-batch' },
      topology: { type: 'string', description: 'with --profile: per-service (default) or all-in-one', default: 'per-service' },
      seconds: { type: 'string', description: 'with --profile: how long wrk sends', default: '10' },
      services: { type: 'string', description: 'with --profile, per-service: which services run (default ingest,projector,enforcer,api)' },
    },
    async run(ctx) {
      // The services the bench starts would log every start and stop at info between the progress lines.
      process.env.LOG_LEVEL ??= 'warn';
      if (ctx.args.profile) return profile(String(ctx.args.profile), String(ctx.args.topology), Number(ctx.args.seconds), ctx.args.services ? String(ctx.args.services).split(',') : undefined, (l) => ctx.progress(l));
      const mode = ctx.args.quick ? 'quick' : 'full';
      const result = await runBench(ctx.args.quick ? QUICK : FULL, (l) => ctx.progress(l));
      const md = toMarkdown(result, mode);
      const files = await writeResults(md, { mode, at: new Date().toISOString(), ...result });
      return { data: { mode, ...result, files }, text: `${md}\nwritten: ${files.join(', ')}` };
    },
  },
];

async function profile(which: string, topology: string, seconds: number, services: string[] | undefined, progress: (l: string) => void) {
  if (!['single', 'batch', 'signed-batch'].includes(which)) throw new Error('--profile takes single, batch or signed-batch');
  if (topology !== 'per-service' && topology !== 'all-in-one') throw new Error('--topology takes per-service or all-in-one');
  return withScratchDatabase('kaching_profile', async (config, suffix) => {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const outDir = `${RESULTS_DIR}profiles/${stamp}`;
    const r = await profileIngestPath({ config, namespace: `pf${suffix}`, path: which as ProfiledPath, topology, seconds, ...(services ? { services: services as ServiceName[] } : {}), outDir, progress });
    await writeFile(`${outDir}/summary.txt`, r.text + '\n');
    return { data: r, text: `${r.text}\n\nprofiles and summary: ${outDir}` };
  });
}
