// A/B of the projector's CPU per event between two checkouts (e.g. before and after the cost work: a worktree at
// 5a634a4 against main). Runs the built projector (dist/) of <repo> in this process over the bench generator's
// stream; CPU of this process (projector + pg client; Postgres apart) on a second pass over a stream already filled
// (the first pass warms up), divided by events × 3 projections; Postgres's CPU (every postgres process, /proc) beside it. Alternate the two checkouts, several pairs.
// usage: node test/bench/projector-cpu.mjs <repo> [jobs=40000]
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { readdirSync, readFileSync } from 'node:fs';

// CPU seconds of every postgres process (utime + stime from /proc, clock ticks of 10 ms).
function postgresCpuUs() {
  let ticks = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (name !== 'postgres') continue;
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {}
  }
  return ticks * 10_000;
}
const repo = process.argv[2];
const jobs = Number(process.argv[3] ?? 40000);
const req = createRequire(path.join(repo, 'package.json'));
const contracts = await import(path.join(repo, 'contracts/dist/mod.js'));
const projector = await import(path.join(repo, 'projector/dist/mod.js'));
const pg = req('pg');
const ns = `pb${randomBytes(3).toString('hex')}`;
const admin = new pg.Client({ connectionString: 'postgres://root@127.0.0.1:5432/postgres' });
await admin.connect();
const mk = async (db) => {
  await admin.query(`create database ${db}`);
  const config = { natsUrl: 'nats://127.0.0.1:4222', databaseUrl: `postgres://root@127.0.0.1:5432/${db}`, namespace: ns, logLevel: 'warn' };
  await contracts.migrate({ databaseUrl: config.databaseUrl, namespace: ns });
  const pool = contracts.createPool({ databaseUrl: config.databaseUrl, namespace: ns, max: 2 });
  if (contracts.setModelPrice) await contracts.setModelPrice(pool, { provider: 'local', model_name: 'llama3.1:70b', input_per_1m_micro_usd: '600000', output_per_1m_micro_usd: '2400000', effective_from: '2020-01-01T00:00:00Z' });
  return { config, pool };
};
const a = await mk(`kaching_pb_${ns}_a`);
const r1 = await projector.benchProjector({ config: a.config, jobs, batchSize: 1000, onProgress: () => {} });
const b = await mk(`kaching_pb_${ns}_b`);
for (const t of ['org', 'deployment']) {
  const rows = (await a.pool.query(`select * from ${t}`)).rows;
  for (const row of rows) {
    const cols = Object.keys(row);
    await b.pool.query(`insert into ${t} (${cols.join(',')}) values (${cols.map((_, i) => `$${i + 1}`).join(',')}) on conflict do nothing`, cols.map((c) => (typeof row[c] === "object" && row[c] !== null && !(row[c] instanceof Date) && !Array.isArray(row[c]) ? JSON.stringify(row[c]) : row[c])));
  }
}
const pg0 = postgresCpuUs();
const c0 = process.cpuUsage();
const t0 = Date.now();
const r2 = await projector.benchProjector({ config: b.config, jobs, batchSize: 1000, reuseStream: true, onProgress: () => {} });
const c1 = process.cpuUsage(c0);
const pgUs = postgresCpuUs() - pg0;
const secs = (Date.now() - t0) / 1000;
const n = r2.events * 3; // three projections each read every event
console.log(JSON.stringify({ repo, events: r2.events, perSecond: Object.fromEntries(Object.entries(r2.projections).map(([k, v]) => [k, Math.round(v.eventsPerSecond)])), cpuUsPerEventPerProjection: Math.round((c1.user + c1.system) / n * 10) / 10, postgresUsPerEventPerProjection: Math.round(pgUs / n * 10) / 10, seconds: secs }));
await a.pool.end(); await b.pool.end();
const nc = await contracts.connectNats('nats://127.0.0.1:4222');
const js = req('@nats-io/jetstream');
await (await js.jetstreamManager(nc)).streams.delete(contracts.names(ns).eventsStream).catch(() => {});
await nc.close();
await admin.query(`drop database kaching_pb_${ns}_a with (force)`); await admin.query(`drop database kaching_pb_${ns}_b with (force)`);
await admin.end();
process.exit(0);
