import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireLease, inLaneTransaction, LeaseLostError, renewLeases } from '@kaching/contracts';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';

/** The fence check inside the batch transaction, alone: an owner whose lease was taken commits nothing. */
describe('lease fencing in the batch transaction', () => {
  let env: IsolatedEnv;
  beforeAll(async () => {
    env = await isolatedEnv();
    await env.pool.query('create table effect (seq bigint primary key)');
  });
  afterAll(async () => env?.cleanup());

  it('a batch of the old owner after a takeover fails with LeaseLostError and leaves no effect; the new owner commits', async () => {
    const a = await acquireLease(env.pool, 'raw', '4.1', 'instance-a', 200, 1, 0);
    expect(a).not.toBeNull();
    await inLaneTransaction(env.pool, a!, async (c) => (await c.query('insert into effect values (1)'), { lastSeq: 1, result: null }));
    // b cannot take a live lease
    expect(await acquireLease(env.pool, 'raw', '4.1', 'instance-b', 5000, 1, 0)).toBeNull();
    await new Promise((r) => setTimeout(r, 300)); // a's 200 ms lease runs out (database time)
    const b = await acquireLease(env.pool, 'raw', '4.1', 'instance-b', 5000, 1, 0);
    expect(b!.fence).toBe(a!.fence + 1);
    await expect(inLaneTransaction(env.pool, a!, async (c) => (await c.query('insert into effect values (2)'), { lastSeq: 2, result: null }))).rejects.toBeInstanceOf(LeaseLostError);
    expect(await renewLeases(env.pool, 'instance-a', [a!], 5000)).toEqual([a]);
    await inLaneTransaction(env.pool, b!, async (c, cp) => (expect(cp).toBe(1), await c.query('insert into effect values (3)'), { lastSeq: 3, result: null }));
    expect((await env.pool.query('select seq from effect order by seq')).rows.map((r) => Number(r.seq))).toEqual([1, 3]);
    const cp = await env.pool.query(`select last_seq, committed_fence from consumer_checkpoint where consumer = 'raw' and lane = '4.1'`);
    expect(cp.rows[0]).toEqual({ last_seq: '3', committed_fence: String(b!.fence) });
  });
});
