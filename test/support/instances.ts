import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export type ServiceKind = 'projector' | 'enforcer' | 'ingest' | 'api' | 'archiver';

/**
 * One service instance in a process of its own, run from `dist/` (build with `npx tsc -b` first), as
 * `kaching projector` / `kaching enforcer` would run it on another host.
 */
export class ServiceProcess {
  child: ChildProcess | null = null;
  url = '';
  log = '';
  exited: Promise<number | null> = Promise.resolve(null);

  constructor(readonly kind: ServiceKind, private readonly env: NodeJS.ProcessEnv, readonly name: string = kind) {}

  async start(timeoutMs = 60_000): Promise<this> {
    const dist = `${ROOT}${this.kind}/dist/mod.js`;
    const script = `
      const { start, loadConfig } = await import(${JSON.stringify(dist)});
      const h = await start({ ...loadConfig(process.env), port: 0, host: '127.0.0.1' });
      process.stdout.write('ready ' + h.url + '\\n');
      process.on('SIGTERM', () => void h.close().then(() => process.exit(0)));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, env: { LOG_LEVEL: 'warn', ...this.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((r) => child.once('exit', (code) => r(code)));
    const keep = (b: Buffer) => {
      this.log = (this.log + b.toString()).slice(-20_000);
      if (process.env.SCALE_LOG) process.stderr.write(`[${this.name}] ${b.toString()}`);
    };
    child.stderr!.on('data', keep);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name} not ready in ${timeoutMs} ms: ${this.log}`)), timeoutMs);
      child.stdout!.on('data', (b: Buffer) => {
        keep(b);
        const m = /ready (\S+)/.exec(b.toString());
        if (m) {
          clearTimeout(timer);
          this.url = m[1]!;
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited ${code}: ${this.log}`));
      });
    });
    return this;
  }

  signal(sig: NodeJS.Signals): void {
    this.child?.kill(sig);
  }

  /** SIGKILL and wait for the exit. */
  async kill(): Promise<void> {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM (clean stop: leases given back), SIGKILL after a while. */
  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill('SIGCONT');
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child?.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(t);
  }

  /** A counter from the instance's /metrics, summed over the label sets matching `labels`. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const text = await (await fetch(`${this.url}/metrics`)).text();
    let sum = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith(name)) continue;
      const m = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) sum += Number(m[3]);
    }
    return sum;
  }
}
