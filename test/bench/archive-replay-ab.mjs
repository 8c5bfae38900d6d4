// A/B of `replay raw` from the archive alone (the stream purged) between two checkouts: the step
// benchArchiveReplay measures in the bench, run by itself over one fixture both checkouts read.
//   node test/bench/archive-replay-ab.mjs setup [jobs=16000]   fills a stream (the bench generator), projects it and
//                 archives it with the archiver (namespace A); namespace B gets A's archive and an empty, purged stream
//   node test/bench/archive-replay-ab.mjs run <repo> [stream]   replay raw with <repo>'s dist from B's archive alone
//                 (or, with `stream`, from A's stream); prints one JSON line
//   node test/bench/archive-replay-ab.mjs cleanup
// The fixture (namespace, database, archive directory) is kept in /tmp/kaching-archive-replay-ab.json.
// Alternate the two checkouts, several runs each; nothing else heavy at the same time.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';

// KACHING_AB_STATE: another fixture file (e.g. one set up with KACHING_ARCHIVE_SEGMENT_EVENTS=5000: several segments)
const STATE = process.env.KACHING_AB_STATE ?? '/tmp/kaching-archive-replay-ab.json';
const here = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const [mode, arg] = process.argv.slice(2);
const load = (repo) => ({
  req: createRequire(path.join(repo, 'package.json')),
  contracts: () => import(path.join(repo, 'contracts/dist/mod.js')),
  projector: () => import(path.join(repo, 'projector/dist/mod.js')),
  archiver: () => import(path.join(repo, 'archiver/dist/mod.js')),
});

if (mode === 'setup') {
  const jobs = Number(arg ?? 16000);
  const r = load(here);
  const contracts = await r.contracts();
  const projector = await r.projector();
  const archiver = await r.archiver();
  const pg = r.req('pg');
  const js = r.req('@nats-io/jetstream');
  const id = randomBytes(3).toString('hex');
  // A: the stream as filled and projected (the stream replay); B: the same events only in A's archive, B's stream purged
  const ns = `ab${id}a`;
  const nsArchive = `ab${id}b`;
  const db = `kaching_ab_${id}`;
  const admin = new pg.Client({ connectionString: 'postgres://root@127.0.0.1:5432/postgres' });
  await admin.connect();
  await admin.query(`create database ${db}`);
  await admin.end();
  const config = { natsUrl: 'nats://127.0.0.1:4222', databaseUrl: `postgres://root@127.0.0.1:5432/${db}`, namespace: ns, logLevel: 'warn' };
  const configArchive = { ...config, namespace: nsArchive };
  await contracts.migrate({ databaseUrl: config.databaseUrl, namespace: ns });
  await contracts.migrate({ databaseUrl: config.databaseUrl, namespace: nsArchive });
  await projector.benchProjector({ config, jobs, onProgress: (l) => console.error(l) });
  const dir = await mkdtemp(path.join(tmpdir(), 'kaching-archive-replay-ab-'));
  const env = { ...process.env, KACHING_ARCHIVE_DIR: dir, KACHING_ARCHIVE_SEGMENT_SECONDS: '1' };
  const nc = await contracts.connectNats(config.natsUrl);
  const jsm = await js.jetstreamManager(nc);
  const last = (await jsm.streams.info(contracts.names(ns).eventsStream)).state.last_seq;
  const pool = contracts.createPool({ databaseUrl: config.databaseUrl, namespace: ns, max: 1 });
  const h = await archiver.start({ ...archiver.loadConfig(env), ...config, port: 0, host: '127.0.0.1' });
  for (;;) {
    const q = await pool.query(`select max(last_seq) as s from consumer_checkpoint where consumer = 'archiver'`);
    if (Number(q.rows[0]?.s ?? 0) >= last) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  await h.close();
  for (const t of ['org', 'deployment']) await pool.query(`insert into ${nsArchive}.${t} select * from ${ns}.${t}`);
  await pool.end();
  await cp(path.join(dir, ns), path.join(dir, nsArchive), { recursive: true });
  // B's stream: empty, starting after the archived events (what the archiver's purge leaves)
  await contracts.ensureEventsStream(nc, contracts.names(nsArchive));
  await jsm.streams.purge(contracts.names(nsArchive).eventsStream, { seq: last + 1 });
  await nc.close();
  await writeFile(STATE, JSON.stringify({ ns, nsArchive, db, dir, config, configArchive, events: last }));
  console.log(JSON.stringify({ ns, nsArchive, db, dir, events: last }));
  process.exit(0);
} else if (mode === 'run') {
  const s = JSON.parse(await readFile(STATE, 'utf8'));
  const repo = path.resolve(arg);
  const r = load(repo);
  const { replay } = await r.projector();
  const { ArchiveHistory } = await r.archiver();
  // `run <repo> stream`: the same replay from A's stream (no archive read)
  const fromStream = process.argv[4] === 'stream';
  const history = fromStream ? null : ArchiveHistory.open(s.nsArchive, { ...process.env, KACHING_ARCHIVE_DIR: s.dir });
  const c0 = process.cpuUsage();
  const res = await replay(fromStream ? s.config : s.configArchive, 'raw', { history, batchSize: 2000 });
  const cpu = process.cpuUsage(c0);
  await history?.close();
  console.log(JSON.stringify({ repo, from: fromStream ? 'stream' : 'archive', events: res.events, archived: res.archived, eventsPerSecond: Math.round(res.eventsPerSecond), seconds: res.seconds, phases: res.phases, cpuSeconds: Math.round((cpu.user + cpu.system) / 1e4) / 100 }));
  process.exit(0);
} else if (mode === 'cleanup') {
  const s = JSON.parse(await readFile(STATE, 'utf8'));
  const r = load(here);
  const contracts = await r.contracts();
  const pg = r.req('pg');
  const nc = await contracts.connectNats(s.config.natsUrl);
  const js = r.req('@nats-io/jetstream');
  for (const ns of [s.ns, s.nsArchive]) await (await js.jetstreamManager(nc)).streams.delete(contracts.names(ns).eventsStream).catch(() => undefined);
  await nc.close();
  const admin = new pg.Client({ connectionString: 'postgres://root@127.0.0.1:5432/postgres' });
  await admin.connect();
  await admin.query(`drop database if exists ${s.db} with (force)`);
  await admin.end();
  await rm(s.dir, { recursive: true, force: true });
  await rm(STATE, { force: true });
  process.exit(0);
} else {
  console.error('usage: archive-replay-ab.mjs setup [jobs] | run <repo> | cleanup');
  process.exit(2);
}
