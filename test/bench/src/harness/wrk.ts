import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../lua/bodies.lua', import.meta.url));

export interface WrkResult {
  requests: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Answers ≥ 300 (a run with any is not a throughput figure). */
  non2xx: number;
  /** Socket errors and timeouts. */
  errors: number;
  /** True when a thread sent every body it had: the run measured less than its duration. */
  ranOut: boolean;
  /** wrk's own CPU seconds (user + system), from the shell's `times`. */
  cpuSeconds: number;
}

/**
 * wrk (Debian's `wrk`, C, a few % of a core) from its own process: closed loop, `connections` in flight.
 * With a bodies file, POSTs each line once (pre-signed unique events, never a resend); without, GETs the path.
 */
export async function runWrk(o: {
  url: string;
  path: string;
  seconds: number;
  connections: number;
  threads?: number;
  bodiesFile?: string;
  token?: string;
}): Promise<WrkResult> {
  const threads = o.threads ?? 1;
  const args = [`-t${threads}`, `-c${o.connections}`, `-d${o.seconds}s`, '--timeout', '30s', '-s', SCRIPT, o.url, '--', o.bodiesFile ?? '-', o.path, o.token ?? '-', String(threads)];
  // bash's `times` prints the CPU its children used: wrk's own share of the machine, next to the services'
  const child = spawn('bash', ['-c', 'wrk "$@"; rc=$?; times; exit $rc', 'wrk', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`wrk could not run (${e.message}); install it: apt-get install wrk`)));
    child.once('exit', resolve);
  });
  const line = out.split('\n').find((l) => l.startsWith('{"requests"'));
  if (code !== 0 || !line) throw new Error(`wrk exited ${code}: ${err || out}`);
  const times = out.trim().split('\n').slice(-1)[0]!.match(/(\d+)m([\d.]+)s (\d+)m([\d.]+)s/);
  const cpuSeconds = times ? Number(times[1]) * 60 + Number(times[2]) + Number(times[3]) * 60 + Number(times[4]) : 0;
  const r = JSON.parse(line) as { requests: number; duration_us: number; p50_us: number; p90_us: number; p99_us: number; max_us: number; non2xx: number; errors: number; ran_out: number };
  const seconds = r.duration_us / 1e6;
  const ms = (us: number) => Math.round(us / 100) / 10;
  return {
    requests: r.requests, seconds, perSecond: Math.round(r.requests / seconds),
    p50Ms: ms(r.p50_us), p90Ms: ms(r.p90_us), p99Ms: ms(r.p99_us), maxMs: ms(r.max_us),
    non2xx: r.non2xx, errors: r.errors, ranOut: r.ran_out > 0, cpuSeconds,
  };
}
