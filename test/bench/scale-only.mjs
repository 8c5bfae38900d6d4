// The scale-out step of `kaching bench` alone, in a database of its own: node test/bench/scale-only.mjs [jobs]
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { baseConfig } from '@kaching/contracts';
import { benchScale } from './dist/harness/scale.js';
import { SCALE_SHAPES } from './dist/run.js';
import { cpuText } from './dist/harness/proc.js';

const jobs = Number(process.argv[2] ?? 8_000);
const base = baseConfig();
const suffix = randomBytes(4).toString('hex');
const db = `kaching_scale_${suffix}`;
const adminUrl = new URL(base.databaseUrl);
adminUrl.pathname = '/postgres';
const admin = new pg.Client({ connectionString: adminUrl.toString() });
await admin.connect();
await admin.query(`create database ${db}`);
const url = new URL(base.databaseUrl);
url.pathname = `/${db}`;
try {
  const rows = await benchScale({ config: { ...base, databaseUrl: url.toString() }, shapes: process.env.SHAPES ? JSON.parse(process.env.SHAPES) : SCALE_SHAPES, jobs, suffix, progress: (l) => console.error(l) });
  for (const r of rows) {
    console.log(`${r.partitions} partition(s), ${r.instances} process(es): ${r.error ?? `${r.events} events, ${r.eventsPerSecond} events/s; CPU: ${cpuText(r.cpu, r.events)}; idle ${r.idlePercent?.toFixed(1)}%; ${r.meanBatch?.toFixed(0)} events/batch`}`);
  }
} finally {
  await admin.query(`drop database if exists ${db} with (force)`);
  await admin.end();
}
