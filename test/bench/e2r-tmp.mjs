import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { baseConfig, migrate } from '@kaching/contracts';
import { benchEventToRollup } from '/work/main/test/bench/dist/eventToRollup.js';
const rate = Number(process.argv[2] ?? 2000);
const base = baseConfig();
const suffix = randomBytes(4).toString('hex');
const db = `kaching_e2r_${suffix}`;
const adminUrl = new URL(base.databaseUrl); adminUrl.pathname = '/postgres';
const admin = new pg.Client({ connectionString: adminUrl.toString() });
await admin.connect();
await admin.query(`create database ${db}`);
const url = new URL(base.databaseUrl); url.pathname = `/${db}`;
try {
  const r = await benchEventToRollup({ config: { ...base, databaseUrl: url.toString(), namespace: `er${suffix}` }, rate, seconds: 6, topology: 'per-service', progress: () => {} });
  console.log(`fill=${process.env.PROJECTOR_FILL_MS}: p50 ${r.p50Ms} p99 ${r.p99Ms} took ${r.achievedPerSecond} ackp99 ${r.ackP99Ms}`);
} finally {
  await admin.query(`drop database if exists ${db} with (force)`);
  await admin.end();
}
