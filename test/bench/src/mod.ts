import type { Command } from '@kaching/contracts';
import { FULL, QUICK, runBench, toMarkdown, writeResults } from './run.js';

export const commands: Command[] = [
  {
    name: 'bench',
    summary: 'Benchmark report: ceilings and pipeline side by side; writes test/bench/results/latest.{md,json}',
    options: { quick: { type: 'boolean', description: 'smaller run (under 2 minutes)', default: false } },
    async run(ctx) {
      // The services the bench starts would log every start and stop at info between the progress lines.
      process.env.LOG_LEVEL ??= 'warn';
      const mode = ctx.args.quick ? 'quick' : 'full';
      const result = await runBench(ctx.args.quick ? QUICK : FULL, (l) => ctx.progress(l));
      const md = toMarkdown(result, mode);
      const files = await writeResults(md, { mode, at: new Date().toISOString(), ...result });
      return { data: { mode, ...result, files }, text: `${md}\nwritten: ${files.join(', ')}` };
    },
  },
];
