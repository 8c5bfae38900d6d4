// A JetStream cluster of N nats-server processes on one host, for trying KACHING on a cluster and for the
// cluster fault tests: each node listens on its own client, route and monitoring port and keeps its own store.
// Plain Node ESM (no build step), used by `node deploy/services.mjs ensure --nats-cluster N` and by tests.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The config of node i: same cluster name and route list on every node (a route to itself is ignored). */
export function nodeConfig({ name, host, clientPort, routePort, httpPort, storeDir, routes, clusterName = 'kaching' }) {
  return [
    `server_name: ${name}`,
    `listen: ${host}:${clientPort}`,
    `http: ${host}:${httpPort}`,
    'jetstream {',
    `  store_dir: ${JSON.stringify(storeDir)}`,
    '  max_memory_store: 256MB',
    '}',
    'cluster {',
    `  name: ${clusterName}`,
    `  listen: ${host}:${routePort}`,
    `  routes: [${routes.map((r) => `nats-route://${host}:${r}`).join(', ')}]`,
    '}',
    '',
  ].join('\n');
}

function portOpen(host, port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (v) => (s.destroy(), resolve(v));
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

async function jsz(host, httpPort) {
  try {
    const r = await fetch(`http://${host}:${httpPort}/jsz`);
    return r.ok ? await r.json() : null;
  } catch {
    return null;
  }
}

/** One node: start (again) from its config, SIGKILL, SIGSTOP/SIGCONT. */
export class ClusterNode {
  constructor(o) {
    Object.assign(this, o);
    this.proc = null;
  }

  get url() {
    return `nats://${this.host}:${this.clientPort}`;
  }

  get running() {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async start() {
    if (this.running) return;
    const out = fs.openSync(this.log, 'a');
    this.proc = spawn(this.bin, ['-c', this.conf], { stdio: ['ignore', out, out], detached: this.detached });
    fs.closeSync(out);
    if (this.detached) this.proc.unref();
    this.pid = this.proc.pid;
    const deadline = Date.now() + 20_000;
    while (!(await portOpen(this.host, this.clientPort))) {
      if (!this.running) throw new Error(`nats node ${this.name} exited; log ${this.log}`);
      if (Date.now() > deadline) throw new Error(`nats node ${this.name} did not listen within 20 s; log ${this.log}`);
      await sleep(100);
    }
  }

  /** SIGKILL: the node's acked data stays on its disk and on its peers. */
  async kill() {
    const p = this.proc;
    if (!p || !this.running) return;
    await new Promise((r) => {
      p.once('exit', () => r());
      p.kill('SIGKILL');
    });
  }

  signal(sig) {
    if (this.running) this.proc.kill(sig);
  }
}

/**
 * Starts `size` nodes on `host` with client ports from `basePort`, route ports from `routeBasePort` and
 * monitoring ports from `httpBasePort` (or the explicit `ports`), and waits until the JetStream meta group has a leader that every
 * node knows. Returns the nodes, the NATS_URL (every node, comma-separated) and stop().
 */
export async function startNatsCluster({ size = 3, host = '127.0.0.1', basePort, routeBasePort, httpBasePort, ports, dir, bin = 'nats-server', detached = false, clusterName = 'kaching' }) {
  fs.mkdirSync(dir, { recursive: true });
  // explicit `ports` ({ client, route, http }: one per node) or consecutive ones from the bases
  const at = (kind, base, i) => ports?.[kind]?.[i] ?? base + i;
  const routes = Array.from({ length: size }, (_, i) => at('route', routeBasePort, i));
  const nodes = [];
  for (let i = 0; i < size; i++) {
    const name = `nats-${i + 1}`;
    const nodeDir = path.join(dir, name);
    fs.mkdirSync(nodeDir, { recursive: true });
    const conf = path.join(nodeDir, 'nats-server.conf');
    const o = { name, host, clientPort: at('client', basePort, i), routePort: routes[i], httpPort: at('http', httpBasePort, i), storeDir: path.join(nodeDir, 'store'), routes, clusterName };
    fs.writeFileSync(conf, nodeConfig(o));
    nodes.push(new ClusterNode({ ...o, bin, conf, log: path.join(nodeDir, 'nats-server.log'), detached }));
  }
  await Promise.all(nodes.map((n) => n.start()));
  const cluster = { nodes, url: nodes.map((n) => n.url).join(','), stop: () => Promise.all(nodes.map((n) => n.kill())), waitReady: (t) => waitClusterReady(nodes, t) };
  await cluster.waitReady();
  return cluster;
}

/** Until every running node reports the same JetStream meta leader (elections take a few seconds). */
export async function waitClusterReady(nodes, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const up = nodes.filter((n) => n.running);
    const leaders = await Promise.all(up.map(async (n) => (await jsz(n.host, n.httpPort))?.meta_cluster?.leader ?? null));
    if (leaders.length && leaders.every((l) => l && l === leaders[0])) return leaders[0];
    if (Date.now() > deadline) throw new Error(`the NATS cluster has no JetStream meta leader after ${timeoutMs / 1000} s (nodes saw: ${JSON.stringify(leaders)})`);
    await sleep(250);
  }
}
