import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import { PROJECTIONS, type Names } from '@kaching/contracts';

export interface ProjectorStatus {
  stream: { name: string; messages: number; bytes: number; first_seq: number; last_seq: number } | null;
  consumers: { name: string; projection: string; exists: boolean; pending?: number; ack_pending?: number; ack_floor?: number; redelivered?: number }[];
  checkpoints: { projection: string; last_seq: number; lag: number | null; updated_at: string }[];
  counts: Record<string, number | null>;
}

/** Stream, consumers, checkpoints and lag at a glance. Every part is optional: what is missing shows as null. */
export async function collectStatus(nc: NatsConnection | null, pool: pg.Pool | null, n: Names): Promise<ProjectorStatus> {
  const status: ProjectorStatus = { stream: null, consumers: [], checkpoints: [], counts: {} };
  if (nc) {
    const jsm = await jetstreamManager(nc);
    const si = await jsm.streams.info(n.eventsStream).catch(() => null);
    if (si) status.stream = { name: n.eventsStream, messages: si.state.messages, bytes: si.state.bytes, first_seq: si.state.first_seq, last_seq: si.state.last_seq };
    for (const p of [...PROJECTIONS, 'enforcer']) {
      const name = n.consumer(p);
      const ci = si ? await jsm.consumers.info(n.eventsStream, name).catch(() => null) : null;
      status.consumers.push(ci
        ? { name, projection: p, exists: true, pending: ci.num_pending, ack_pending: ci.num_ack_pending, ack_floor: ci.ack_floor.stream_seq, redelivered: ci.num_redelivered }
        : { name, projection: p, exists: false });
    }
    try {
      const kv = await new Kvm(nc).open(n.decisionsBucket);
      let keys = 0;
      for await (const _ of await kv.keys()) keys++;
      status.counts.decisions = keys;
    } catch {
      status.counts.decisions = null;
    }
  }
  if (pool) {
    const last = status.stream?.last_seq ?? null;
    const cps = await pool.query<{ projection: string; last_seq: string; updated_at: Date }>(
      'select projection, last_seq, updated_at from projection_checkpoint order by projection').catch(() => ({ rows: [] }));
    status.checkpoints = cps.rows.map((r) => ({
      projection: r.projection,
      last_seq: Number(r.last_seq),
      lag: last === null ? null : Math.max(0, last - Number(r.last_seq)),
      updated_at: r.updated_at.toISOString(),
    }));
    const count = async (label: string, sql: string) => {
      status.counts[label] = await pool.query<{ c: string }>(sql).then((r) => Number(r.rows[0]!.c), () => null);
    };
    await count('jobs', 'select count(*) as c from job');
    await count('usage_samples', 'select count(*) as c from usage_sample');
    await count('alerts', 'select count(*) as c from alert');
    await count('suggestions', 'select count(*) as c from suggestion');
  }
  return status;
}

export function formatStatus(s: ProjectorStatus): string {
  const lines: string[] = [];
  lines.push(s.stream
    ? `stream ${s.stream.name}: ${s.stream.messages} messages, seq ${s.stream.first_seq}..${s.stream.last_seq}, ${(s.stream.bytes / 1e6).toFixed(1)} MB`
    : 'stream: not found (or NATS unreachable)');
  for (const c of s.consumers) {
    lines.push(c.exists
      ? `  consumer ${c.name}: pending ${c.pending}, unacked ${c.ack_pending}, ack floor ${c.ack_floor}, redelivered ${c.redelivered}`
      : `  consumer ${c.name}: absent`);
  }
  for (const cp of s.checkpoints) lines.push(`checkpoint ${cp.projection}: seq ${cp.last_seq}, lag ${cp.lag ?? '?'}, at ${cp.updated_at}`);
  lines.push(`counts: ${Object.entries(s.counts).map(([k, v]) => `${k}=${v ?? 'n/a'}`).join(' ')}`);
  return lines.join('\n');
}
