import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import { collectLaneStatus, formatLaneStatus, partitionEpochs, PROJECTIONS, type LaneStatus, type Names } from '@kaching/contracts';

export interface ProjectorStatus {
  stream: { name: string; messages: number; bytes: number; first_seq: number; last_seq: number } | null;
  consumers: { name: string; projection: string; exists: boolean; pending?: number; ack_pending?: number; ack_floor?: number; redelivered?: number }[];
  /** Per (consumer, lane): owner, checkpoint, lag. */
  lanes: LaneStatus[];
  partitions: number | null;
  /** Live service instances (projector, enforcer, ingest). */
  instances: { instance_id: string; role: string; consumers: string[]; partitions: number | null; heartbeat_at: string }[];
  counts: Record<string, number | null>;
}

/** Stream, consumers, checkpoints and lag at a glance. Every part is optional: what is missing shows as null. */
export async function collectStatus(nc: NatsConnection | null, pool: pg.Pool | null, n: Names): Promise<ProjectorStatus> {
  const status: ProjectorStatus = { stream: null, consumers: [], lanes: [], partitions: null, instances: [], counts: {} };
  if (nc) {
    const jsm = await jetstreamManager(nc);
    const si = await jsm.streams.info(n.eventsStream).catch(() => null);
    if (si) status.stream = { name: n.eventsStream, messages: si.state.messages, bytes: si.state.bytes, first_seq: si.state.first_seq, last_seq: si.state.last_seq };
    // durables of versions before the consumer runner (the runner reads with ordered consumers; these are left-overs)
    for (const p of [...PROJECTIONS, 'enforcer']) {
      const name = n.consumer(p);
      const ci = si ? await jsm.consumers.info(n.eventsStream, name).catch(() => null) : null;
      if (ci) status.consumers.push({ name, projection: p, exists: true, pending: ci.num_pending, ack_pending: ci.num_ack_pending, ack_floor: ci.ack_floor.stream_seq, redelivered: ci.num_redelivered });
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
    status.lanes = await collectLaneStatus(nc, pool, n).catch(() => []);
    status.partitions = (await partitionEpochs(pool).catch(() => [])).at(-1)?.partitions ?? null;
    const inst = await pool.query<{ instance_id: string; role: string; consumers: string[]; partitions: number | null; heartbeat_at: Date }>(
      `select i.instance_id, i.role, i.consumers, e.partitions, i.heartbeat_at from kaching_instance i left join event_partitioning e on e.epoch = i.partition_epoch
        where i.expires_at > now() order by i.role, i.instance_id`).catch(() => ({ rows: [] }));
    status.instances = inst.rows.map((r) => ({ ...r, heartbeat_at: r.heartbeat_at.toISOString() }));
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
  for (const c of s.consumers) lines.push(`  left-over durable ${c.name} (versions before the consumer runner): pending ${c.pending}`);
  lines.push(`partitions: ${s.partitions ?? 'not set yet'}; instances: ${s.instances.map((i) => `${i.instance_id} [${i.role}${i.consumers.length ? `: ${i.consumers.join(',')}` : ''}${i.partitions ? `, publishes with ${i.partitions}` : ''}]`).join(', ') || 'none'}`);
  lines.push('lanes:');
  lines.push(...formatLaneStatus(s.lanes));
  lines.push(`counts: ${Object.entries(s.counts).map(([k, v]) => `${k}=${v ?? 'n/a'}`).join(' ')}`);
  return lines.join('\n');
}
