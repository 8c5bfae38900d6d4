import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { ensureEventsStream, UsageError, type CommandContext } from '@kaching/contracts';
import { commands, decodeMessage, maintainPartitions, processBatch } from '@kaching/projector';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { publishMessages } from '../src/bench/generate.js';
import { makeStream, seedDeployment, waitCaughtUp } from './helpers.js';

const cmd = (name: string) => commands.find((c) => c.name === name)!;

describe('projector CLI commands and partition maintenance', () => {
  let env: IsolatedEnv;
  let last = 0;
  const ctx = (args: CommandContext['args'] = {}, positionals: string[] = [], signal = new AbortController().signal): CommandContext => ({
    args, positionals, json: true, progress: () => undefined, signal,
    config: { databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'error' },
  });

  beforeAll(async () => {
    env = await isolatedEnv();
    const ids = await seedDeployment(env.pool);
    const nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    await publishMessages(jetstream(nc), makeStream(env.names, { ...ids, jobs: 300, seed: 3 }));
    last = (await (await jetstreamManager(nc)).streams.info(env.names.eventsStream)).state.last_seq;
  });

  afterAll(async () => {
    delete process.env.PROJECTOR_PORT;
    await env?.cleanup();
  });

  it('`projector` runs until the signal aborts', async () => {
    const ac = new AbortController();
    process.env.PROJECTOR_PORT = '0';
    const running = cmd('projector').run(ctx({}, [], ac.signal));
    await waitCaughtUp(env.pool, last);
    ac.abort();
    const r = await running;
    expect(r.data).toEqual({ stopped: true });
  });

  it('`status` shows stream, each lane with its checkpoint and lag 0, and counts', async () => {
    const r = await cmd('status').run(ctx());
    const s = r.data as { stream: { last_seq: number }; consumers: unknown[]; lanes: { consumer: string; lane: string; checkpoint: number; lag: number; owner: string | null }[]; partitions: number; counts: Record<string, number | null> };
    expect(s.stream.last_seq).toBe(last);
    expect(s.partitions).toBe(1);
    for (const p of ['raw', 'rollups', 'concurrency']) {
      // the generated stream is all in partition 0 of 1; the legacy lane is empty
      expect(s.lanes.find((c) => c.consumer === p && c.lane === '1.0')).toMatchObject({ checkpoint: last, lag: 0, owner: null });
      expect(s.lanes.find((c) => c.consumer === p && c.lane === 'legacy')).toMatchObject({ lag: 0 });
    }
    expect(s.lanes.some((c) => c.consumer === 'enforcer')).toBe(false);
    expect(s.consumers).toEqual([]); // no durable consumers any more
    expect(s.counts.usage_samples).toBeGreaterThan(0);
    expect(s.counts.alerts).toBe(0);
    expect(s.counts.decisions).toBeNull(); // no KV bucket in this namespace: tolerated
    expect(r.text).toMatch(/raw +lane 1\.0 +checkpoint +\d+ +lag +0/);
  });

  it('`verify-projections` exits 0 when clean and 1 on a difference', async () => {
    expect((await cmd('verify-projections').run(ctx({ since: '1970-01-01T00:00:00Z' }))).exitCode).toBe(0);
    await env.pool.query(`update usage_rollup_daily set jobs = jobs + 1 where day = (select min(day) from usage_rollup_daily)`);
    const r = await cmd('verify-projections').run(ctx({ since: '1970-01-01T00:00:00Z' }));
    expect(r.exitCode).toBe(1);
    expect((r.data as { differences: unknown[] }).differences.length).toBe(1);
  });

  it('`replay` repairs the tampered rollups and rejects bad usage', async () => {
    const r = await cmd('replay').run(ctx({}, ['rollups']));
    expect(r.data).toMatchObject({ projection: 'rollups', lastSeq: last });
    expect((await cmd('verify-projections').run(ctx({ since: '1970-01-01T00:00:00Z' }))).exitCode).toBe(0);
    await expect(cmd('replay').run(ctx({}, ['nope']))).rejects.toBeInstanceOf(UsageError);
    await expect(cmd('replay').run(ctx({ 'from-seq': '0' }, ['raw']))).rejects.toBeInstanceOf(UsageError);
    await expect(cmd('replay').run(ctx({ 'from-seq': '1', since: '2026-01-01T00:00:00Z' }, ['raw']))).rejects.toBeInstanceOf(UsageError);
  });

  it('maintenance creates partitions ahead and drops those past retention', async () => {
    const old = new Date(Date.now() - 40 * 86_400_000).toISOString().slice(0, 10);
    await env.pool.query('select ensure_usage_partitions($1::date, 1)', [old]);
    const r = await maintainPartitions(env.pool, { retentionDays: 30, partitionsAhead: 7 });
    expect(r.dropped).toEqual([`usage_sample_${old.replace(/-/g, '')}`]);
    const ahead = new Date(Date.now() + 7 * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');
    const x = await env.pool.query(`select to_regclass('usage_sample_${ahead}') is not null as ok`);
    expect(x.rows[0].ok).toBe(true);
  });

  it('a batch with a hole of still-existing messages applies only the contiguous prefix (redelivery order after a crash)', async () => {
    const ids = await seedDeployment(env.pool);
    const gen = makeStream(env.names, { ...ids, jobs: 10, seed: 99, dupRate: 0 });
    const decoded = gen.map((m, i) => decodeMessage(m.data, undefined, i + 1));
    const pick = [1, 2, 3, 5, 6].map((s) => decoded[s - 1]!);
    const out = await processBatch(env.pool, 'raw', pick, [1, 2, 3, 5, 6], { checkpointKey: 'gap_test', seqExists: async () => true });
    expect(out.lastSeq).toBe(3);
    expect(out.applied).toBe(3);
    expect(out.deferred).toEqual([5, 6]);
    // seq 4 arrives (redelivered) together with the held ones: everything applies, checkpoint moves to 6
    const all = [4, 5, 6].map((s) => decoded[s - 1]!);
    const again = await processBatch(env.pool, 'raw', all, [4, 5, 6], { checkpointKey: 'gap_test', seqExists: async () => true });
    expect(again).toMatchObject({ lastSeq: 6, applied: 3, deferred: [] });
    // a hole of deleted messages is no hole
    const skip = await processBatch(env.pool, 'raw', [decoded[8]!], [9], { checkpointKey: 'gap_test', seqExists: async () => false });
    expect(skip).toMatchObject({ lastSeq: 9, applied: 1 });
    // redelivered messages at or below the checkpoint change nothing
    const dup = await processBatch(env.pool, 'raw', pick, [1, 2, 3, 5, 6], { checkpointKey: 'gap_test' });
    expect(dup).toMatchObject({ applied: 0, skipped: 5, lastSeq: 9 });
  });
});
