import avro from 'avsc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headers } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { decodeStreamRecord, ensureEventsStream, SCHEMA_FINGERPRINT_HEADER, STREAM_SCHEMA_FINGERPRINT } from '@kaching/contracts';
import { loadConfig, replay, start, verifyProjections, type ProjectorHandle } from '@kaching/projector';
import { STREAM_RECORD_AVRO_SCHEMA_V1 } from '../../contracts/src/codec/stream.v1.avsc.js';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { expectedWinners, makeStream, rollupTotals, seedDeployment, tableSnapshot, waitCaughtUp } from './helpers.js';

const v1 = avro.Type.forSchema(STREAM_RECORD_AVRO_SCHEMA_V1 as unknown as avro.Schema, { omitRecordMethods: true });
const V1_FINGERPRINT = v1.fingerprint('sha256').toString('hex');

/**
 * A stream written over time holds records of several schema versions, each tagged with its fingerprint.
 * Every other message here is written as a v1 writer (before tags, cache-write tokens, batch proofs) wrote it.
 */
describe('a stream written partly with the v1 record schema', () => {
  let env: IsolatedEnv;
  let handle: ProjectorHandle;
  let lastSeq = 0;
  let msgs: ReturnType<typeof makeStream>;

  beforeAll(async () => {
    env = await isolatedEnv();
    const ids = await seedDeployment(env.pool);
    const nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    msgs = makeStream(env.names, { ...ids, jobs: 600, seed: 17 });
    const js = jetstream(nc);
    let i = 0;
    for (const m of msgs) {
      const old = i++ % 2 === 0;
      const h = headers();
      h.set(SCHEMA_FINGERPRINT_HEADER, old ? V1_FINGERPRINT : STREAM_SCHEMA_FINGERPRINT);
      const data = old ? v1.toBuffer(decodeStreamRecord(m.data)) : m.data;
      await js.publish(m.subject, data, { msgID: m.msgId, headers: h });
    }
    lastSeq = (await (await jetstreamManager(nc)).streams.info(env.names.eventsStream)).state.last_seq;
    handle = await start({ ...loadConfig({}), databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, port: 0, host: '127.0.0.1', batchSize: 250 });
    await waitCaughtUp(env.pool, lastSeq);
  });

  afterAll(async () => {
    await handle?.close();
    await env?.cleanup();
  });

  it('is projected live: every identity holds its winning revision and nothing is skipped as undecodable', async () => {
    const winners = expectedWinners(msgs);
    const stored = await env.pool.query<{ correlation_id: string; revision: string }>('select correlation_id, revision from job');
    expect(new Map(stored.rows.map((r) => [r.correlation_id, r.revision]))).toEqual(new Map([...winners].map(([k, v]) => [k, v.revision])));
    const poison = (await handle.metrics.poison.get()).values.reduce((a, v) => a + v.value, 0);
    expect(poison).toBe(0);
    const totals = await rollupTotals(env.pool);
    expect(totals[1]).toEqual({ ...totals[0], src: 'usage_rollup_hourly' });
    expect(totals[2]).toEqual({ ...totals[0], src: 'usage_rollup_daily' });
    expect(await verifyProjections(env.pool)).toEqual([]);
  });

  it('is replayed into tables identical to the live ones, for every projection', async () => {
    const tables: Record<string, [string, string][]> = {
      raw: [['job', 'deployment_id, correlation_id'], ['usage_sample', 'deployment_id, correlation_id']],
      rollups: [['usage_rollup_hourly', 'deployment_id, bucket_start, agent_type'], ['usage_rollup_daily', 'deployment_id, day']],
      concurrency: [['concurrency_minute', 'deployment_id, minute']],
    };
    for (const projection of ['raw', 'rollups', 'concurrency'] as const) {
      const before: string[] = [];
      for (const [t, o] of tables[projection]!) before.push(await tableSnapshot(env.pool, t, o));
      const r = await replay({ databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'warn' }, projection, { batchSize: 300 });
      expect(r.lastSeq).toBe(lastSeq);
      const after: string[] = [];
      for (const [t, o] of tables[projection]!) after.push(await tableSnapshot(env.pool, t, o));
      expect(after, projection).toEqual(before);
    }
  });
});
