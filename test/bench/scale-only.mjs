// The scale-out step of `kaching bench` alone, in a database of its own: node test/bench/scale-only.mjs [jobs]
// SHAPES='[{"partitions":4,"instances":1}]' picks the shapes (default: the bench's).
import { benchScale } from './dist/harness/scale.js';
import { withScratchDatabase } from './dist/harness/scratchDb.js';
import { SCALE_SHAPES } from './dist/run.js';
import { cpuText } from './dist/harness/proc.js';

const jobs = Number(process.argv[2] ?? 8_000);
const shapes = process.env.SHAPES ? JSON.parse(process.env.SHAPES) : SCALE_SHAPES;
const rows = await withScratchDatabase('kaching_scale', (config, suffix) => benchScale({ config, shapes, jobs, suffix, progress: (l) => console.error(l) }));
for (const r of rows) {
  console.log(`${r.partitions} partition(s), ${r.instances} process(es): ${r.error ?? `${r.events} events, ${r.eventsPerSecond} events/s; CPU: ${cpuText(r.cpu, r.events)}; idle ${r.idlePercent?.toFixed(1)}%; ${r.meanBatch?.toFixed(0)} events/batch`}`);
}
