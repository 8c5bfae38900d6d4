// The event-to-rollup step of `kaching bench` alone, in a database of its own (used for A/B runs between checkouts):
//   node test/bench/event-to-rollup-only.mjs [rate=2000] [seconds=6] [per-service|all-in-one]
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { baseConfig } from '@kaching/contracts';
import { benchEventToRollup } from './dist/eventToRollup.js';

const rate = Number(process.argv[2] ?? 2000);
const seconds = Number(process.argv[3] ?? 6);
const topology = process.argv[4] ?? 'per-service';
process.env.LOG_LEVEL ??= 'warn';
const base = baseConfig();
const suffix = randomBytes(4).toString('hex');
const db = `kaching_e2r_${suffix}`;
const adminUrl = new URL(base.databaseUrl);
adminUrl.pathname = '/postgres';
const admin = new pg.Client({ connectionString: adminUrl.toString() });
await admin.connect();
await admin.query(`create database ${db}`);
const url = new URL(base.databaseUrl);
url.pathname = `/${db}`;
try {
  const r = await benchEventToRollup({ config: { ...base, databaseUrl: url.toString(), namespace: `er${suffix}` }, rate, seconds, topology, progress: () => {} });
  console.log(`${rate} events/s offered for ${seconds} s, ${topology}: p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms; ingest took ${r.achievedPerSecond} events/s (ack p99 ${r.ackP99Ms} ms)`);
} finally {
  await admin.query(`drop database if exists ${db} with (force)`);
  await admin.end();
}
