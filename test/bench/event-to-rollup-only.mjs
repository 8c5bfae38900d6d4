// The event-to-rollup step of `kaching bench` alone, in a database of its own (used for A/B runs between checkouts):
//   node test/bench/event-to-rollup-only.mjs [rate=2000] [seconds=6] [per-service|all-in-one]
import { benchEventToRollup } from './dist/eventToRollup.js';
import { withScratchDatabase } from './dist/harness/scratchDb.js';

const rate = Number(process.argv[2] ?? 2000);
const seconds = Number(process.argv[3] ?? 6);
const topology = process.argv[4] ?? 'per-service';
process.env.LOG_LEVEL ??= 'warn';
const r = await withScratchDatabase('kaching_e2r', (config, suffix) =>
  benchEventToRollup({ config: { ...config, namespace: `er${suffix}` }, rate, seconds, topology, progress: () => {} }));
console.log(`${rate} events/s offered for ${seconds} s, ${topology}: p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms; ingest took ${r.achievedPerSecond} events/s (ack p99 ${r.ackP99Ms} ms)`);
