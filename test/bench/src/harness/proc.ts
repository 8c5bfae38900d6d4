import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time per process, read from /proc (utime + stime, in USER_HZ ticks of 10 ms): the services under test,
 * the load generator, nats-server and every postgres backend. Where /proc is missing the figures are empty.
 */
export interface CpuSnapshot {
  at: number;
  /** label/pid → ticks; labels group processes (e.g. every postgres backend is "postgres"). */
  ticks: Record<string, number>;
}

function readStat(pid: number | string): { name: string; ticks: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { name, ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

/** Children's CPU counts too: a service's worker threads are in its own stat, its child processes are not. */
export function cpuSnapshot(labelled: Record<string, number | undefined>): CpuSnapshot {
  const ticks: Record<string, number> = {};
  for (const [label, pid] of Object.entries(labelled)) {
    if (pid === undefined) continue;
    const r = readStat(pid);
    if (r) ticks[`${label}/${pid}`] = r.ticks;
  }
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return { at: performance.now(), ticks: {} };
  }
  for (const pid of entries) {
    const r = readStat(pid);
    if (r && (r.name === 'nats-server' || r.name === 'postgres')) ticks[`${r.name}/${pid}`] = r.ticks;
  }
  return { at: performance.now(), ticks };
}

export interface CpuUse {
  /** % of one core over the interval. */
  percent: number;
  /** CPU seconds over the interval. */
  seconds: number;
}

/** Per label: CPU between two snapshots (a postgres backend that ended in between is missed). */
export function cpuBetween(a: CpuSnapshot, b: CpuSnapshot): Record<string, CpuUse> {
  const wall = (b.at - a.at) / 1000;
  const ticks: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.ticks)) {
    const label = k.slice(0, k.lastIndexOf('/'));
    ticks[label] = (ticks[label] ?? 0) + Math.max(0, v - (a.ticks[k] ?? 0));
  }
  const out: Record<string, CpuUse> = {};
  for (const [k, t] of Object.entries(ticks)) out[k] = { seconds: t / 100, percent: Math.round(t / wall) };
  return out;
}

/** "ingest 61% (140 µs/event), projector 46% (…)" */
export function cpuText(cpu: Record<string, CpuUse>, events?: number): string {
  return Object.entries(cpu)
    .map(([k, v]) => `${k} ${v.percent}%${events ? ` (${Math.round((v.seconds * 1e6) / events)} µs/event)` : ''}`)
    .join(', ');
}
