import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const KACHING_BIN = fileURLToPath(new URL('../../../../deploy/bin/kaching.mjs', import.meta.url));
/** What the bin's shebang, the systemd units and the image pass to node: the bench measures what ships. */
export const SHIPPED_NODE_ARGS = ['--max-semi-space-size=64'];

/**
 * How the services under test run, always in processes of their own (never in the bench's):
 * `all-in-one` is `kaching up` (every service on one JS thread, as a single-box install runs it);
 * `per-service` is one process per service, as the kaching@ systemd units and the Helm chart run them.
 */
export type Topology = 'all-in-one' | 'per-service';
export type ServiceName = 'ingest' | 'projector' | 'enforcer' | 'api';

export interface RunningStack {
  topology: Topology;
  ingestUrl: string;
  /** Each service's base URL (metrics, readyz). */
  urls: Partial<Record<ServiceName, string>>;
  /** Process ids by service; in all-in-one every service maps to the one `kaching up` process. */
  pids: Partial<Record<ServiceName | 'kaching up', number>>;
  close(): Promise<void>;
}

/** Starts the services (`services` selects which, per-service only) and waits until each answers /readyz. */
export async function startStack(o: { topology: Topology; env: NodeJS.ProcessEnv; services?: ServiceName[]; nodeArgs?: string[] }): Promise<RunningStack> {
  // Every service binds a port of its own choosing (0) and prints its URL: a port picked here and released
  // again could be taken by another process before the child binds it.
  const env: NodeJS.ProcessEnv = {
    ...o.env,
    LOG_LEVEL: o.env.LOG_LEVEL ?? 'warn',
    INGEST_PORT: '0', INGEST_HOST: '127.0.0.1', INGEST_RATE_LIMIT_PER_S: '0',
    PROJECTOR_PORT: '0', PROJECTOR_HOST: '127.0.0.1',
    ENFORCER_PORT: '0', ENFORCER_HOST: '127.0.0.1',
    API_PORT: '0', API_HOST: '127.0.0.1',
    ARCHIVER_PORT: '0', ARCHIVER_HOST: '127.0.0.1',
  };
  const urls: Partial<Record<ServiceName, string>> = {};
  let reported = '';
  const wanted = o.services ?? ['ingest', 'projector', 'enforcer', 'api'];
  const commands: [string, string[]][] = o.topology === 'all-in-one' ? [['kaching up', ['up']]] : wanted.map((s) => [s, [s]]);
  let stderr = '';
  const children = new Map<string, ChildProcess>();
  for (const [label, args] of commands) {
    const c = spawn(process.execPath, [...SHIPPED_NODE_ARGS, ...(o.nodeArgs ?? []), KACHING_BIN, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr!.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-4000);
      // "ingest listening on http://…", "enforcer running; metrics at http://…"; `kaching up`: "ingest     http://…"
      reported += b.toString();
      for (const s of ['ingest', 'projector', 'enforcer', 'api'] as const) {
        urls[s] ??= new RegExp(`^${s}\\b[^\\n]*?(https?://[^\\s/]+)`, 'm').exec(reported)?.[1];
      }
    });
    children.set(label, c);
  }
  const close = async () => {
    await Promise.all(
      [...children.values()].map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const t = setTimeout(() => c.kill('SIGKILL'), 20_000);
            c.once('exit', () => (clearTimeout(t), resolve()));
            c.kill('SIGTERM');
          }),
      ),
    );
  };
  const services = o.topology === 'all-in-one' ? (['ingest', 'projector', 'enforcer', 'api'] as const) : wanted;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ready = await Promise.all(services.map((s) => (urls[s] ? fetch(`${urls[s]}/readyz`).then((r) => r.ok, () => false) : false)));
    if (ready.every(Boolean)) break;
    const exited = [...children.entries()].find(([, c]) => c.exitCode !== null);
    if (exited || Date.now() > deadline) {
      await close();
      throw new Error(`${exited ? `${exited[0]} exited with ${exited[1].exitCode}` : 'services not ready within 60 s'}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const pids: RunningStack['pids'] = {};
  for (const [label, c] of children) pids[label as ServiceName] = c.pid;
  return { topology: o.topology, ingestUrl: urls.ingest!, urls, pids, close };
}
